#include "storage/head.h"

#include <bit>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/hash/hash.h"

#include "storage/keys.h"
#include "storage/label_pool.h"

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
  int64_t day_end = DayEndMs(DayOf(open[0].t));  // a chunk holds one day (FORMAT.md)
  for (size_t i = 1; i < open.size(); ++i) {
    if (i - begin >= max || (max_span_ms > 0 && open[i].t - open[begin].t >= max_span_ms) ||
        open[i].t >= day_end) {
      cuts.emplace_back(begin, i);
      begin = i;
      day_end = DayEndMs(DayOf(open[i].t));
    }
  }
  if (force || open.size() - begin >= max) cuts.emplace_back(begin, open.size());
  return cuts;
}

namespace {

// The 128-bit product of a and b, folded to 64 bits (wyhash's mixing step).
uint64_t Fold(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

constexpr uint64_t kMix1 = 0xa0761d6478bd642fULL;
constexpr uint64_t kMix2 = 0xe7037ed1a0b428dbULL;

// Per process, as absl::Hash's seed is: the hash is never stored.
uint64_t Seed() {
  static const uint64_t seed = absl::HashOf(&kMix1);
  return seed;
}

// h with the bytes and the length of `s` mixed in. Strings of up to 16 bytes (most label names
// and values) take one multiplication, with reads that stay within the string.
inline uint64_t MixString(uint64_t h, std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t a = 0, b = 0;
  if (n <= 16) {
    if (n >= 8) {
      a = Load64(p);
      b = Load64(p + n - 8);
    } else if (n >= 4) {
      a = Load32(p);
      b = Load32(p + n - 4);
    } else if (n > 0) {
      a = static_cast<uint64_t>(static_cast<uint8_t>(p[0])) << 16 |
          static_cast<uint64_t>(static_cast<uint8_t>(p[n >> 1])) << 8 |
          static_cast<uint8_t>(p[n - 1]);
    }
  } else {
    size_t left = n;
    while (left > 16) {
      h = Fold(Load64(p) ^ kMix1, Load64(p + 8) ^ h);
      p += 16;
      left -= 16;
    }
    a = Load64(p + left - 16);  // the last 16 bytes (n > 16: within the string)
    b = Load64(p + left - 8);
  }
  return Fold(a ^ kMix1, b ^ h ^ (n * kMix2));
}

template <typename Range>
uint64_t HashLabels(const Range& labels) {
  uint64_t h = Seed();
  for (const auto& l : labels) {
    h = MixString(h, std::string_view(l.name.data(), l.name.size()));
    h = MixString(h, std::string_view(l.value.data(), l.value.size()));
  }
  return Fold(h ^ kMix2, labels.size() ^ kMix1);
}

}  // namespace

uint64_t LabelsHash(const Labels& labels) { return HashLabels(labels); }

uint64_t LabelsHash(std::span<const LabelView> labels) { return HashLabels(labels); }

bool LabelsArg::EqualsEncoded(std::string_view bytes) const {
  return labels != nullptr ? LabelsEqualEncoded(*labels, bytes) : LabelsEqualEncoded(views, bytes);
}

bool LabelsArg::operator==(const Labels& other) const {
  if (labels != nullptr) return *labels == other;
  if (views.size() != other.size()) return false;
  for (size_t i = 0; i < views.size(); ++i) {
    const Label& o = other.items()[i];
    if (views[i].name != o.name || views[i].value != o.value) return false;
  }
  return true;
}

uint64_t SeriesHash(uint32_t tenant, uint64_t labels_hash) {
  return absl::HashOf(labels_hash, tenant);
}

Labels MemSeries::labels() const {
  auto decoded = DecodeLabels(LabelBytes());
  return decoded.ok() ? *std::move(decoded) : Labels();
}

std::unique_ptr<MemSeries> MemSeries::Make(std::string_view label_bytes) {
  // Validated labels split into whole pairs; anything else is kept as one last "pair", so the
  // bytes come back as given either way.
  absl::InlinedVector<std::string_view, 16> pairs;
  std::string_view rest = label_bytes, pair;
  while (SplitEncodedLabel(&rest, &pair)) pairs.push_back(pair);
  if (!rest.empty()) pairs.push_back(rest);
  const auto n = static_cast<uint32_t>(pairs.size());
  std::unique_ptr<MemSeries> s(new (LabelSpace{sizeof(uint32_t) * n}) MemSeries(n));
  LabelPool& pool = LabelPool::Global();
  uint32_t* ids = s->pair_ids();
  for (uint32_t i = 0; i < n; ++i) ids[i] = pool.Ref(pairs[i]);
  return s;
}

MemSeries::~MemSeries() {
  LabelPool& pool = LabelPool::Global();
  const uint32_t* ids = pair_ids();
  for (uint32_t i = 0; i < num_pairs_; ++i) pool.Unref(ids[i]);
}

void MemSeries::AppendLabelBytes(std::string* out) const {
  const LabelPool& pool = LabelPool::Global();
  const uint32_t* ids = pair_ids();
  for (uint32_t i = 0; i < num_pairs_; ++i) out->append(pool.Get(ids[i]));
}

std::string MemSeries::LabelBytes() const {
  std::string out;
  AppendLabelBytes(&out);
  return out;
}

namespace {

template <typename Range>
bool PairsEqual(const Range& labels, const uint32_t* ids, uint32_t n) {
  if (labels.size() != n) return false;
  const LabelPool& pool = LabelPool::Global();
  for (uint32_t i = 0; i < n; ++i) {
    const auto& l = labels[i];
    if (!LabelEqualsEncoded(l.name, l.value, pool.Get(ids[i]))) return false;
  }
  return true;
}

}  // namespace

bool MemSeries::LabelsEqual(const LabelsArg& labels) const {
  return labels.labels != nullptr ? PairsEqual(labels.labels->items(), pair_ids(), num_pairs_)
                                  : PairsEqual(labels.views, pair_ids(), num_pairs_);
}

int64_t MemSeries::MemoryBytes() const {
  int64_t bytes = static_cast<int64_t>(sizeof(MemSeries) + sizeof(void*) * 2);  // + set slot
  bytes += static_cast<int64_t>(label_id_bytes());
  bytes += open.MemoryBytes();
  return bytes;
}

bool Head::KeyEq::Matches(const MemSeries& s, const Key& k) {
  return s.hash == k.hash && s.tenant == k.tenant && s.LabelsEqual(k.labels);
}

Head::~Head() {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (MemSeries* s : shard.series) delete s;
    shard.series.clear();
  }
}

MemSeries* Head::FindLocked(Shard& shard, const Key& key) {
  auto it = shard.series.find(key);
  return it == shard.series.end() ? nullptr : *it;
}

void Head::InsertLocked(Shard& shard, std::unique_ptr<MemSeries> s) {
  shard.series.insert(s.release());
}

void Head::EraseLocked(Shard& shard, MemSeries* s) {
  shard.series.erase(s);
  delete s;
}

}  // namespace tidemark::internal
