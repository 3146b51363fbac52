// Compares ingest/rw1_decode.h's in-place decoding of a remote write 1.0 WriteRequest with
// libprotobuf's parse of the same bytes into prompb::WriteRequest (ingest/proto). Shared by the
// differential fuzzer (remote_write_decode_fuzz.cc) and the unit tests
// (tests/ingest/rw1_decode_test.cc).
#ifndef TIDEMARK_TESTS_FUZZ_REMOTE_WRITE_DECODE_COMPARE_H_
#define TIDEMARK_TESTS_FUZZ_REMOTE_WRITE_DECODE_COMPARE_H_

#include <climits>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "ingest/proto/remote_write.pb.h"
#include "ingest/rw1_decode.h"

namespace tidemark::ingest::testing {

// Doubles compare bit for bit (NaN payloads included).
inline bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// "" when both decoders accept `bytes` and agree on every field, or both refuse it; otherwise
// the first difference.
inline std::string CompareRw1Decoders(std::string_view bytes) {
  namespace prompb = ::tidemark::ingest::prompb;
  prompb::WriteRequest want;
  const bool want_ok = bytes.size() <= INT_MAX &&
                       want.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  internal::Rw1Request got;
  const absl::Status got_status = internal::DecodeRw1WriteRequest(bytes, &got);
  if (want_ok != got_status.ok()) {
    return std::string("libprotobuf ") + (want_ok ? "accepts" : "refuses") +
           ", rw1_decode says: " + got_status.ToString();
  }
  if (!want_ok) return "";

  auto str = [](const std::string& s) { return std::string_view(s); };
  auto labels_differ = [&](const auto& want_labels, std::span<const internal::Rw1Label> labels,
                           const std::string& where) -> std::string {
    if (static_cast<size_t>(want_labels.size()) != labels.size()) {
      return where + ": label count " + std::to_string(labels.size()) + ", want " +
             std::to_string(want_labels.size());
    }
    for (size_t i = 0; i < labels.size(); ++i) {
      const prompb::Label& l = want_labels[static_cast<int>(i)];
      if (str(l.name()) != labels[i].name || str(l.value()) != labels[i].value) {
        return where + ".labels[" + std::to_string(i) + "] differs";
      }
    }
    return "";
  };

  if (static_cast<size_t>(want.timeseries_size()) != got.series.size()) {
    return "series count " + std::to_string(got.series.size()) + ", want " +
           std::to_string(want.timeseries_size());
  }
  for (size_t i = 0; i < got.series.size(); ++i) {
    const prompb::TimeSeries& ts = want.timeseries(static_cast<int>(i));
    const internal::Rw1Series& s = got.series[i];
    const std::string where = "timeseries[" + std::to_string(i) + "]";
    if (std::string d = labels_differ(ts.labels(), got.LabelsOf(s), where); !d.empty()) return d;
    auto samples = got.SamplesOf(s);
    if (static_cast<size_t>(ts.samples_size()) != samples.size()) return where + ": samples";
    for (size_t k = 0; k < samples.size(); ++k) {
      const prompb::Sample& w = ts.samples(static_cast<int>(k));
      if (!SameBits(w.value(), samples[k].value) || w.timestamp() != samples[k].timestamp) {
        return where + ".samples[" + std::to_string(k) + "] differs";
      }
    }
    auto exemplars = got.ExemplarsOf(s);
    if (static_cast<size_t>(ts.exemplars_size()) != exemplars.size()) {
      return where + ": exemplars";
    }
    for (size_t k = 0; k < exemplars.size(); ++k) {
      const prompb::Exemplar& w = ts.exemplars(static_cast<int>(k));
      const std::string ew = where + ".exemplars[" + std::to_string(k) + "]";
      if (!SameBits(w.value(), exemplars[k].value) || w.timestamp() != exemplars[k].timestamp) {
        return ew + " differs";
      }
      if (std::string d = labels_differ(w.labels(), got.LabelsOf(exemplars[k]), ew);
          !d.empty()) {
        return d;
      }
    }
    if (static_cast<size_t>(ts.histograms_size()) != s.histograms) return where + ": histograms";
  }
  if (static_cast<size_t>(want.metadata_size()) != got.metadata.size()) return "metadata count";
  for (size_t i = 0; i < got.metadata.size(); ++i) {
    const prompb::MetricMetadata& w = want.metadata(static_cast<int>(i));
    const internal::Rw1Metadata& m = got.metadata[i];
    if (static_cast<int32_t>(w.type()) != m.type ||
        str(w.metric_family_name()) != m.metric_family_name || str(w.help()) != m.help ||
        str(w.unit()) != m.unit) {
      return "metadata[" + std::to_string(i) + "] differs";
    }
  }
  return "";
}

}  // namespace tidemark::ingest::testing

#endif  // TIDEMARK_TESTS_FUZZ_REMOTE_WRITE_DECODE_COMPARE_H_
