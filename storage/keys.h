// Key and value encodings of Tidemark's RocksDB column families (internal to storage/).
//
// Byte layouts are documented in storage/FORMAT.md ("Keys and values"); every function here
// appends to the caller's buffer or decodes from a string_view and validates what it reads.
// Stateless; thread-safe.
#ifndef TIDEMARK_STORAGE_KEYS_H_
#define TIDEMARK_STORAGE_KEYS_H_

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/labels.h"
#include "storage/sample.h"

namespace tidemark::internal {

inline constexpr uint32_t kFormatVersion = 2;
inline constexpr int64_t kMsPerDay = 24LL * 3600 * 1000;

// Column family names.
inline constexpr char kMetaCF[] = "meta";
inline constexpr char kSeriesCF[] = "series";
inline constexpr char kPostingsCF[] = "postings";
inline constexpr char kChunksCF[] = "chunks";
inline constexpr char kWalCF[] = "wal";
// Added in format version 1 without a version bump (see FORMAT.md): ingest's side data.
inline constexpr char kExemplarsCF[] = "exemplars";
inline constexpr char kMetadataCF[] = "metadata";
inline constexpr char kStateCF[] = "state";

// Meta keys.
inline constexpr char kMetaFormatVersion[] = "format_version";
inline constexpr char kMetaNextSeriesId[] = "next_series_id";
inline constexpr char kMetaNextTenantId[] = "next_tenant_id";
inline constexpr char kMetaTimeRange[] = "time_range";
inline constexpr char kMetaTenantPrefix[] = "tenant:";

// Fixed-width big-endian integers.
void PutU32BE(std::string* out, uint32_t v);
void PutU64BE(std::string* out, uint64_t v);
uint32_t GetU32BE(std::string_view in);  // in.size() >= 4
uint64_t GetU64BE(std::string_view in);  // in.size() >= 8
// Signed integers with the sign bit flipped, so that byte order is numeric order.
void PutI64Ordered(std::string* out, int64_t v);
int64_t GetI64Ordered(std::string_view in);
void PutI32Ordered(std::string* out, int32_t v);
int32_t GetI32Ordered(std::string_view in);

// LEB128 unsigned varints. GetVarint advances `in`; false on truncation or overlong input.
void PutVarint(std::string* out, uint64_t v);
bool GetVarint(std::string_view* in, uint64_t* v);

// The day partition of a timestamp: floor(t / 86400000).
int32_t DayOf(int64_t t_ms);

// Labels as bytes: for each label, varint(len(name)) name varint(len(value)) value.
void EncodeLabels(const Labels& labels, std::string* out);
absl::StatusOr<Labels> DecodeLabels(std::string_view in);
// The same as views into `in`, appended to *out; false when `in` is truncated.
bool DecodeLabelViews(std::string_view in, std::vector<LabelView>* out);
// True when EncodeLabels(labels) == bytes, without encoding (no allocation).
bool LabelsEqualEncoded(const Labels& labels, std::string_view bytes);
bool LabelsEqualEncoded(std::span<const LabelView> labels, std::string_view bytes);
// 8 and 4 bytes at p, in the machine's order (for comparing and hashing short strings).
inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// a[0, n) == b[0, n), without a call for strings of up to 16 bytes (most label names and
// values): two overlapping loads from each, all within the strings.
inline bool BytesEqual(const char* a, const char* b, size_t n) {
  if (n >= 8) {
    if (n > 16) return std::memcmp(a, b, n) == 0;
    return Load64(a) == Load64(b) && Load64(a + n - 8) == Load64(b + n - 8);
  }
  if (n >= 4) return Load32(a) == Load32(b) && Load32(a + n - 4) == Load32(b + n - 4);
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// One label's bytes (a "pair"): true when `pair` is exactly EncodeLabels of {name: value}.
// Inline for a name and value of under 128 bytes each (one length byte each), which is how the
// head confirms a series found by its hash.
bool LabelEqualsEncodedAnyLength(std::string_view name, std::string_view value,
                                 std::string_view pair);
inline bool LabelEqualsEncoded(std::string_view name, std::string_view value,
                               std::string_view pair) {
  const size_t n = name.size(), m = value.size();
  if (n >= 0x80 || m >= 0x80) return LabelEqualsEncodedAnyLength(name, value, pair);
  const char* p = pair.data();
  return pair.size() == n + m + 2 && static_cast<uint8_t>(p[0]) == n &&
         static_cast<uint8_t>(p[n + 1]) == m && BytesEqual(p + 1, name.data(), n) &&
         BytesEqual(p + n + 2, value.data(), m);
}
// Splits the first label's bytes off `*in` into *pair; false (nothing consumed) when `*in` does
// not start with a whole label.
bool SplitEncodedLabel(std::string_view* in, std::string_view* pair);

// series CF.
std::string SeriesByLabelsKey(uint32_t tenant, const Labels& labels);
std::string SeriesByLabelBytesKey(uint32_t tenant, std::string_view label_bytes);
std::string SeriesByIdKey(uint32_t tenant, uint64_t series_id);
// The prefix of every 'I' key of `tenant`.
std::string SeriesByIdPrefix(uint32_t tenant);

// postings CF: tenant | day | name \0 value \0 | series id.
std::string PostingsDayPrefix(uint32_t tenant, int32_t day);
std::string PostingsNamePrefix(uint32_t tenant, int32_t day, std::string_view name);
std::string PostingsValuePrefix(uint32_t tenant, int32_t day, std::string_view name,
                                std::string_view value);
std::string PostingKey(uint32_t tenant, int32_t day, std::string_view name,
                       std::string_view value, uint64_t series_id);
struct ParsedPosting {
  uint32_t tenant = 0;
  int32_t day = 0;
  std::string_view name;
  std::string_view value;
  uint64_t series_id = 0;
};
bool ParsePostingKey(std::string_view key, ParsedPosting* out);

// chunks CF: tenant | day | series id | start time (ordered). `day` is DayOf(start time): a
// chunk holds the samples of one UTC day only, so that retention drops whole days.
std::string ChunkDayPrefix(uint32_t tenant, int32_t day);
std::string ChunkSeriesPrefix(uint32_t tenant, int32_t day, uint64_t series_id);
std::string ChunkKey(uint32_t tenant, uint64_t series_id, int64_t start_ms);
inline constexpr size_t kChunkKeySize = 4 + 4 + 8 + 8;
// ChunkSeriesPrefix's size: the part of a chunk key that `chunks`' prefix bloom filters hold.
inline constexpr size_t kChunkSeriesPrefixSize = 4 + 4 + 8;
// Start time and day of a chunk key (key.size() == kChunkKeySize).
inline int64_t ChunkKeyStart(std::string_view key) { return GetI64Ordered(key.substr(16)); }
inline int32_t ChunkKeyDay(std::string_view key) { return GetI32Ordered(key.substr(4)); }
// Format version 1 keyed chunks tenant | series id | start time (20 bytes); DB::Open rewrites
// them (storage/FORMAT.md, "Upgrading from format version 1").
inline constexpr size_t kChunkKeySizeV1 = 4 + 8 + 8;
// The first instant of `day` and of the day after it (saturating).
int64_t DayStartMs(int32_t day);
int64_t DayEndMs(int32_t day);  // the first instant of day + 1

// wal CF: 8-byte big-endian sequence number.
std::string WalKey(uint64_t seq);

// One WAL record: the samples of one commit.
struct WalEntry {
  uint32_t tenant = 0;
  uint64_t series_id = 0;
  bool has_labels = false;  // set when the commit created the series
  Labels labels;
  bool out_of_order = false;  // older than the series' newest sample when accepted
  std::vector<Sample> samples;
};
// Encodes a record in the current version (2).
void EncodeWalRecord(const std::vector<WalEntry>& entries, std::string* out);
// The same, streamed: BeginWalRecord, then exactly `num_entries` AppendWalEntry calls with the
// same `base_t` (any timestamp; the first sample's keeps the deltas small). `label_bytes` is
// EncodeLabels' form, written when `has_labels`. `samples` is not empty.
void BeginWalRecord(std::string* out, size_t num_entries, int64_t base_t);
void AppendWalEntry(std::string* out, int64_t base_t, uint32_t tenant, uint64_t series_id,
                    bool has_labels, std::string_view label_bytes, bool out_of_order,
                    const Sample* samples, size_t num_samples);
// Decodes records of version 1 and 2 (a deletion record is an error here: check
// IsWalDeletion first).
absl::StatusOr<std::vector<WalEntry>> DecodeWalRecord(std::string_view in);
// The same, entry by entry and without copies: the views are valid during the call only. Stops
// at the first error, the callback's included.
struct WalEntryView {
  uint32_t tenant = 0;
  uint64_t series_id = 0;
  bool has_labels = false;
  std::string_view label_bytes;  // EncodeLabels' form, when has_labels
  bool out_of_order = false;
  std::span<const Sample> samples;
};
absl::Status ForEachWalEntry(std::string_view record,
                             absl::FunctionRef<absl::Status(const WalEntryView&)> fn);

// A deletion record (version 3): the samples in [mint, maxt] of these series of one tenant were
// deleted. Replay removes them from what earlier records put in the head.
struct WalDeletion {
  uint32_t tenant = 0;
  int64_t mint = 0;
  int64_t maxt = 0;
  std::vector<uint64_t> series_ids;
};
bool IsWalDeletion(std::string_view record);
void EncodeWalDeletion(const WalDeletion& deletion, std::string* out);
absl::StatusOr<WalDeletion> DecodeWalDeletion(std::string_view in);

// A seal record (version 4): these series' open samples at or before `end_t` were written as
// sealed chunks (in the same batch). Replay removes them from the head, so a head checkpoint
// taken before the seal does not bring them back.
struct WalSeal {
  struct Series {
    uint32_t tenant = 0;
    uint64_t series_id = 0;
    int64_t end_t = 0;
  };
  std::vector<Series> series;
};
bool IsWalSeal(std::string_view record);
void EncodeWalSeal(const WalSeal& seal, std::string* out);
absl::StatusOr<WalSeal> DecodeWalSeal(std::string_view in);

// exemplars CF: a per-tenant ring of sequence numbers and a per-series index.
//   ring:  tenant 'R' u64 seq                                   -> the index key
//   index: tenant 'X' uvarint len(labels) labels i64o t u64 seq -> exemplar value
std::string ExemplarRingKey(uint32_t tenant, uint64_t seq);
std::string ExemplarRingPrefix(uint32_t tenant);
// The index keys of one series share this prefix (the length prefix makes it prefix-free).
std::string ExemplarSeriesPrefix(uint32_t tenant, const Labels& series);
std::string ExemplarIndexPrefix(uint32_t tenant);
inline constexpr size_t kExemplarKeySuffixSize = 16;  // i64o t, u64 seq
// Splits an index key into the series' label bytes, t and seq; false when malformed.
bool ParseExemplarIndexKey(std::string_view key, std::string_view* series_labels,
                           int64_t* t, uint64_t* seq);
// Value: u8 version (1), uvarint len(labels), labels, u64 IEEE-754 bits of the value.
void EncodeExemplarValue(const Labels& labels, double value, std::string* out);
absl::Status DecodeExemplarValue(std::string_view in, Labels* labels, double* value);

// metadata CF: tenant metric-name -> u8 version (1), then type, help, unit, each as uvarint
// length and bytes.
std::string MetadataKey(uint32_t tenant, std::string_view metric);
void EncodeMetadata(std::string_view type, std::string_view help, std::string_view unit,
                    std::string* out);
absl::Status DecodeMetadata(std::string_view in, std::string* type, std::string* help,
                            std::string* unit);

// state CF: tenant key -> the caller's bytes.
std::string StateKey(uint32_t tenant, std::string_view key);

// The first 4 bytes of every tenant-first key.
std::string TenantPrefix(uint32_t tenant);

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_KEYS_H_
