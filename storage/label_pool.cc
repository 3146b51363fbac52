#include "storage/label_pool.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/hash/hash.h"

namespace tidemark::internal {

LabelPool& LabelPool::Global() {
  static LabelPool* pool = new LabelPool();  // never destroyed: series may outlive statics
  return *pool;
}

LabelPool::LabelPool() : segments_(new std::atomic<Segment*>[kSegments]) {
  for (uint32_t k = 0; k < kSegments; ++k) segments_[k].store(nullptr, std::memory_order_relaxed);
}

LabelPool::~LabelPool() {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (Entry* e : shard.entries) ::operator delete(e);
  }
  for (uint32_t k = 0; k < kSegments; ++k) delete[] segments_[k].load(std::memory_order_relaxed);
}

size_t LabelPool::EntryHash::operator()(std::string_view s) const {
  return absl::HashOf(absl::string_view(s.data(), s.size()));
}

LabelPool::Segment* LabelPool::EnsureSegment(uint32_t k) {
  Segment* seg = segments_[k].load(std::memory_order_acquire);
  if (seg != nullptr) return seg;
  absl::MutexLock lock(&segments_mu_);
  seg = segments_[k].load(std::memory_order_relaxed);
  if (seg == nullptr) {
    seg = new Segment[kSegmentSize];
    for (uint32_t i = 0; i < kSegmentSize; ++i) seg[i].store(nullptr, std::memory_order_relaxed);
    segment_bytes_.fetch_add(static_cast<int64_t>(sizeof(Segment) * kSegmentSize),
                             std::memory_order_relaxed);
    segments_[k].store(seg, std::memory_order_release);
  }
  return seg;
}

uint32_t LabelPool::Ref(std::string_view pair) {
  const size_t hash = EntryHash{}(pair);
  // The top bits pick the shard; the set uses the low ones.
  const uint32_t shard_index = static_cast<uint32_t>(static_cast<uint64_t>(hash) >>
                                                     (64 - kShardBits));
  Shard& shard = shards_[shard_index];
  absl::MutexLock lock(&shard.mu);
  auto it = shard.entries.find(pair);
  if (it != shard.entries.end()) {
    ++(*it)->refs;
    return (*it)->id;
  }
  uint32_t local;
  if (!shard.free_ids.empty()) {
    local = shard.free_ids.back();
    shard.free_ids.pop_back();
  } else {
    local = shard.next_local++;
  }
  const uint32_t id = (local << kShardBits) | shard_index;
  if ((id >> kSegmentBits) >= kSegments) {
    // 2^30 distinct pairs held at once: far beyond any memory this process could have.
    std::abort();
  }
  void* mem = ::operator new(sizeof(Entry) + pair.size());
  auto* e = new (mem) Entry{id, static_cast<uint32_t>(pair.size()), 1};
  std::memcpy(const_cast<char*>(e->bytes()), pair.data(), pair.size());
  shard.entries.insert(e);
  shard.bytes += static_cast<int64_t>(sizeof(Entry) + pair.size());
  EnsureSegment(id >> kSegmentBits)[id & (kSegmentSize - 1)].store(e, std::memory_order_release);
  return id;
}

void LabelPool::Unref(uint32_t id) {
  const Entry* e = segments_[id >> kSegmentBits].load(std::memory_order_acquire)
                       [id & (kSegmentSize - 1)]
                           .load(std::memory_order_acquire);
  Shard& shard = shards_[id & (kShards - 1)];
  absl::MutexLock lock(&shard.mu);
  Entry* mut = const_cast<Entry*>(e);
  if (--mut->refs > 0) return;
  shard.entries.erase(mut);
  segments_[id >> kSegmentBits].load(std::memory_order_relaxed)[id & (kSegmentSize - 1)].store(
      nullptr, std::memory_order_relaxed);
  shard.free_ids.push_back(id >> kShardBits);
  shard.bytes -= static_cast<int64_t>(sizeof(Entry) + e->size);
  ::operator delete(mut);
}

int64_t LabelPool::size() const {
  int64_t n = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    n += static_cast<int64_t>(shard.entries.size());
  }
  return n;
}

int64_t LabelPool::MemoryBytes() const {
  int64_t bytes = segment_bytes_.load(std::memory_order_relaxed) +
                  static_cast<int64_t>(sizeof(std::atomic<Segment*>) * kSegments);
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    bytes += shard.bytes +
             static_cast<int64_t>(shard.entries.capacity() * (sizeof(Entry*) + 1) +
                                  shard.free_ids.capacity() * sizeof(uint32_t));
  }
  return bytes;
}

}  // namespace tidemark::internal
