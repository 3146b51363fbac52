#include "storage/head.h"

#include <bit>

#include "storage/keys.h"

namespace tidemark::internal {

Verdict CheckSample(bool has_last, const Sample& last, const Sample& s) {
  if (!has_last || s.t > last.t) return Verdict::kAccept;
  if (s.t < last.t) return Verdict::kOutOfOrder;
  return std::bit_cast<uint64_t>(s.v) == std::bit_cast<uint64_t>(last.v) ? Verdict::kIgnore
                                                                         : Verdict::kDuplicate;
}

std::vector<std::pair<size_t, size_t>> ChunkCuts(const std::vector<Sample>& open,
                                                 int max_samples, int64_t max_span_ms,
                                                 bool force) {
  std::vector<std::pair<size_t, size_t>> cuts;
  if (open.empty()) return cuts;
  const size_t max = max_samples > 0 ? static_cast<size_t>(max_samples) : 1;
  size_t begin = 0;
  for (size_t i = 1; i < open.size(); ++i) {
    if (i - begin >= max || (max_span_ms > 0 && open[i].t - open[begin].t >= max_span_ms)) {
      cuts.emplace_back(begin, i);
      begin = i;
    }
  }
  if (force || open.size() - begin >= max) cuts.emplace_back(begin, open.size());
  return cuts;
}

std::string Head::Key(uint32_t tenant, const Labels& labels) {
  std::string key;
  PutU32BE(&key, tenant);
  EncodeLabels(labels, &key);
  return key;
}

Head::Shard& Head::ShardFor(const std::string& key) {
  // FNV-1a over the key: stable and cheap.
  uint64_t h = 1469598103934665603ULL;
  for (char c : key) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ULL;
  }
  return shards_[h % kShards];
}

}  // namespace tidemark::internal
