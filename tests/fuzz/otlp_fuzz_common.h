// Shared body of the OTLP fuzzers (otlp_proto_fuzz.cc, otlp_json_fuzz.cc): decode and translate
// one input through OtlpReceiver into checking fakes, twice through the same delta state store
// (the second pass reads back running totals the first one saved).
//
// Input layout: byte 0 chooses options (bit 0: convert delta to cumulative, bit 1: _created
// series, bit 2: UnderscoreEscapingWithoutSuffixes, bit 3: gzip-compress the body here so that
// the decoder behind gzip is explored, bits 4-7: exponential_histogram_max_scale - 4), the rest
// is the body.
//
// Invariants checked beyond "no crash, no sanitizer report":
//   - every appended label set is sorted, has unique names and a __name__; exemplar label sets
//     are sorted and unique;
//   - an error result means nothing was committed and nothing reached the side store; the only
//     error codes are InvalidArgument (malformed) and ResourceExhausted (over the size limit);
//   - OK means samples_appended equals the samples committed, points_rejected <= points_received,
//     and exemplars_written / metadata_written equal what the side store received.
#ifndef TIDEMARK_TESTS_FUZZ_OTLP_FUZZ_COMMON_H_
#define TIDEMARK_TESTS_FUZZ_OTLP_FUZZ_COMMON_H_

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ingest/otlp.h"
#include "storage/appender.h"
#include "storage/labels.h"

namespace tidemark_fuzz {

inline bool SortedUnique(const tidemark::Labels& labels) {
  const tidemark::Label* prev = nullptr;
  for (const tidemark::Label& l : labels) {
    if (prev != nullptr && !(prev->name < l.name)) return false;
    prev = &l;
  }
  return true;
}

class CheckingAppender : public tidemark::Appender {
 public:
  absl::Status Append(const tidemark::Labels& labels, int64_t, double) override {
    if (labels.empty() || !SortedUnique(labels) || labels.MetricName().empty()) std::abort();
    // Refuse what storage refuses (an empty value, invalid UTF-8), as storage does.
    if (!tidemark::Labels::Validate(labels.items()).ok()) {
      return tidemark::StatusOf(tidemark::RejectReason::kInvalidLabels, "invalid labels");
    }
    ++pending_;
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    committed += pending_;
    pending_ = 0;
    return absl::OkStatus();
  }
  void Rollback() override { pending_ = 0; }
  size_t pending() const override { return pending_; }
  size_t committed = 0;

 private:
  size_t pending_ = 0;
};

class CheckingSideStore : public tidemark::ingest::SideStore {
 public:
  absl::Status PutMetadata(std::string_view metric, const tidemark::MetricMetadata&) override {
    if (metric.empty()) std::abort();
    ++metadata;
    return absl::OkStatus();
  }
  absl::Status AppendExemplars(const tidemark::Labels& series,
                               std::span<const tidemark::Exemplar> exemplars) override {
    if (series.empty() || !SortedUnique(series)) std::abort();
    for (const tidemark::Exemplar& e : exemplars) {
      if (!SortedUnique(e.labels)) std::abort();
      if (!tidemark::Labels::Validate(e.labels.items()).ok()) {
        return absl::InvalidArgumentError("invalid exemplar labels");
      }
    }
    this->exemplars += exemplars.size();
    return absl::OkStatus();
  }
  size_t metadata = 0;
  size_t exemplars = 0;
};

class MapStateStore : public tidemark::ingest::DeltaStateStore {
 public:
  absl::StatusOr<std::optional<std::string>> Get(std::string_view tenant,
                                                 std::string_view key) override {
    auto it = data_.find(std::string(tenant) + "\n" + std::string(key));
    if (it == data_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  absl::Status Put(std::string_view tenant, std::string_view key,
                   std::string_view value) override {
    std::string k = std::string(tenant) + "\n" + std::string(key);
    if (value.empty()) {
      data_.erase(k);
    } else {
      data_[k] = std::string(value);
    }
    return absl::OkStatus();
  }

 private:
  std::map<std::string, std::string> data_;
};

inline std::string GzipForFuzz(std::string_view raw) {
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    std::abort();
  }
  std::string out(deflateBound(&zs, raw.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

inline int RunOtlpFuzz(const uint8_t* data, size_t size, tidemark::ingest::OtlpEncoding encoding) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  tidemark::ingest::OtlpOptions options;
  options.convert_delta_to_cumulative = (flags & 1) != 0;
  options.export_created_metric = (flags & 2) != 0;
  options.translation_strategy =
      (flags & 4) != 0 ? tidemark::ingest::OtlpTranslationStrategy::kUnderscoreEscapingWithoutSuffixes
                       : tidemark::ingest::OtlpTranslationStrategy::kUnderscoreEscapingWithSuffixes;
  options.exponential_histogram_max_scale = static_cast<int32_t>(flags >> 4) - 4;  // [-4, 11]
  if (options.exponential_histogram_max_scale > 8) options.exponential_histogram_max_scale = 8;
  options.max_decoded_bytes = 1 << 20;
  options.promote_resource_attributes = {"service.version", "k8s.pod.name"};
  std::string compressed;
  std::string_view content_encoding;
  if ((flags & 8) != 0) {
    compressed = GzipForFuzz(body);
    body = compressed;
    content_encoding = "gzip";
  }
  tidemark::ingest::OtlpReceiver receiver(options);
  MapStateStore store;
  for (int pass = 0; pass < 2; ++pass) {
    CheckingAppender appender;
    CheckingSideStore side;
    tidemark::ingest::OtlpResult r =
        receiver.Export("fuzz", body, encoding, content_encoding, appender, &store, &side);
    if (r.status.ok()) {
      if (static_cast<size_t>(r.samples_appended) != appender.committed) std::abort();
      if (r.points_rejected < 0 || r.points_rejected > r.points_received) std::abort();
      if (static_cast<size_t>(r.exemplars_written) != side.exemplars) std::abort();
      if (static_cast<size_t>(r.metadata_written) != side.metadata) std::abort();
    } else {
      if (r.status.code() != absl::StatusCode::kInvalidArgument &&
          r.status.code() != absl::StatusCode::kResourceExhausted) {
        std::abort();
      }
      if (appender.committed != 0 || side.exemplars != 0 || side.metadata != 0) std::abort();
      // The response must encode either way.
      (void)tidemark::ingest::EncodeOtlpResponse(r, encoding);
      return 0;
    }
    (void)tidemark::ingest::EncodeOtlpResponse(r, encoding);
  }
  return 0;
}

}  // namespace tidemark_fuzz

#endif  // TIDEMARK_TESTS_FUZZ_OTLP_FUZZ_COMMON_H_
