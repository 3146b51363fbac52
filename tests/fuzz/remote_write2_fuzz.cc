// libFuzzer target for remote write 2.0 decoding (ingest/remote_write.h, HandleRemoteWrite2).
// The input is a protobuf body, snappy-compressed here so that the fuzzer explores the
// `io.prometheus.write.v2.Request` decoder (symbol references, metadata, exemplars) rather than
// snappy; a leading 0xff byte sends the rest as the raw (compressed) body instead. Built and run
// by tests/fuzz/run_fuzzer.sh remote_write2_fuzz SECONDS (ctest label `fuzz`).
//
// Invariants checked beyond "no crash, no sanitizer report":
//   - every appended series and every exemplar series is canonical and non-empty;
//   - an error means nothing was committed and nothing reached the side store (malformed input
//     stores nothing);
//   - OK means samples_accepted equals the appends and Commit was called once iff there were
//     any; exemplars_written/metadata_written equal what the side store received.
#include <snappy.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ingest/remote_write.h"
#include "storage/appender.h"
#include "storage/labels.h"

namespace {

class CheckingAppender : public tidemark::Appender {
 public:
  absl::Status Append(const tidemark::Labels& labels, int64_t, double) override {
    if (labels.empty() || !tidemark::Labels::Validate(labels.items()).ok()) std::abort();
    ++pending_;
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    ++commits;
    committed += pending_;
    pending_ = 0;
    return absl::OkStatus();
  }
  void Rollback() override { pending_ = 0; }
  size_t pending() const override { return pending_; }

  int commits = 0;
  size_t committed = 0;

 private:
  size_t pending_ = 0;
};

class CheckingSideStore : public tidemark::ingest::SideStore {
 public:
  absl::Status PutMetadata(std::string_view metric,
                           const tidemark::MetricMetadata&) override {
    if (metric.empty()) std::abort();
    ++metadata;
    return absl::OkStatus();
  }
  absl::Status AppendExemplars(const tidemark::Labels& series,
                               std::span<const tidemark::Exemplar> exemplars) override {
    if (series.empty() || !tidemark::Labels::Validate(series.items()).ok()) std::abort();
    for (const tidemark::Exemplar& e : exemplars) {
      // Refuse invalid exemplar labels as storage does.
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string body;
  if (!input.empty() && static_cast<uint8_t>(input[0]) == 0xff) {
    body.assign(input.substr(1));
  } else {
    snappy::Compress(input.data(), input.size(), &body);
  }
  CheckingAppender appender;
  CheckingSideStore side;
  tidemark::ingest::WriteLimits limits;
  limits.max_decoded_bytes = 1 << 20;
  tidemark::ingest::WriteResult r =
      tidemark::ingest::HandleRemoteWrite2(body, "snappy", limits, appender, &side);
  if (r.status.ok()) {
    if (static_cast<size_t>(r.samples_accepted) != appender.committed) std::abort();
    if ((appender.committed > 0) != (appender.commits == 1)) std::abort();
    if (static_cast<size_t>(r.exemplars_written) != side.exemplars) std::abort();
    if (static_cast<size_t>(r.metadata_written) != side.metadata) std::abort();
    if (r.histograms_written != 0) std::abort();
  } else if (appender.committed != 0 || side.exemplars != 0 || side.metadata != 0) {
    std::abort();
  }
  return 0;
}
