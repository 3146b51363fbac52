// Delta state encoding and the DB-backed DeltaStateStore.
#include "ingest/otlp_delta.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ingest/otlp.h"
#include "storage/db.h"

namespace tidemark::ingest {
namespace internal {
namespace {

constexpr uint8_t kVersion = 1;
constexpr uint32_t kMaxBuckets = 1 << 20;

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutF64(std::string* out, double v) { PutU64(out, std::bit_cast<uint64_t>(v)); }
void PutVec(std::string* out, const std::vector<double>& v) {
  PutU32(out, static_cast<uint32_t>(v.size()));
  for (double d : v) PutF64(out, d);
}

struct Reader {
  std::string_view in;
  bool ok = true;
  uint64_t U64() {
    if (in.size() < 8) return ok = false, 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
    in.remove_prefix(8);
    return v;
  }
  uint32_t U32() {
    if (in.size() < 4) return ok = false, 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << (8 * i);
    in.remove_prefix(4);
    return v;
  }
  uint8_t U8() {
    if (in.empty()) return ok = false, 0;
    uint8_t v = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    return v;
  }
  double F64() { return std::bit_cast<double>(U64()); }
  std::vector<double> Vec() {
    uint32_t n = U32();
    if (!ok || n > kMaxBuckets || in.size() < static_cast<size_t>(n) * 8) {
      ok = false;
      return {};
    }
    std::vector<double> v(n);
    for (double& d : v) d = F64();
    return v;
  }
};

// Floor division of a bucket index by 2^shift.
int32_t ShiftIndex(int32_t index, int32_t shift) { return index >> shift; }

void DownscaleSide(int32_t& offset, std::vector<double>& counts, int32_t shift) {
  if (shift <= 0 || counts.empty()) return;
  int32_t new_offset = ShiftIndex(offset, shift);
  int32_t last = ShiftIndex(offset + static_cast<int32_t>(counts.size()) - 1, shift);
  std::vector<double> merged(static_cast<size_t>(last - new_offset + 1), 0.0);
  for (size_t i = 0; i < counts.size(); ++i) {
    merged[static_cast<size_t>(ShiftIndex(offset + static_cast<int32_t>(i), shift) - new_offset)] +=
        counts[i];
  }
  offset = new_offset;
  counts = std::move(merged);
}

void AddSide(int32_t& offset, std::vector<double>& counts, int32_t other_offset,
             const std::vector<double>& other) {
  if (other.empty()) return;
  if (counts.empty()) {
    offset = other_offset;
    counts = other;
    return;
  }
  int32_t lo = std::min(offset, other_offset);
  int32_t hi = std::max(offset + static_cast<int32_t>(counts.size()),
                        other_offset + static_cast<int32_t>(other.size()));
  std::vector<double> merged(static_cast<size_t>(hi - lo), 0.0);
  for (size_t i = 0; i < counts.size(); ++i) merged[offset - lo + i] += counts[i];
  for (size_t i = 0; i < other.size(); ++i) merged[other_offset - lo + i] += other[i];
  offset = lo;
  counts = std::move(merged);
}

}  // namespace

void ExpBuckets::Downscale(int32_t to) {
  if (to >= scale) return;
  int32_t shift = scale - to;
  DownscaleSide(pos_offset, pos, shift);
  DownscaleSide(neg_offset, neg, shift);
  scale = to;
}

void ExpBuckets::Add(ExpBuckets other) {
  int32_t to = std::min(scale, other.scale);
  Downscale(to);
  other.Downscale(to);
  zero_threshold = std::max(zero_threshold, other.zero_threshold);
  zero_count += other.zero_count;
  AddSide(pos_offset, pos, other.pos_offset, other.pos);
  AddSide(neg_offset, neg, other.neg_offset, other.neg);
}

std::string EncodeDeltaState(const DeltaState& s) {
  std::string out;
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(s.kind));
  PutU64(&out, s.start_ns);
  PutU64(&out, s.last_ns);
  switch (s.kind) {
    case DeltaState::Kind::kNumber:
      PutF64(&out, s.value);
      break;
    case DeltaState::Kind::kHistogram:
      PutF64(&out, s.sum);
      PutF64(&out, s.count);
      PutVec(&out, s.bounds);
      PutVec(&out, s.buckets);
      break;
    case DeltaState::Kind::kExponential:
      PutF64(&out, s.sum);
      PutF64(&out, s.count);
      PutU32(&out, static_cast<uint32_t>(s.exp.scale));
      PutF64(&out, s.exp.zero_threshold);
      PutF64(&out, s.exp.zero_count);
      PutU32(&out, static_cast<uint32_t>(s.exp.pos_offset));
      PutVec(&out, s.exp.pos);
      PutU32(&out, static_cast<uint32_t>(s.exp.neg_offset));
      PutVec(&out, s.exp.neg);
      break;
  }
  return out;
}

std::optional<DeltaState> DecodeDeltaState(std::string_view bytes) {
  Reader r{bytes};
  if (r.U8() != kVersion) return std::nullopt;
  DeltaState s;
  uint8_t kind = r.U8();
  if (kind < 1 || kind > 3) return std::nullopt;
  s.kind = static_cast<DeltaState::Kind>(kind);
  s.start_ns = r.U64();
  s.last_ns = r.U64();
  switch (s.kind) {
    case DeltaState::Kind::kNumber:
      s.value = r.F64();
      break;
    case DeltaState::Kind::kHistogram:
      s.sum = r.F64();
      s.count = r.F64();
      s.bounds = r.Vec();
      s.buckets = r.Vec();
      if (r.ok && s.buckets.size() != s.bounds.size() + 1) return std::nullopt;
      break;
    case DeltaState::Kind::kExponential:
      s.sum = r.F64();
      s.count = r.F64();
      s.exp.scale = static_cast<int32_t>(r.U32());
      s.exp.zero_threshold = r.F64();
      s.exp.zero_count = r.F64();
      s.exp.pos_offset = static_cast<int32_t>(r.U32());
      s.exp.pos = r.Vec();
      s.exp.neg_offset = static_cast<int32_t>(r.U32());
      s.exp.neg = r.Vec();
      if (s.exp.scale < -10 || s.exp.scale > 20) return std::nullopt;
      break;
  }
  if (!r.ok || !r.in.empty()) return std::nullopt;
  return s;
}

}  // namespace internal

namespace {

// DB-backed store with a bounded read-through cache.
class DbDeltaStateStore : public DeltaStateStore {
 public:
  explicit DbDeltaStateStore(DB* db) : db_(db) {}

  absl::StatusOr<std::optional<std::string>> Get(std::string_view tenant,
                                                 std::string_view key) override {
    std::string cache_key = CacheKey(tenant, key);
    {
      absl::MutexLock lock(&mu_);
      auto it = cache_.find(cache_key);
      if (it != cache_.end()) return it->second;
    }
    absl::StatusOr<std::optional<std::string>> got = db_->GetState(tenant, key);
    if (!got.ok()) return got.status();
    absl::MutexLock lock(&mu_);
    Remember(std::move(cache_key), *got);
    return got;
  }

  absl::Status Put(std::string_view tenant, std::string_view key,
                   std::string_view value) override {
    absl::Status s = db_->PutState(tenant, key, value);
    absl::MutexLock lock(&mu_);
    if (s.ok()) {
      Remember(CacheKey(tenant, key),
               value.empty() ? std::nullopt : std::optional<std::string>(std::string(value)));
    } else {
      cache_.erase(CacheKey(tenant, key));  // read it back from the DB next time
    }
    return s;
  }

 private:
  static constexpr size_t kMaxCached = 1 << 20;

  static std::string CacheKey(std::string_view tenant, std::string_view key) {
    std::string k;
    k.reserve(tenant.size() + key.size() + 1);
    k.append(tenant);
    k.push_back('\0');
    k.append(key);
    return k;
  }

  void Remember(std::string key, std::optional<std::string> value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (cache_.size() >= kMaxCached) cache_.clear();  // crude bound: the DB stays the truth
    cache_[std::move(key)] = std::move(value);
  }

  DB* const db_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::optional<std::string>> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<DeltaStateStore> NewDbDeltaStateStore(DB* db) {
  return std::make_unique<DbDeltaStateStore>(db);
}

}  // namespace tidemark::ingest
