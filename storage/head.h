// Head: the in-memory part of a DB, one MemSeries per series that was written or replayed
// recently, each with its open (not yet sealed) chunk.
//
// The head is sharded by a 64-bit hash of (tenant, labels) computed once per appended sample
// (SeriesHash); the shard's mutex guards its set and the mutable fields of its series. A series
// is found by that hash and checked against the caller's labels without building any key string.
// Labels are kept once per series in their encoded form (keys.h EncodeLabels): one allocation
// that is also the series index key and the WAL's label bytes.
//
// A MemSeries lives until the head evicts it (Head::EvictIf, called by compaction for series
// that went inactive); a caller that keeps a pointer across unlocks pins it first (`pins`).
// Internal to storage/.
#ifndef TIDEMARK_STORAGE_HEAD_H_
#define TIDEMARK_STORAGE_HEAD_H_

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "storage/labels.h"
#include "storage/open_chunk.h"
#include "storage/sample.h"

namespace tidemark::internal {

// A hash of a label set (all names and values), and of a series: labels and tenant. In-process
// only (absl::Hash is seeded per process): never stored.
uint64_t LabelsHash(const Labels& labels);
uint64_t LabelsHash(std::span<const LabelView> labels);  // == LabelsHash of the same labels
uint64_t SeriesHash(uint32_t tenant, uint64_t labels_hash);

// The labels a series is looked up by: a Labels, or views of labels in canonical order (copied
// only when a series is made).
struct LabelsArg {
  LabelsArg(const Labels* l) : labels(l) {}                   // NOLINT: implicit on purpose
  LabelsArg(std::span<const LabelView> v) : views(v) {}       // NOLINT
  const Labels* labels = nullptr;
  std::span<const LabelView> views;

  uint64_t Hash() const { return labels != nullptr ? LabelsHash(*labels) : LabelsHash(views); }
  // True when the labels encode to `bytes` (EncodeLabels), with no allocation.
  bool EqualsEncoded(std::string_view bytes) const;
  bool operator==(const Labels& other) const;
  Labels ToLabels() const {
    return labels != nullptr ? *labels : Labels::FromViewsUnchecked(views);
  }
};

struct MemSeries {
  // A series with these encoded labels (EncodeLabels). The labels are kept as ids of pairs in
  // the process's LabelPool (storage/label_pool.h), in the same allocation, after the struct: the
  // head holds one per active series, and its series share most pairs.
  static std::unique_ptr<MemSeries> Make(std::string_view label_bytes);
  MemSeries(const MemSeries&) = delete;
  MemSeries& operator=(const MemSeries&) = delete;
  ~MemSeries();
  static void operator delete(void* p) { ::operator delete(p); }

  // EncodeLabels(labels), rebuilt from the pool, appended to *out / returned.
  void AppendLabelBytes(std::string* out) const;
  std::string LabelBytes() const;
  // True when `labels` are this series' labels (no allocation).
  bool LabelsEqual(const LabelsArg& labels) const;
  // Heap bytes this series' labels take in it (the pool's share is counted by the pool).
  size_t label_id_bytes() const { return sizeof(uint32_t) * num_pairs_; }

  // Fields are ordered to leave no padding.
  // Immutable after creation.
  uint32_t tenant = 0;
  // Guarded by the shard's mutex (as is everything below that is not marked immutable).
  int32_t last_indexed_day = std::numeric_limits<int32_t>::min();
  uint64_t id = 0;          // immutable
  uint64_t hash = 0;        // immutable: SeriesHash(tenant, LabelsHash(labels))

  OpenChunk open;              // the open chunk, increasing timestamps (encoded)
  uint64_t open_min_seq = 0;   // lowest WAL sequence holding a sample of `open` (0: none)
  Sample last;                 // the newest stored sample (open or sealed), when has_last
  // The newest sample accepted by a commit (when has_tail): `last`, or newer when a commit has
  // checked its samples but not yet applied them (they are being written). New samples are
  // checked against it so that concurrent commits of one series never interleave out of order.
  Sample tail;
  int64_t sealed_max_t = std::numeric_limits<int64_t>::min();  // newest sealed timestamp
  // Appenders and commits that reserved samples of this series and have not applied them (nor
  // given them up), and a lower bound of those samples' times: no seal cuts at or past it
  // meanwhile (one that reserved earlier may apply later, and its samples must land in the open
  // chunk).
  int64_t inflight_min_t = std::numeric_limits<int64_t>::max();
  // Every open sample at or after last_apply_first_t is in a WAL record of sequence number
  // last_apply_seq or higher (0: nothing known), which lets a seal advance open_min_seq. An
  // apply whose samples all follow the open ones sets the pair to its own sequence number and
  // first time; one that inserts among them can only lower last_apply_seq to its own: an
  // appender reserves before its commit takes a sequence number, so two commits of one series
  // may take them in the opposite order of their samples' times.
  uint64_t last_apply_seq = 0;
  int64_t last_apply_first_t = std::numeric_limits<int64_t>::max();
  int32_t inflight = 0;
  int32_t pins = 0;      // holders of this pointer outside the shard lock; not evicted while > 0
  bool has_last = false;
  bool has_tail = false;
  bool indexed = false;  // the series index keys are durable
  bool sealing = false;  // a seal of `open` is being written; nobody else seals meanwhile
  // DBImpl's SeriesBounds may hold an end time for this id: cleared before samples are added.
  bool bounded = false;

  // Decodes label_bytes (which were validated when the series was made).
  Labels labels() const;
  // Approximate heap bytes owned by this series.
  int64_t MemoryBytes() const;

 private:
  struct LabelSpace {
    size_t bytes;
  };
  explicit MemSeries(uint32_t num_pairs) : num_pairs_(num_pairs) {}
  const uint32_t* pair_ids() const { return reinterpret_cast<const uint32_t*>(this + 1); }
  uint32_t* pair_ids() { return reinterpret_cast<uint32_t*>(this + 1); }
  static void* operator new(size_t size, LabelSpace extra) {
    return ::operator new(size + extra.bytes);
  }
  static void operator delete(void* p, LabelSpace) { ::operator delete(p); }

  const uint32_t num_pairs_;
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
  static constexpr size_t kShards = 64;

  // Lookup key: the series hash plus what equality needs.
  struct Key {
    uint64_t hash;
    uint32_t tenant;
    LabelsArg labels;
  };
  // Lookup by id, when the hash is known (a series' labels decide its hash, its id its labels).
  struct IdKey {
    uint64_t hash;
    uint32_t tenant;
    uint64_t id;
  };
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(const MemSeries* s) const { return s->hash; }
    size_t operator()(const Key& k) const { return k.hash; }
    size_t operator()(const IdKey& k) const { return k.hash; }
  };
  struct KeyEq {
    using is_transparent = void;
    bool operator()(const MemSeries* a, const MemSeries* b) const { return a == b; }
    bool operator()(const MemSeries* a, const Key& b) const { return Matches(*a, b); }
    bool operator()(const Key& a, const MemSeries* b) const { return Matches(*b, a); }
    bool operator()(const MemSeries* a, const IdKey& b) const {
      return a->hash == b.hash && a->tenant == b.tenant && a->id == b.id;
    }
    bool operator()(const IdKey& a, const MemSeries* b) const { return (*this)(b, a); }
    static bool Matches(const MemSeries& s, const Key& k);
  };

  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_set<MemSeries*, KeyHash, KeyEq> series ABSL_GUARDED_BY(mu);
    int seals ABSL_GUARDED_BY(mu) = 0;  // seals of this shard's series being written
  };

  Head() = default;
  Head(const Head&) = delete;
  Head& operator=(const Head&) = delete;
  ~Head();

  Shard& ShardFor(uint64_t hash) { return shards_[hash >> 58]; }
  Shard& ShardOf(const MemSeries& s) { return ShardFor(s.hash); }
  std::array<Shard, kShards>& shards() { return shards_; }

  // The series of `key` in its shard (the caller holds the shard's lock), or nullptr.
  static MemSeries* FindLocked(Shard& shard, const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Adds `s` (owned by the head from now on) to its shard; the caller holds the lock and has
  // checked that no equal series is there.
  static void InsertLocked(Shard& shard, std::unique_ptr<MemSeries> s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Removes and frees `s`; the caller holds the lock and `s` is unpinned.
  static void EraseLocked(Shard& shard, MemSeries* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

 private:
  static_assert(kShards == 64, "ShardFor takes the top 6 bits of the hash");
  std::array<Shard, kShards> shards_;
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_HEAD_H_
