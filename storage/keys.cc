#include "storage/keys.h"

#include <algorithm>
#include <bit>
#include <limits>

#include "absl/strings/str_cat.h"

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

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
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

std::string SeriesByLabelsKey(uint32_t tenant, const Labels& labels) {
  std::string key;
  PutU32BE(&key, tenant);
  key.push_back('L');
  EncodeLabels(labels, &key);
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

std::string ChunkSeriesPrefix(uint32_t tenant, uint64_t series_id) {
  std::string key;
  PutU32BE(&key, tenant);
  PutU64BE(&key, series_id);
  return key;
}

std::string ChunkKey(uint32_t tenant, uint64_t series_id, int64_t start_ms) {
  std::string key = ChunkSeriesPrefix(tenant, series_id);
  PutI64Ordered(&key, start_ms);
  return key;
}

std::string WalKey(uint64_t seq) {
  std::string key;
  PutU64BE(&key, seq);
  return key;
}

namespace {
constexpr uint8_t kWalRecordVersion = 1;
constexpr uint8_t kWalFlagLabels = 1;
}  // namespace

void EncodeWalRecord(const std::vector<WalEntry>& entries, std::string* out) {
  out->push_back(static_cast<char>(kWalRecordVersion));
  PutVarint(out, entries.size());
  for (const WalEntry& e : entries) {
    PutU32BE(out, e.tenant);
    PutU64BE(out, e.series_id);
    out->push_back(static_cast<char>(e.has_labels ? kWalFlagLabels : 0));
    if (e.has_labels) {
      std::string labels;
      EncodeLabels(e.labels, &labels);
      PutVarint(out, labels.size());
      out->append(labels);
    }
    PutVarint(out, e.samples.size());
    for (const Sample& s : e.samples) {
      PutU64BE(out, static_cast<uint64_t>(s.t));
      PutU64BE(out, std::bit_cast<uint64_t>(s.v));
    }
  }
}

absl::StatusOr<std::vector<WalEntry>> DecodeWalRecord(std::string_view in) {
  const size_t total = in.size();
  auto corrupt = [total](std::string_view what) {
    return absl::DataLossError(
        absl::StrCat("decode WAL record (", total, " bytes): ", std::string(what)));
  };
  if (in.empty()) return corrupt("empty");
  if (static_cast<uint8_t>(in[0]) != kWalRecordVersion) {
    return corrupt(absl::StrCat("unknown record version ", static_cast<int>(in[0])));
  }
  in.remove_prefix(1);
  uint64_t n;
  if (!GetVarint(&in, &n) || n > in.size()) return corrupt("bad entry count");
  std::vector<WalEntry> entries(n);
  for (WalEntry& e : entries) {
    if (in.size() < 13) return corrupt("truncated entry header");
    e.tenant = GetU32BE(in);
    e.series_id = GetU64BE(in.substr(4));
    uint8_t flags = static_cast<uint8_t>(in[12]);
    in.remove_prefix(13);
    if (flags & ~kWalFlagLabels) return corrupt("unknown entry flags");
    if (flags & kWalFlagLabels) {
      std::string_view labels;
      if (!GetLengthPrefixed(&in, &labels)) return corrupt("truncated labels");
      auto decoded = DecodeLabels(labels);
      if (!decoded.ok()) return decoded.status();
      e.has_labels = true;
      e.labels = *std::move(decoded);
    }
    uint64_t ns;
    if (!GetVarint(&in, &ns) || ns > in.size() / 16) return corrupt("bad sample count");
    e.samples.resize(ns);
    for (Sample& s : e.samples) {
      s.t = static_cast<int64_t>(GetU64BE(in));
      s.v = std::bit_cast<double>(GetU64BE(in.substr(8)));
      in.remove_prefix(16);
    }
  }
  if (!in.empty()) return corrupt("trailing bytes");
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
