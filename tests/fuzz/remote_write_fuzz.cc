// libFuzzer target for remote write 1.0 decoding (ingest/remote_write.h): arbitrary bytes as a
// snappy body, appended through an appender that accepts every valid sample and checks what it
// is given. Built and run by tests/fuzz/run_fuzzer.sh remote_write_fuzz SECONDS (ctest label `fuzz`).
//
// Invariants checked beyond "no crash, no sanitizer report":
//   - no empty label set is appended; a non-canonical one is refused (as the Appender contract
//     says the store does) and then the request fails;
//   - OK means Commit was called once iff samples were appended, and samples_accepted equals
//     the number of appends; an error means nothing was committed.
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
    if (labels.empty()) std::abort();
    if (absl::Status s = tidemark::Labels::Validate(labels.items()); !s.ok()) {
      ++refused;
      return tidemark::StatusOf(tidemark::RejectReason::kInvalidLabels, std::string(s.message()));
    }
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
  int refused = 0;

 private:
  size_t pending_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckingAppender appender;
  tidemark::ingest::WriteLimits limits;
  limits.max_decoded_bytes = 1 << 20;
  tidemark::ingest::WriteResult r = tidemark::ingest::HandleRemoteWrite(
      std::string_view(reinterpret_cast<const char*>(data), size), "snappy", limits, appender);
  if (r.status.ok()) {
    if (appender.refused > 0) std::abort();
    if (static_cast<size_t>(r.samples_accepted) != appender.committed) std::abort();
    if ((appender.committed > 0) != (appender.commits == 1)) std::abort();
  } else if (appender.committed != 0) {
    std::abort();
  }
  return 0;
}
