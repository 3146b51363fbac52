// SeriesBounds: the newest sample time of series whose samples are all sealed, by series id
// (internal to storage/).
//
// Postings are partitioned by day, so a query over the last hour selects every series that had
// a sample that day. Under churn most of them ended hours ago; a bound lets the query drop such
// a series before it reads the series' labels or chunks from RocksDB (each a block read).
//
// Lossy on purpose: an id without a bound may have samples at any time, which is always a
// correct answer, so bounds can be forgotten whenever memory matters. Bounds live in blocks of
// 65,536 consecutive ids (ids are handed out in order, so a block holds series made around the
// same time), at a minute's resolution rounded up, as 16-bit offsets from the block's base
// minute (2 bytes per id); a time too far from the base stays unknown. In memory only: after a
// restart, series get bounds again as the head seals them. Thread-safe.
#ifndef TIDEMARK_STORAGE_SERIES_BOUNDS_H_
#define TIDEMARK_STORAGE_SERIES_BOUNDS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace tidemark::internal {

class SeriesBounds {
 public:
  // Every sample of series `id` is at or before `max_t` (milliseconds).
  void Set(uint64_t id, int64_t max_t);
  // Series `id` may get samples at any time (it is written to again).
  void Clear(uint64_t id);
  // True when series `id` is known to have no sample at or after `t`.
  bool EndsBefore(uint64_t id, int64_t t) const;
  // Removes from sorted `ids` those that end before `t`; returns how many it removed.
  size_t RemoveEndingBefore(std::vector<uint64_t>* ids, int64_t t) const;
  // Forgets the blocks whose ids are all below `id`; later bounds of those ids are not kept.
  void DropBelow(uint64_t id);
  int64_t MemoryBytes() const;

 private:
  static constexpr int kBlockBits = 16;
  static constexpr uint64_t kBlockSize = uint64_t{1} << kBlockBits;
  struct Block {
    // Entry v > 0: every sample is before minute `base + v` (minutes since the epoch).
    int64_t base = 0;
    std::unique_ptr<std::atomic<uint16_t>[]> entries;
  };
  static bool Before(const Block& b, uint64_t id, int64_t t);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Block>> blocks_ ABSL_GUARDED_BY(mu_);
  uint64_t first_block_ ABSL_GUARDED_BY(mu_) = 0;  // blocks below it were dropped
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_SERIES_BOUNDS_H_
