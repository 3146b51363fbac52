// Small helpers for code that talks to RocksDB (internal to storage/).
#ifndef TIDEMARK_STORAGE_ROCKS_UTIL_H_
#define TIDEMARK_STORAGE_ROCKS_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/perf_context.h"
#include "rocksdb/perf_level.h"
#include "rocksdb/slice.h"
#include "rocksdb/status.h"

namespace tidemark::internal {

// A RocksDB status as ours, prefixed by what was being done: errors a retry may cure are
// Unavailable (HTTP 503 upstream), corruption is DataLoss, the rest Internal.
inline absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  std::string msg = absl::StrCat(std::string(what), ": ", s.ToString());
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsIncomplete() || s.IsNoSpace() ||
      s.IsIOError()) {
    return absl::UnavailableError(msg);
  }
  if (s.IsCorruption()) return absl::DataLossError(msg);
  return absl::InternalError(msg);
}

inline absl::Status ClosedError() { return absl::FailedPreconditionError("database is closed"); }

inline std::string_view View(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

inline bool StartsWith(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::string_view(key.data(), prefix.size()) == prefix;
}

// Bytes of blocks RocksDB read from files (not found in the block cache) on this thread since
// the counter was made, from RocksDB's per-thread perf context, whose counting (kEnableCount,
// no timers) it turns on while it lives.
class BlockReadCounter {
 public:
  BlockReadCounter() : level_(rocksdb::GetPerfLevel()) {
    if (level_ < rocksdb::kEnableCount) rocksdb::SetPerfLevel(rocksdb::kEnableCount);
    start_ = rocksdb::get_perf_context()->block_read_byte;
  }
  ~BlockReadCounter() {
    if (level_ < rocksdb::kEnableCount) rocksdb::SetPerfLevel(level_);
  }
  BlockReadCounter(const BlockReadCounter&) = delete;
  BlockReadCounter& operator=(const BlockReadCounter&) = delete;

  uint64_t bytes() const { return rocksdb::get_perf_context()->block_read_byte - start_; }

 private:
  const rocksdb::PerfLevel level_;
  uint64_t start_ = 0;
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_ROCKS_UTIL_H_
