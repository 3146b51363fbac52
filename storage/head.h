// Head: the in-memory part of a DB, one MemSeries per series that was written or replayed since
// the DB was opened, each with its open (not yet sealed) chunk.
//
// The head is sharded by series; each shard's mutex guards its map and the mutable fields of
// its series. A MemSeries is never freed while the head lives, so pointers to it stay valid.
// Internal to storage/.
#ifndef TIDEMARK_STORAGE_HEAD_H_
#define TIDEMARK_STORAGE_HEAD_H_

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "storage/labels.h"
#include "storage/sample.h"

namespace tidemark::internal {

struct MemSeries {
  // Immutable after creation.
  uint32_t tenant = 0;
  uint64_t id = 0;
  Labels labels;

  // Guarded by the shard's mutex.
  std::vector<Sample> open;    // the open chunk, increasing timestamps
  uint64_t open_min_seq = 0;   // lowest WAL sequence holding a sample of `open` (0: none)
  bool has_last = false;       // a sample is stored (open or sealed)
  Sample last;                 // the newest stored sample
  int64_t sealed_max_t = std::numeric_limits<int64_t>::min();  // newest sealed timestamp
  int32_t last_indexed_day = std::numeric_limits<int32_t>::min();
};

// What storing `s` after everything in `series` would do.
enum class Verdict : uint8_t { kAccept, kIgnore, kOutOfOrder, kDuplicate };
Verdict CheckSample(bool has_last, const Sample& last, const Sample& s);

// Segments [begin, end) of `open` to seal: a chunk ends before the sample that would make it
// hold more than `max_samples` or span `max_span_ms` or more. The last segment is sealed only
// when `force` or when it is full.
std::vector<std::pair<size_t, size_t>> ChunkCuts(const std::vector<Sample>& open,
                                                 int max_samples, int64_t max_span_ms,
                                                 bool force);

class Head {
 public:
  static constexpr size_t kShards = 16;
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, std::unique_ptr<MemSeries>> series ABSL_GUARDED_BY(mu);
  };

  // The head's map key of a series: tenant id and label bytes.
  static std::string Key(uint32_t tenant, const Labels& labels);

  Shard& ShardFor(const std::string& key);
  std::array<Shard, kShards>& shards() { return shards_; }

 private:
  std::array<Shard, kShards> shards_;
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_HEAD_H_
