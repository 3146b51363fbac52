#include "storage/series_bounds.h"

#include <algorithm>
#include <limits>

namespace tidemark::internal {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kMaxOffset = std::numeric_limits<uint16_t>::max();

int64_t FloorMinute(int64_t t) {
  return t / kMinuteMs - (t % kMinuteMs < 0 ? 1 : 0);
}

}  // namespace

void SeriesBounds::Set(uint64_t id, int64_t max_t) {
  const int64_t end = FloorMinute(max_t) + 1;  // every sample is before this minute
  const uint64_t key = id >> kBlockBits;
  auto store = [&](Block& block) {
    const int64_t offset = end - block.base;
    const uint16_t v = offset >= 1 && offset <= kMaxOffset ? static_cast<uint16_t>(offset) : 0;
    block.entries[id & (kBlockSize - 1)].store(v);
  };
  {
    absl::ReaderMutexLock lock(&mu_);
    if (key < first_block_) return;  // forgotten ids stay unknown
    if (auto it = blocks_.find(key); it != blocks_.end()) {
      store(*it->second);
      return;
    }
  }
  absl::MutexLock lock(&mu_);
  if (key < first_block_) return;
  std::unique_ptr<Block>& slot = blocks_[key];
  if (slot == nullptr) {
    slot = std::make_unique<Block>();
    // Centred on the first bound: the block's series end within weeks of each other.
    slot->base = end - kMaxOffset / 2;
    slot->entries = std::make_unique<std::atomic<uint16_t>[]>(kBlockSize);
  }
  store(*slot);
}

void SeriesBounds::Clear(uint64_t id) {
  absl::ReaderMutexLock lock(&mu_);
  if (auto it = blocks_.find(id >> kBlockBits); it != blocks_.end()) {
    it->second->entries[id & (kBlockSize - 1)].store(0);
  }
}

bool SeriesBounds::Before(const Block& b, uint64_t id, int64_t t) {
  const uint16_t v = b.entries[id & (kBlockSize - 1)].load();
  return v != 0 && b.base + v <= FloorMinute(t);
}

bool SeriesBounds::EndsBefore(uint64_t id, int64_t t) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = blocks_.find(id >> kBlockBits);
  return it != blocks_.end() && Before(*it->second, id, t);
}

size_t SeriesBounds::RemoveEndingBefore(std::vector<uint64_t>* ids, int64_t t) const {
  absl::ReaderMutexLock lock(&mu_);
  if (blocks_.empty()) return 0;
  const Block* block = nullptr;
  uint64_t block_key = std::numeric_limits<uint64_t>::max();
  size_t kept = 0;
  for (uint64_t id : *ids) {
    if (id >> kBlockBits != block_key) {
      block_key = id >> kBlockBits;
      auto it = blocks_.find(block_key);
      block = it != blocks_.end() ? it->second.get() : nullptr;
    }
    if (block != nullptr && Before(*block, id, t)) continue;
    (*ids)[kept++] = id;
  }
  const size_t removed = ids->size() - kept;
  ids->resize(kept);
  return removed;
}

void SeriesBounds::DropBelow(uint64_t id) {
  absl::MutexLock lock(&mu_);
  first_block_ = std::max(first_block_, id >> kBlockBits);
  absl::erase_if(blocks_, [this](const auto& kv) { return kv.first < first_block_; });
}

int64_t SeriesBounds::MemoryBytes() const {
  absl::ReaderMutexLock lock(&mu_);
  return static_cast<int64_t>(blocks_.size() *
                              (sizeof(Block) + kBlockSize * sizeof(std::atomic<uint16_t>)));
}

}  // namespace tidemark::internal
