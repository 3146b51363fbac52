// LabelPool: the head's label pairs, each kept once however many series carry it.
//
// Series of one pod share most of their labels (namespace, pod, instance, node, job...), and
// series of one metric share the name: a million active series of the benchmark's Kubernetes
// load carry about 200 bytes of encoded labels each but only ~100 k distinct pairs. The head
// keeps, per series, 4-byte ids of its pairs instead of their bytes.
//
// A pair is its bytes in keys.h's EncodeLabels form (varint length, name, varint length, value),
// so a series' encoded labels are its pairs' bytes one after the other. Pairs are reference
// counted: Ref when a series is made, Unref when it is freed; an unreferenced pair is freed and
// its id reused.
//
// Thread-safe. Ref and Unref take one of 16 locks (by the pair's hash); Get takes none: it
// reads two atomic pointers, and is valid for an id the caller holds a reference to (directly or
// through a series it can reach). Internal to storage/.
#ifndef TIDEMARK_STORAGE_LABEL_POOL_H_
#define TIDEMARK_STORAGE_LABEL_POOL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace tidemark::internal {

class LabelPool {
 public:
  // The pool of the process: heads of every open DB share it (a pair shared across DBs is
  // still kept once).
  static LabelPool& Global();

  LabelPool();
  ~LabelPool();
  LabelPool(const LabelPool&) = delete;
  LabelPool& operator=(const LabelPool&) = delete;

  // The id of `pair` (added if new), with one more reference.
  uint32_t Ref(std::string_view pair);
  // Drops one reference taken by Ref; the last one frees the pair.
  void Unref(uint32_t id);
  // The bytes of a referenced pair.
  std::string_view Get(uint32_t id) const {
    const Entry* e = segments_[id >> kSegmentBits].load(std::memory_order_acquire)
                         [id & (kSegmentSize - 1)]
                             .load(std::memory_order_acquire);
    return {e->bytes(), e->size};
  }

  // Distinct pairs, and the heap bytes they and the pool's tables take.
  int64_t size() const;
  int64_t MemoryBytes() const;

 private:
  struct Entry {
    uint32_t id;
    uint32_t size;
    uint64_t refs;
    const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }
    std::string_view view() const { return {bytes(), size}; }
  };
  struct EntryHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
    size_t operator()(const Entry* e) const { return (*this)(e->view()); }
  };
  struct EntryEq {
    using is_transparent = void;
    bool operator()(const Entry* a, const Entry* b) const { return a == b; }
    bool operator()(const Entry* a, std::string_view b) const { return a->view() == b; }
    bool operator()(std::string_view a, const Entry* b) const { return a == b->view(); }
  };
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_set<Entry*, EntryHash, EntryEq> entries ABSL_GUARDED_BY(mu);
    std::vector<uint32_t> free_ids ABSL_GUARDED_BY(mu);
    uint32_t next_local = 0 ABSL_GUARDED_BY(mu);  // ids handed out: local * kShards + shard
    int64_t bytes ABSL_GUARDED_BY(mu) = 0;        // entries' allocations
  };

  static constexpr int kShardBits = 4;
  static constexpr uint32_t kShards = 1u << kShardBits;
  static constexpr int kSegmentBits = 16;
  static constexpr uint32_t kSegmentSize = 1u << kSegmentBits;
  static constexpr uint32_t kSegments = 1u << 14;  // 2^30 ids at most

  using Segment = std::atomic<const Entry*>;
  // The slots of ids [k << kSegmentBits, (k + 1) << kSegmentBits): made once, never moved.
  Segment* EnsureSegment(uint32_t k);

  std::array<Shard, kShards> shards_;
  absl::Mutex segments_mu_;
  std::unique_ptr<std::atomic<Segment*>[]> segments_;
  std::atomic<int64_t> segment_bytes_{0};
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_LABEL_POOL_H_
