#include "storage/keys.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "storage/querier.h"

namespace tidemark::internal {

void PutU32BE(std::string* out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutU64BE(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32BE(std::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

uint64_t GetU64BE(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

void PutI64Ordered(std::string* out, int64_t v) {
  PutU64BE(out, static_cast<uint64_t>(v) ^ (1ULL << 63));
}

int64_t GetI64Ordered(std::string_view in) {
  return static_cast<int64_t>(GetU64BE(in) ^ (1ULL << 63));
}

void PutI32Ordered(std::string* out, int32_t v) {
  PutU32BE(out, static_cast<uint32_t>(v) ^ (1U << 31));
}

int32_t GetI32Ordered(std::string_view in) {
  return static_cast<int32_t>(GetU32BE(in) ^ (1U << 31));
}

namespace {

// Writes v as a varint (at most 10 bytes) at p; returns the end.
char* WriteVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

}  // namespace

void PutVarint(std::string* out, uint64_t v) {
  char buf[10];
  out->append(buf, static_cast<size_t>(WriteVarint(buf, v) - buf));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0, i = 0; shift <= 63 && i < static_cast<int>(in->size()); shift += 7, ++i) {
    uint8_t b = static_cast<uint8_t>((*in)[i]);
    if (shift == 63 && b > 1) return false;
    result |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      in->remove_prefix(i + 1);
      *v = result;
      return true;
    }
  }
  return false;
}

int32_t DayOf(int64_t t_ms) {
  int64_t d = t_ms / kMsPerDay;
  if (t_ms % kMsPerDay != 0 && t_ms < 0) --d;
  // Timestamps beyond +-5.8 million years share the first and last day.
  d = std::clamp<int64_t>(d, std::numeric_limits<int32_t>::min(),
                          std::numeric_limits<int32_t>::max());
  return static_cast<int32_t>(d);
}

void EncodeLabels(const Labels& labels, std::string* out) {
  for (const Label& l : labels) {
    PutVarint(out, l.name.size());
    out->append(l.name);
    PutVarint(out, l.value.size());
    out->append(l.value);
  }
}

namespace {

bool GetLengthPrefixed(std::string_view* in, std::string_view* out) {
  uint64_t n;
  if (!GetVarint(in, &n) || n > in->size()) return false;
  *out = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

absl::StatusOr<Labels> DecodeLabels(std::string_view in) {
  std::vector<Label> labels;
  const size_t total = in.size();
  while (!in.empty()) {
    std::string_view name, value;
    if (!GetLengthPrefixed(&in, &name) || !GetLengthPrefixed(&in, &value)) {
      return absl::DataLossError(
          absl::StrCat("decode labels (", total, " bytes): truncated at label ", labels.size()));
    }
    labels.push_back(Label{std::string(name), std::string(value)});
  }
  return Labels::FromSortedUnchecked(std::move(labels));
}

bool DecodeLabelViews(std::string_view in, std::vector<LabelView>* out) {
  while (!in.empty()) {
    LabelView l;
    if (!GetLengthPrefixed(&in, &l.name) || !GetLengthPrefixed(&in, &l.value)) return false;
    out->push_back(l);
  }
  return true;
}

std::string SeriesByLabelsKey(uint32_t tenant, const Labels& labels) {
  std::string key;
  PutU32BE(&key, tenant);
  key.push_back('L');
  EncodeLabels(labels, &key);
  return key;
}

namespace {

// Consumes varint(len(s)) s from `in`; false when `in` does not start with exactly that.
inline bool ConsumeLengthPrefixed(std::string_view* in, std::string_view s) {
  if (s.size() < 0x80) {  // one length byte: the common case, no varint decoding
    if (in->size() < s.size() + 1 || static_cast<uint8_t>((*in)[0]) != s.size() ||
        !BytesEqual(in->data() + 1, s.data(), s.size())) {
      return false;
    }
    in->remove_prefix(s.size() + 1);
    return true;
  }
  std::string_view got;
  if (!GetLengthPrefixed(in, &got)) return false;
  return got == s;
}

template <typename Range>
bool EqualEncoded(const Range& labels, std::string_view bytes) {
  for (const auto& l : labels) {
    if (!ConsumeLengthPrefixed(&bytes, l.name) || !ConsumeLengthPrefixed(&bytes, l.value)) {
      return false;
    }
  }
  return bytes.empty();
}

}  // namespace

bool LabelsEqualEncoded(const Labels& labels, std::string_view bytes) {
  return EqualEncoded(labels, bytes);
}

bool LabelsEqualEncoded(std::span<const LabelView> labels, std::string_view bytes) {
  return EqualEncoded(labels, bytes);
}

bool LabelEqualsEncodedAnyLength(std::string_view name, std::string_view value,
                                 std::string_view pair) {
  return ConsumeLengthPrefixed(&pair, name) && ConsumeLengthPrefixed(&pair, value) && pair.empty();
}

bool SplitEncodedLabel(std::string_view* in, std::string_view* pair) {
  std::string_view rest = *in, name, value;
  if (!GetLengthPrefixed(&rest, &name) || !GetLengthPrefixed(&rest, &value)) return false;
  *pair = in->substr(0, in->size() - rest.size());
  *in = rest;
  return true;
}

std::string SeriesByLabelBytesKey(uint32_t tenant, std::string_view label_bytes) {
  std::string key;
  key.reserve(5 + label_bytes.size());
  PutU32BE(&key, tenant);
  key.push_back('L');
  key.append(label_bytes);
  return key;
}

std::string SeriesByIdPrefix(uint32_t tenant) {
  std::string key;
  PutU32BE(&key, tenant);
  key.push_back('I');
  return key;
}

std::string SeriesByIdKey(uint32_t tenant, uint64_t series_id) {
  std::string key;
  PutU32BE(&key, tenant);
  key.push_back('I');
  PutU64BE(&key, series_id);
  return key;
}

std::string PostingsDayPrefix(uint32_t tenant, int32_t day) {
  std::string key;
  PutU32BE(&key, tenant);
  PutI32Ordered(&key, day);
  return key;
}

std::string PostingsNamePrefix(uint32_t tenant, int32_t day, std::string_view name) {
  std::string key = PostingsDayPrefix(tenant, day);
  key.append(name);
  key.push_back('\0');
  return key;
}

std::string PostingsValuePrefix(uint32_t tenant, int32_t day, std::string_view name,
                                std::string_view value) {
  std::string key = PostingsNamePrefix(tenant, day, name);
  key.append(value);
  key.push_back('\0');
  return key;
}

std::string PostingKey(uint32_t tenant, int32_t day, std::string_view name,
                       std::string_view value, uint64_t series_id) {
  std::string key = PostingsValuePrefix(tenant, day, name, value);
  PutU64BE(&key, series_id);
  return key;
}

bool ParsePostingKey(std::string_view key, ParsedPosting* out) {
  // tenant(4) day(4) name \0 value \0 id(8): at least 18 bytes.
  if (key.size() < 18) return false;
  out->tenant = GetU32BE(key);
  out->day = GetI32Ordered(key.substr(4));
  out->series_id = GetU64BE(key.substr(key.size() - 8));
  std::string_view mid = key.substr(8, key.size() - 16);  // name \0 value \0
  if (mid.back() != '\0') return false;
  size_t sep = mid.find('\0');
  if (sep == mid.size() - 1) return false;
  out->name = mid.substr(0, sep);
  out->value = mid.substr(sep + 1, mid.size() - sep - 2);
  return true;
}

std::string ChunkDayPrefix(uint32_t tenant, int32_t day) {
  std::string key;
  PutU32BE(&key, tenant);
  PutI32Ordered(&key, day);
  return key;
}

std::string ChunkSeriesPrefix(uint32_t tenant, int32_t day, uint64_t series_id) {
  std::string key = ChunkDayPrefix(tenant, day);
  PutU64BE(&key, series_id);
  return key;
}

std::string ChunkKey(uint32_t tenant, uint64_t series_id, int64_t start_ms) {
  std::string key = ChunkSeriesPrefix(tenant, DayOf(start_ms), series_id);
  PutI64Ordered(&key, start_ms);
  return key;
}

int64_t DayStartMs(int32_t day) {
  // The first and last days also hold every timestamp beyond them (DayOf clamps).
  if (day == std::numeric_limits<int32_t>::min()) return std::numeric_limits<int64_t>::min();
  return int64_t{day} * kMsPerDay;
}

int64_t DayEndMs(int32_t day) {
  if (day == std::numeric_limits<int32_t>::max()) return std::numeric_limits<int64_t>::max();
  return DayStartMs(day + 1);
}

std::string WalKey(uint64_t seq) {
  std::string key;
  PutU64BE(&key, seq);
  return key;
}

namespace {
constexpr uint8_t kWalRecordV1 = 1;
constexpr uint8_t kWalRecordV2 = 2;
constexpr uint8_t kWalDeletion = 3;
constexpr uint8_t kWalSeal = 4;
constexpr uint8_t kWalFlagLabels = 1;
constexpr uint8_t kWalFlagOutOfOrder = 2;

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

uint64_t GetU64LE(std::string_view in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

}  // namespace

void BeginWalRecord(std::string* out, size_t num_entries, int64_t base_t) {
  out->push_back(static_cast<char>(kWalRecordV2));
  PutVarint(out, num_entries);
  PutVarint(out, ZigZag(base_t));
}

void AppendWalEntry(std::string* out, int64_t base_t, uint32_t tenant, uint64_t series_id,
                    bool has_labels, std::string_view label_bytes, bool out_of_order,
                    const Sample* samples,
                    size_t num_samples) {
  // Written in place into room for the longest encoding (varints of 10 bytes at most), then cut
  // to what was written: no capacity check per byte.
  const size_t old_size = out->size();
  const size_t labels = has_labels ? label_bytes.size() : 0;
  out->resize(old_size + 10 * 3 + 1 + (has_labels ? 10 : 0) + labels + 18 * num_samples);
  char* p = out->data() + old_size;
  p = WriteVarint(p, tenant);
  p = WriteVarint(p, series_id);
  *p++ = static_cast<char>((has_labels ? kWalFlagLabels : 0) |
                           (out_of_order ? kWalFlagOutOfOrder : 0));
  if (has_labels) {
    p = WriteVarint(p, labels);
    std::memcpy(p, label_bytes.data(), labels);
    p += labels;
  }
  p = WriteVarint(p, num_samples);
  int64_t prev = base_t;
  for (size_t i = 0; i < num_samples; ++i) {
    // Wrapping difference: any pair of int64 timestamps round-trips.
    p = WriteVarint(p, ZigZag(static_cast<int64_t>(static_cast<uint64_t>(samples[i].t) -
                                                   static_cast<uint64_t>(prev))));
    const uint64_t bits = std::bit_cast<uint64_t>(samples[i].v);
    for (int b = 0; b < 8; ++b) *p++ = static_cast<char>(bits >> (8 * b));  // little-endian
    prev = samples[i].t;
  }
  out->resize(static_cast<size_t>(p - out->data()));
}

void EncodeWalRecord(const std::vector<WalEntry>& entries, std::string* out) {
  int64_t base_t = 0;
  for (const WalEntry& e : entries) {
    if (!e.samples.empty()) {
      base_t = e.samples.front().t;
      break;
    }
  }
  BeginWalRecord(out, entries.size(), base_t);
  std::string labels;
  for (const WalEntry& e : entries) {
    labels.clear();
    if (e.has_labels) EncodeLabels(e.labels, &labels);
    AppendWalEntry(out, base_t, e.tenant, e.series_id, e.has_labels, labels, e.out_of_order,
                   e.samples.data(),
                   e.samples.size());
  }
}

bool IsWalDeletion(std::string_view record) {
  return !record.empty() && static_cast<uint8_t>(record[0]) == kWalDeletion;
}

void EncodeWalDeletion(const WalDeletion& deletion, std::string* out) {
  out->push_back(static_cast<char>(kWalDeletion));
  PutVarint(out, deletion.tenant);
  PutVarint(out, ZigZag(deletion.mint));
  PutVarint(out, ZigZag(deletion.maxt));
  PutVarint(out, deletion.series_ids.size());
  for (uint64_t id : deletion.series_ids) PutVarint(out, id);
}

absl::StatusOr<WalDeletion> DecodeWalDeletion(std::string_view in) {
  const size_t total = in.size();
  auto corrupt = [total](std::string_view what) {
    return absl::DataLossError(
        absl::StrCat("decode WAL deletion record (", total, " bytes): ", std::string(what)));
  };
  if (!IsWalDeletion(in)) return corrupt("not a deletion record");
  in.remove_prefix(1);
  WalDeletion d;
  uint64_t tenant, zmin, zmax, n;
  if (!GetVarint(&in, &tenant) || tenant > std::numeric_limits<uint32_t>::max()) {
    return corrupt("bad tenant");
  }
  if (!GetVarint(&in, &zmin) || !GetVarint(&in, &zmax)) return corrupt("bad time range");
  if (!GetVarint(&in, &n) || n > in.size()) return corrupt("bad series count");
  d.tenant = static_cast<uint32_t>(tenant);
  d.mint = UnZigZag(zmin);
  d.maxt = UnZigZag(zmax);
  d.series_ids.resize(n);
  for (uint64_t& id : d.series_ids) {
    if (!GetVarint(&in, &id)) return corrupt("truncated series id");
  }
  if (!in.empty()) return corrupt("trailing bytes");
  return d;
}

bool IsWalSeal(std::string_view record) {
  return !record.empty() && static_cast<uint8_t>(record[0]) == kWalSeal;
}

void EncodeWalSeal(const WalSeal& seal, std::string* out) {
  out->push_back(static_cast<char>(kWalSeal));
  PutVarint(out, seal.series.size());
  for (const WalSeal::Series& s : seal.series) {
    PutVarint(out, s.tenant);
    PutVarint(out, s.series_id);
    PutVarint(out, ZigZag(s.end_t));
  }
}

absl::StatusOr<WalSeal> DecodeWalSeal(std::string_view in) {
  const size_t total = in.size();
  auto corrupt = [total](std::string_view what) {
    return absl::DataLossError(
        absl::StrCat("decode WAL seal record (", total, " bytes): ", std::string(what)));
  };
  if (!IsWalSeal(in)) return corrupt("not a seal record");
  in.remove_prefix(1);
  uint64_t n;
  if (!GetVarint(&in, &n) || n > in.size()) return corrupt("bad series count");
  WalSeal seal;
  seal.series.resize(n);
  for (WalSeal::Series& s : seal.series) {
    uint64_t tenant, zt;
    if (!GetVarint(&in, &tenant) || tenant > std::numeric_limits<uint32_t>::max() ||
        !GetVarint(&in, &s.series_id) || !GetVarint(&in, &zt)) {
      return corrupt("truncated series");
    }
    s.tenant = static_cast<uint32_t>(tenant);
    s.end_t = UnZigZag(zt);
  }
  if (!in.empty()) return corrupt("trailing bytes");
  return seal;
}

absl::Status ForEachWalEntry(std::string_view in,
                             absl::FunctionRef<absl::Status(const WalEntryView&)> fn) {
  const size_t total = in.size();
  auto corrupt = [total](std::string_view what) {
    return absl::DataLossError(
        absl::StrCat("decode WAL record (", total, " bytes): ", std::string(what)));
  };
  if (in.empty()) return corrupt("empty");
  const uint8_t version = static_cast<uint8_t>(in[0]);
  if (version != kWalRecordV1 && version != kWalRecordV2) {
    return corrupt(absl::StrCat("unknown record version ", static_cast<int>(in[0])));
  }
  in.remove_prefix(1);
  uint64_t n;
  if (!GetVarint(&in, &n) || n > in.size()) return corrupt("bad entry count");
  uint64_t zbase = 0;
  if (version == kWalRecordV2 && !GetVarint(&in, &zbase)) return corrupt("bad base time");
  const int64_t base_t = UnZigZag(zbase);
  // One buffer for every entry's samples: a record costs no allocation once it has grown.
  absl::InlinedVector<Sample, 8> samples;
  for (uint64_t i = 0; i < n; ++i) {
    WalEntryView e;
    uint8_t flags;
    if (version == kWalRecordV1) {
      if (in.size() < 13) return corrupt("truncated entry header");
      e.tenant = GetU32BE(in);
      e.series_id = GetU64BE(in.substr(4));
      flags = static_cast<uint8_t>(in[12]);
      in.remove_prefix(13);
    } else {
      uint64_t tenant, id;
      if (!GetVarint(&in, &tenant) || tenant > std::numeric_limits<uint32_t>::max() ||
          !GetVarint(&in, &id) || in.empty()) {
        return corrupt("truncated entry header");
      }
      e.tenant = static_cast<uint32_t>(tenant);
      e.series_id = id;
      flags = static_cast<uint8_t>(in[0]);
      in.remove_prefix(1);
    }
    if (flags & ~(kWalFlagLabels | kWalFlagOutOfOrder)) return corrupt("unknown entry flags");
    e.out_of_order = (flags & kWalFlagOutOfOrder) != 0;
    if (flags & kWalFlagLabels) {
      if (!GetLengthPrefixed(&in, &e.label_bytes)) return corrupt("truncated labels");
      e.has_labels = true;
    }
    uint64_t ns;
    samples.clear();
    if (version == kWalRecordV1) {
      if (!GetVarint(&in, &ns) || ns > in.size() / 16) return corrupt("bad sample count");
      samples.resize(ns);
      for (Sample& s : samples) {
        s.t = static_cast<int64_t>(GetU64BE(in));
        s.v = std::bit_cast<double>(GetU64BE(in.substr(8)));
        in.remove_prefix(16);
      }
    } else {
      if (!GetVarint(&in, &ns) || ns > in.size() / 9) return corrupt("bad sample count");
      samples.resize(ns);
      int64_t prev = base_t;
      for (Sample& s : samples) {
        uint64_t zd;
        if (!GetVarint(&in, &zd) || in.size() < 8) return corrupt("truncated sample");
        s.t = static_cast<int64_t>(static_cast<uint64_t>(prev) +
                                   static_cast<uint64_t>(UnZigZag(zd)));
        s.v = std::bit_cast<double>(GetU64LE(in));
        in.remove_prefix(8);
        prev = s.t;
      }
    }
    e.samples = std::span<const Sample>(samples.data(), samples.size());
    if (absl::Status st = fn(e); !st.ok()) return st;
  }
  if (!in.empty()) return corrupt("trailing bytes");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<WalEntry>> DecodeWalRecord(std::string_view in) {
  std::vector<WalEntry> entries;
  absl::Status st = ForEachWalEntry(in, [&entries](const WalEntryView& v) -> absl::Status {
    WalEntry e;
    e.tenant = v.tenant;
    e.series_id = v.series_id;
    e.out_of_order = v.out_of_order;
    if (v.has_labels) {
      auto decoded = DecodeLabels(v.label_bytes);
      if (!decoded.ok()) return decoded.status();
      e.has_labels = true;
      e.labels = *std::move(decoded);
    }
    e.samples.assign(v.samples.begin(), v.samples.end());
    entries.push_back(std::move(e));
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return entries;
}

std::string TenantPrefix(uint32_t tenant) {
  std::string key;
  PutU32BE(&key, tenant);
  return key;
}

std::string ExemplarRingPrefix(uint32_t tenant) {
  std::string key = TenantPrefix(tenant);
  key.push_back('R');
  return key;
}

std::string ExemplarRingKey(uint32_t tenant, uint64_t seq) {
  std::string key = ExemplarRingPrefix(tenant);
  PutU64BE(&key, seq);
  return key;
}

std::string ExemplarIndexPrefix(uint32_t tenant) {
  std::string key = TenantPrefix(tenant);
  key.push_back('X');
  return key;
}

std::string ExemplarSeriesPrefix(uint32_t tenant, const Labels& series) {
  std::string labels;
  EncodeLabels(series, &labels);
  std::string key = ExemplarIndexPrefix(tenant);
  PutVarint(&key, labels.size());
  key.append(labels);
  return key;
}

bool ParseExemplarIndexKey(std::string_view key, std::string_view* series_labels, int64_t* t,
                           uint64_t* seq) {
  if (key.size() < 5 || key[4] != 'X') return false;
  std::string_view in = key.substr(5);
  uint64_t n;
  if (!GetVarint(&in, &n) || in.size() < kExemplarKeySuffixSize ||
      n != in.size() - kExemplarKeySuffixSize) {
    return false;
  }
  *series_labels = in.substr(0, n);
  *t = GetI64Ordered(in.substr(n));
  *seq = GetU64BE(in.substr(n + 8));
  return true;
}

namespace {
constexpr uint8_t kSideValueVersion = 1;
}  // namespace

void EncodeExemplarValue(const Labels& labels, double value, std::string* out) {
  out->push_back(static_cast<char>(kSideValueVersion));
  std::string bytes;
  EncodeLabels(labels, &bytes);
  PutVarint(out, bytes.size());
  out->append(bytes);
  PutU64BE(out, std::bit_cast<uint64_t>(value));
}

absl::Status DecodeExemplarValue(std::string_view in, Labels* labels, double* value) {
  const size_t total = in.size();
  std::string_view bytes;
  if (in.empty() || static_cast<uint8_t>(in[0]) != kSideValueVersion) {
    return absl::DataLossError(absl::StrCat("decode exemplar (", total, " bytes): bad version"));
  }
  in.remove_prefix(1);
  if (!GetLengthPrefixed(&in, &bytes) || in.size() != 8) {
    return absl::DataLossError(absl::StrCat("decode exemplar (", total, " bytes): truncated"));
  }
  auto decoded = DecodeLabels(bytes);
  if (!decoded.ok()) return decoded.status();
  *labels = *std::move(decoded);
  *value = std::bit_cast<double>(GetU64BE(in));
  return absl::OkStatus();
}

std::string MetadataKey(uint32_t tenant, std::string_view metric) {
  std::string key = TenantPrefix(tenant);
  key.append(metric);
  return key;
}

void EncodeMetadata(std::string_view type, std::string_view help, std::string_view unit,
                    std::string* out) {
  out->push_back(static_cast<char>(kSideValueVersion));
  for (std::string_view field : {type, help, unit}) {
    PutVarint(out, field.size());
    out->append(field);
  }
}

absl::Status DecodeMetadata(std::string_view in, std::string* type, std::string* help,
                            std::string* unit) {
  const size_t total = in.size();
  if (in.empty() || static_cast<uint8_t>(in[0]) != kSideValueVersion) {
    return absl::DataLossError(absl::StrCat("decode metadata (", total, " bytes): bad version"));
  }
  in.remove_prefix(1);
  for (std::string* field : {type, help, unit}) {
    std::string_view bytes;
    if (!GetLengthPrefixed(&in, &bytes)) {
      return absl::DataLossError(absl::StrCat("decode metadata (", total, " bytes): truncated"));
    }
    field->assign(bytes);
  }
  if (!in.empty()) {
    return absl::DataLossError(absl::StrCat("decode metadata (", total, " bytes): trailing bytes"));
  }
  return absl::OkStatus();
}

std::string StateKey(uint32_t tenant, std::string_view key) {
  std::string out = TenantPrefix(tenant);
  out.append(key);
  return out;
}

}  // namespace tidemark::internal

namespace tidemark {

namespace {

class EmptySampleIterator : public SampleIterator {
 public:
  explicit EmptySampleIterator(absl::Status status) : status_(std::move(status)) {}
  bool Next() override { return false; }
  bool Seek(int64_t) override { return false; }
  Sample At() const override { return Sample{}; }
  absl::Status status() const override { return status_; }

 private:
  const absl::Status status_;
};

}  // namespace

std::unique_ptr<SampleIterator> NewEmptySampleIterator(absl::Status status) {
  return std::make_unique<EmptySampleIterator>(std::move(status));
}

absl::StatusOr<Labels> Series::TakeLabels() {
  if (source == nullptr || labels_taken) return std::move(labels);
  labels_taken = true;
  return source->LabelsAt(index);
}

SampleIterator& Series::Samples() {
  if (samples == nullptr) {
    samples = source != nullptr ? source->SamplesAt(index) : NewEmptySampleIterator();
  }
  return *samples;
}

uint64_t Series::ReadOrder() const {
  if (samples != nullptr) return samples->ReadOrder();
  return source != nullptr ? source->ReadOrderAt(index) : 0;
}

}  // namespace tidemark
