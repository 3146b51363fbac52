// Chunk codec. Byte layout (the full description, byte by byte, is in storage/FORMAT.md,
// "## Chunks"):
//
//   version      1 byte      format version, = 1
//   num_samples  uvarint     1 .. kMaxSamplesPerChunk
//   min_time     zigzag uvarint  timestamp of the first sample (ms)
//   span         uvarint     max_time - min_time as an unsigned 64-bit number;
//                            min_time + span <= INT64_MAX; span >= num_samples - 1
//   ts_encoding  1 byte      TimestampEncoding id
//   val_encoding 1 byte      ValueEncoding id
//   ts_len       uvarint     byte length of the timestamp column
//   ts column    ts_len bytes
//   val column   every remaining byte of the chunk
//
// uvarint is LEB128 (7 bits a byte, low group first, at most 10 bytes); zigzag maps
// 0,-1,1,-2,... to 0,1,2,3,... Bit streams are packed most significant bit first and padded
// with zero bits to a whole byte; a decoder rejects a column with 8 or more unread bits.
//
// Timestamp column:
//   kRegular (2):      empty. interval = span / (num_samples - 1), which must divide exactly;
//                      t[i] = min_time + i * interval. One sample: span = 0.
//   kDeltaOfDelta (1): bit stream of num_samples - 1 entries. t[0] = min_time, d[0] = 0,
//                      d[i] = t[i] - t[i-1], dod[i] = d[i] - d[i-1], all modulo 2^64, dod read
//                      as two's complement:
//                        '0'                 dod = 0
//                        '10'    + 5 bits    dod in [-2^4,  2^4)
//                        '110'   + 12 bits   dod in [-2^11, 2^11)
//                        '1110'  + 20 bits   dod in [-2^19, 2^19)
//                        '11110' + 32 bits   dod in [-2^31, 2^31)
//                        '11111' + 64 bits   any dod
//                      Timestamps must strictly increase and the last one must be max_time.
//   kPacked (3):       uvarint interval, then an integer column (below) of num_samples - 1
//                      values x[i], i = 1..n-1: t[i] = min_time + i * interval + x[i] (mod 2^64).
// Value column:
//   kConstant (2): 8 bytes, the float's bits little-endian; every sample has them.
//   kXor (1):      bit stream: the first float's 64 bits, then per further sample
//                  x = bits[i] ^ bits[i-1]:
//                    '0'                             x = 0
//                    '10' + S bits                   x's meaningful bits in the previous
//                                                    window (L leading, S = 64 - L - T)
//                    '11' + 6 bits L + 6 bits S-1 + S bits
//                                                    a new window; L + S <= 64, T = 64 - L - S
//                  '10' is only valid after an '11'.
//   kDecimal (3):  1 byte e (0..15), uvarint num_exceptions (<= n), per exception uvarint gap
//                  (position = previous exception's position + 1 + gap, the first counts from
//                  0) and 8 bytes of float bits little-endian; then an integer column of n
//                  mantissas m[i]: v[i] = double(m[i]) / 10^e, except at exception positions.
//   kFloatBits (4): an integer column of n values: v[i] has the bits of value i.
// Integer column (storage/packed_ints.h): 1 byte order (0, 1, 2; <= count), zigzag uvarint
//   x[0] if order >= 1, zigzag uvarint x[1] - x[0] if order == 2, then a packed block of the
//   count - order residuals (order 0: x[i]; 1: x[i] - x[i-1]; 2: the delta of deltas), all
//   modulo 2^64: 1 byte width (0..64), zigzag uvarint base, uvarint mult (>= 1), uvarint
//   num_exceptions (<= entries), ceil(entries * width / 8) bytes of fields f (bit stream),
//   residual = base + mult * f, then per exception uvarint gap (as above) and zigzag uvarint
//   residual; an exception's field is 0. The block ends with the column.
#include "storage/chunk.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/bit_stream.h"
#include "storage/packed_ints.h"

namespace tidemark {
namespace {

constexpr uint8_t kChunkFormatVersion = 1;

// Parsed header plus the two column byte ranges.
struct Layout {
  ChunkInfo info;
  uint64_t span = 0;
  std::string_view ts_col;
  std::string_view val_col;
};

absl::Status Corrupt(std::string_view chunk, std::string_view what) {
  return absl::DataLossError(
      absl::StrCat("corrupt chunk (", chunk.size(), " bytes): ", std::string(what)));
}

absl::Status ParseLayout(std::string_view chunk, Layout* layout) {
  std::string_view in = chunk;
  if (in.empty()) return Corrupt(chunk, "empty");
  uint8_t version = static_cast<uint8_t>(in[0]);
  in.remove_prefix(1);
  if (version != kChunkFormatVersion) {
    return Corrupt(chunk, absl::StrCat("unsupported format version ", version));
  }
  uint64_t n, zz_min, span, ts_len;
  if (!internal::GetVarint64(&in, &n)) return Corrupt(chunk, "bad sample count");
  if (n == 0 || n > kMaxSamplesPerChunk) {
    return Corrupt(chunk, absl::StrCat("sample count ", n, " out of range"));
  }
  if (!internal::GetVarint64(&in, &zz_min)) return Corrupt(chunk, "bad min time");
  if (!internal::GetVarint64(&in, &span)) return Corrupt(chunk, "bad time span");
  int64_t min_t = internal::ZigZagDecode(zz_min);
  // max_time = min_time + span must not pass INT64_MAX.
  uint64_t room = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) -
                  static_cast<uint64_t>(min_t);
  if (span > room) return Corrupt(chunk, "max time overflows");
  if (span < n - 1) return Corrupt(chunk, "time span too short for strictly increasing times");
  if (n == 1 && span != 0) return Corrupt(chunk, "one sample but min time != max time");
  if (in.size() < 2) return Corrupt(chunk, "truncated encoding ids");
  uint8_t ts_enc = static_cast<uint8_t>(in[0]);
  uint8_t val_enc = static_cast<uint8_t>(in[1]);
  in.remove_prefix(2);
  if (!internal::GetVarint64(&in, &ts_len)) return Corrupt(chunk, "bad timestamp column length");
  if (ts_len > in.size()) return Corrupt(chunk, "timestamp column past the end");

  layout->info.num_samples = static_cast<uint32_t>(n);
  layout->info.min_time_ms = min_t;
  layout->info.max_time_ms = static_cast<int64_t>(static_cast<uint64_t>(min_t) + span);
  layout->span = span;
  layout->ts_col = in.substr(0, ts_len);
  layout->val_col = in.substr(ts_len);

  switch (static_cast<TimestampEncoding>(ts_enc)) {
    case TimestampEncoding::kRegular:
      if (ts_len != 0) return Corrupt(chunk, "regular timestamp column is not empty");
      if (n > 1 && span % (n - 1) != 0) return Corrupt(chunk, "irregular span");
      break;
    case TimestampEncoding::kDeltaOfDelta:
      if (ts_len * 8 < n - 1) return Corrupt(chunk, "timestamp column too short");
      break;
    case TimestampEncoding::kPacked:
      if (ts_len < 2) return Corrupt(chunk, "packed timestamp column too short");
      break;
    default:
      return Corrupt(chunk, absl::StrCat("unknown timestamp encoding ", ts_enc));
  }
  layout->info.timestamps = static_cast<TimestampEncoding>(ts_enc);

  switch (static_cast<ValueEncoding>(val_enc)) {
    case ValueEncoding::kConstant:
      if (layout->val_col.size() != 8) return Corrupt(chunk, "constant value column is not 8 bytes");
      break;
    case ValueEncoding::kXor:
      if (layout->val_col.size() < 8 || (layout->val_col.size() - 8) * 8 < n - 1) {
        return Corrupt(chunk, "value column too short");
      }
      break;
    case ValueEncoding::kDecimal:
    case ValueEncoding::kFloatBits:
      if (layout->val_col.size() < 5) return Corrupt(chunk, "value column too short");
      break;
    default:
      return Corrupt(chunk, absl::StrCat("unknown value encoding ", val_enc));
  }
  layout->info.values = static_cast<ValueEncoding>(val_enc);
  return absl::OkStatus();
}

uint64_t Bits(double v) { return std::bit_cast<uint64_t>(v); }

// Bucket widths of the delta-of-delta code, after prefixes '10', '110', '1110', '11110'.
constexpr int kDodWidths[] = {5, 12, 20, 32};

bool FitsSigned(int64_t v, int width) {
  int64_t lo = -(int64_t{1} << (width - 1));
  int64_t hi = (int64_t{1} << (width - 1)) - 1;
  return v >= lo && v <= hi;
}

// Counts the bits an encoder would write, to size a candidate without writing it.
struct BitCounter {
  size_t bits = 0;
  void WriteBit(bool) { ++bits; }
  void WriteBits(uint64_t, int n) { bits += static_cast<size_t>(n); }
};

template <typename Writer>
void DeltaOfDelta(std::span<const Sample> samples, Writer& w) {
  uint64_t prev_delta = 0;
  for (size_t i = 1; i < samples.size(); ++i) {
    uint64_t delta = static_cast<uint64_t>(samples[i].t) - static_cast<uint64_t>(samples[i - 1].t);
    int64_t dod = static_cast<int64_t>(delta - prev_delta);  // modular, C++20
    prev_delta = delta;
    if (dod == 0) {
      w.WriteBit(false);
      continue;
    }
    bool written = false;
    for (int b = 0; b < 4; ++b) {
      if (FitsSigned(dod, kDodWidths[b])) {
        // Prefix: b+1 one bits then a zero.
        w.WriteBits((uint64_t{1} << (b + 2)) - 2, b + 2);
        w.WriteBits(static_cast<uint64_t>(dod), kDodWidths[b]);
        written = true;
        break;
      }
    }
    if (!written) {
      w.WriteBits(0x1f, 5);
      w.WriteBits(static_cast<uint64_t>(dod), 64);
    }
  }
}

template <typename Writer>
void Xor(std::span<const Sample> samples, Writer& w) {
  uint64_t prev = Bits(samples[0].v);
  w.WriteBits(prev, 64);
  int leading = 0, trailing = 0;
  bool has_window = false;
  for (size_t i = 1; i < samples.size(); ++i) {
    uint64_t cur = Bits(samples[i].v);
    uint64_t x = cur ^ prev;
    prev = cur;
    if (x == 0) {
      w.WriteBit(false);
      continue;
    }
    int l = std::countl_zero(x);
    int t = std::countr_zero(x);
    int new_sig = 64 - l - t;
    int old_sig = 64 - leading - trailing;
    // Reuse the previous window when x fits in it and it is not costlier than a new one.
    if (has_window && l >= leading && t >= trailing && old_sig <= new_sig + 12) {
      w.WriteBits(0b10, 2);
      w.WriteBits(x >> trailing, old_sig);
    } else {
      w.WriteBits(0b11, 2);
      w.WriteBits(static_cast<uint64_t>(l), 6);
      w.WriteBits(static_cast<uint64_t>(new_sig - 1), 6);
      w.WriteBits(x >> t, new_sig);
      leading = l;
      trailing = t;
      has_window = true;
    }
  }
}

// Bytes of a column an encoder above would write (whole bytes, as BitWriter::Finish pads).
template <void (*Encode)(std::span<const Sample>, BitCounter&)>
size_t EncodedBytes(std::span<const Sample> samples) {
  BitCounter c;
  Encode(samples, c);
  return (c.bits + 7) / 8;
}

template <void (*Encode)(std::span<const Sample>, internal::BitWriter&)>
void AppendEncoded(std::span<const Sample> samples, std::string* out) {
  internal::BitWriter w(out);
  Encode(samples, w);
  w.Finish();
}

// ---- Decimals in disguise ----------------------------------------------------------------

constexpr int kMaxDecimalExponent = 15;
constexpr double kPow10[kMaxDecimalExponent + 1] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                                    1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                                    1e12, 1e13, 1e14, 1e15};
constexpr int64_t kIntPow10[kMaxDecimalExponent + 1] = {
    1,           10,           100,           1000,           10000,           100000,
    1000000,     10000000,     100000000,     1000000000,     10000000000,     100000000000,
    1000000000000, 10000000000000, 100000000000000, 1000000000000000};
constexpr double kMaxMantissa = 9007199254740992.0;  // 2^53: every integer below is exact

// The value a kDecimal mantissa stands for: the decoder's exact expression.
double FromDecimal(int64_t m, double scale) { return static_cast<double>(m) / scale; }

// True with *m when double(*m) / 10^e has exactly the bits of v (|*m| < 2^53).
bool DecimalMantissa(double v, int e, int64_t* m) {
  const double scaled = v * kPow10[e];
  if (!(std::fabs(scaled) < kMaxMantissa)) return false;  // also NaN and ±Inf
  const int64_t r = static_cast<int64_t>(std::nearbyint(scaled));
  if (Bits(FromDecimal(r, kPow10[e])) != Bits(v)) return false;  // -0.0 too
  *m = r;
  return true;
}

// The smallest exponent that represents v, with its mantissa; -1 if none does.
int MinDecimalExponent(double v, int64_t* m) {
  for (int e = 0; e <= kMaxDecimalExponent; ++e) {
    if (DecimalMantissa(v, e, m)) return e;
  }
  return -1;
}

// Memory reused by the encoder of one thread.
struct EncodeScratch {
  std::vector<uint64_t> ints;
  std::vector<uint64_t> residuals[2];
  std::vector<int8_t> exps;
  std::vector<int64_t> mants;
  std::vector<uint32_t> exceptions;
  std::string cand, best;
  // The timestamps of the last irregular timestamp column encoded, and that column.
  std::vector<int64_t> last_ts;
  std::string last_ts_col;
  TimestampEncoding last_ts_enc = TimestampEncoding::kDeltaOfDelta;
};

EncodeScratch& Scratch() {
  thread_local EncodeScratch scratch;
  return scratch;
}

// Appends a kDecimal value column with exponent e. exps/mants: each value's smallest
// exponent and its mantissa (exponent -1: not a decimal).
void AppendDecimal(std::span<const Sample> samples, int e, EncodeScratch& sc, std::string* out) {
  const size_t n = samples.size();
  sc.ints.assign(n, 0);
  sc.exceptions.clear();
  bool have_kept = false;
  uint64_t filler = 0;
  for (size_t i = 0; i < n; ++i) {
    const int ei = sc.exps[i];
    bool ok = ei >= 0 && ei <= e;
    int64_t m = 0;
    if (ok) {
      const int64_t f = kIntPow10[e - ei];
      ok = std::abs(sc.mants[i]) < static_cast<int64_t>(kMaxMantissa) / f;
      if (ok) {
        m = sc.mants[i] * f;
        ok = Bits(FromDecimal(m, kPow10[e])) == Bits(samples[i].v);
      }
    }
    if (ok) {
      sc.ints[i] = static_cast<uint64_t>(m);
      if (!have_kept) {
        // Leading exceptions take the first kept mantissa, so they cost no residual.
        for (uint32_t p : sc.exceptions) sc.ints[p] = static_cast<uint64_t>(m);
        have_kept = true;
      }
      filler = static_cast<uint64_t>(m);
    } else {
      sc.ints[i] = filler;  // repeats the previous mantissa: a zero delta
      sc.exceptions.push_back(static_cast<uint32_t>(i));
    }
  }
  out->push_back(static_cast<char>(e));
  internal::PutVarint64(out, sc.exceptions.size());
  size_t next = 0;
  for (uint32_t p : sc.exceptions) {
    internal::PutVarint64(out, p - next);
    const uint64_t bits = Bits(samples[p].v);
    for (int b = 0; b < 8; ++b) out->push_back(static_cast<char>(bits >> (8 * b)));
    next = p + 1;
  }
  internal::AppendIntColumn(sc.ints, out, sc.residuals);
}

// Appends a kFloatBits value column.
void AppendFloatBits(std::span<const Sample> samples, EncodeScratch& sc, std::string* out) {
  sc.ints.clear();
  for (const Sample& s : samples) sc.ints.push_back(Bits(s.v));
  internal::AppendIntColumn(sc.ints, out, sc.residuals);
}

// Whether enough of a spread sample of the values are decimals to try kDecimal at all (full
// float noise is not, and costs up to 16 tries a value to find out).
bool LooksDecimal(std::span<const Sample> samples) {
  const size_t n = samples.size();
  const size_t probes = std::min<size_t>(n, 8);
  size_t hits = 0;
  for (size_t j = 0; j < probes; ++j) {
    const size_t i = probes == 1 ? 0 : j * (n - 1) / (probes - 1);
    int64_t m;
    if (MinDecimalExponent(samples[i].v, &m) >= 0) ++hits;
  }
  return 2 * hits >= probes;
}

// Appends the smallest value column for samples (not all the same bits, n >= 2); returns its
// encoding.
ValueEncoding AppendValues(std::span<const Sample> samples, std::string* out) {
  EncodeScratch& sc = Scratch();
  const size_t n = samples.size();
  sc.best.clear();
  ValueEncoding best_enc = ValueEncoding::kXor;
  bool have_best = false;
  auto consider = [&](ValueEncoding enc) {
    if (!have_best || sc.cand.size() < sc.best.size()) {
      sc.best.swap(sc.cand);
      best_enc = enc;
      have_best = true;
    }
  };
  if (LooksDecimal(samples)) {
    sc.exps.resize(n);
    sc.mants.resize(n);
    size_t count_by_exp[kMaxDecimalExponent + 1] = {0};
    size_t none = 0;
    for (size_t i = 0; i < n; ++i) {
      int64_t m = 0;
      const int e = MinDecimalExponent(samples[i].v, &m);
      sc.exps[i] = static_cast<int8_t>(e);
      sc.mants[i] = m;
      if (e < 0) {
        ++none;
      } else {
        ++count_by_exp[e];
      }
    }
    // Candidates: the largest exponent any value needs (no exception but the non-decimals),
    // and the smallest one that leaves at most 1/16 of the values as exceptions.
    int e_max = -1, e_low = -1;
    size_t above = 0;
    for (int e = kMaxDecimalExponent; e >= 0; --e) {
      if (count_by_exp[e] == 0) continue;
      if (e_max < 0) e_max = e;
      if (none + above <= std::max<size_t>(1, n / 16)) e_low = e;
      above += count_by_exp[e];
    }
    if (e_max >= 0) {
      sc.cand.clear();
      AppendDecimal(samples, e_max, sc, &sc.cand);
      consider(ValueEncoding::kDecimal);
      if (e_low >= 0 && e_low != e_max) {
        sc.cand.clear();
        AppendDecimal(samples, e_low, sc, &sc.cand);
        consider(ValueEncoding::kDecimal);
      }
    }
  }
  // Float bits as integers: for noisy floats, unless decimals did well.
  if (!have_best || sc.best.size() > n) {
    sc.cand.clear();
    AppendFloatBits(samples, sc, &sc.cand);
    consider(ValueEncoding::kFloatBits);
  }
  // XOR costs at least 64 bits plus one bit a sample: skip it when that cannot win, and write
  // it only when it does.
  if (!have_best || (sc.best.size() > 8 + (n - 1 + 7) / 8 &&
                     EncodedBytes<Xor<BitCounter>>(samples) < sc.best.size())) {
    sc.cand.clear();
    AppendEncoded<Xor<internal::BitWriter>>(samples, &sc.cand);
    consider(ValueEncoding::kXor);
  }
  out->append(sc.best);
  return best_enc;
}

// Appends a kPacked timestamp column (n >= 2).
void EncodePackedTimestamps(std::span<const Sample> samples, std::string* out) {
  EncodeScratch& sc = Scratch();
  const size_t n = samples.size();
  // The grid's interval: the median delta.
  sc.ints.clear();
  for (size_t i = 1; i < n; ++i) {
    sc.ints.push_back(static_cast<uint64_t>(samples[i].t) - static_cast<uint64_t>(samples[i - 1].t));
  }
  auto mid = sc.ints.begin() + static_cast<std::ptrdiff_t>(sc.ints.size() / 2);
  std::nth_element(sc.ints.begin(), mid, sc.ints.end());
  const uint64_t interval = *mid;
  const uint64_t t0 = static_cast<uint64_t>(samples[0].t);
  sc.ints.clear();
  for (size_t i = 1; i < n; ++i) {
    sc.ints.push_back(static_cast<uint64_t>(samples[i].t) - t0 - static_cast<uint64_t>(i) * interval);
  }
  internal::PutVarint64(out, interval);
  internal::AppendIntColumn(sc.ints, out, sc.residuals);
}

}  // namespace

absl::Status EncodeChunk(std::span<const Sample> samples, std::string* out) {
  if (samples.empty()) return absl::InvalidArgumentError("encode chunk: no samples");
  if (samples.size() > kMaxSamplesPerChunk) {
    return absl::InvalidArgumentError(absl::StrCat("encode chunk: ", samples.size(),
                                                   " samples, more than ", kMaxSamplesPerChunk));
  }
  bool regular = true;
  bool constant = true;
  const uint64_t first_bits = Bits(samples[0].v);
  const uint64_t interval =
      samples.size() > 1
          ? static_cast<uint64_t>(samples[1].t) - static_cast<uint64_t>(samples[0].t)
          : 0;
  for (size_t i = 1; i < samples.size(); ++i) {
    if (samples[i].t <= samples[i - 1].t) {
      return absl::InvalidArgumentError(
          absl::StrCat("encode chunk: timestamps not strictly increasing at sample ", i, " (",
                       samples[i - 1].t, " then ", samples[i].t, ")"));
    }
    if (static_cast<uint64_t>(samples[i].t) - static_cast<uint64_t>(samples[i - 1].t) !=
        interval) {
      regular = false;
    }
    if (Bits(samples[i].v) != first_bits) constant = false;
  }

  const int64_t min_t = samples.front().t;
  const uint64_t span = static_cast<uint64_t>(samples.back().t) - static_cast<uint64_t>(min_t);

  // Timestamps: regular, else the smaller of delta-of-delta and packed grid offsets.
  TimestampEncoding ts_enc = TimestampEncoding::kRegular;
  std::string ts_col;
  if (!regular) {
    // The series of one scrape target share their timestamps, and their chunks are sealed one
    // after the other: the column of the previous chunk sealed by this thread often fits.
    EncodeScratch& sc = Scratch();
    const bool same = sc.last_ts.size() == samples.size() &&
                      std::equal(samples.begin(), samples.end(), sc.last_ts.begin(),
                                 [](const Sample& s, int64_t t) { return s.t == t; });
    if (same) {
      ts_col = sc.last_ts_col;
      ts_enc = sc.last_ts_enc;
    } else {
      EncodePackedTimestamps(samples, &ts_col);
      ts_enc = TimestampEncoding::kPacked;
      if (EncodedBytes<DeltaOfDelta<BitCounter>>(samples) <= ts_col.size()) {
        ts_col.clear();
        AppendEncoded<DeltaOfDelta<internal::BitWriter>>(samples, &ts_col);
        ts_enc = TimestampEncoding::kDeltaOfDelta;
      }
      sc.last_ts.resize(samples.size());
      for (size_t i = 0; i < samples.size(); ++i) sc.last_ts[i] = samples[i].t;
      sc.last_ts_col = ts_col;
      sc.last_ts_enc = ts_enc;
    }
  }

  out->push_back(static_cast<char>(kChunkFormatVersion));
  internal::PutVarint64(out, samples.size());
  internal::PutVarint64(out, internal::ZigZagEncode(min_t));
  internal::PutVarint64(out, span);
  out->push_back(static_cast<char>(ts_enc));
  const size_t val_enc_at = out->size();
  out->push_back(static_cast<char>(ValueEncoding::kConstant));
  internal::PutVarint64(out, ts_col.size());
  out->append(ts_col);
  if (constant) {
    for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(first_bits >> (8 * i)));
  } else {
    (*out)[val_enc_at] = static_cast<char>(AppendValues(samples, out));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChunkInfo> ReadChunkInfo(std::string_view chunk) {
  Layout layout;
  absl::Status s = ParseLayout(chunk, &layout);
  if (!s.ok()) return s;
  return layout.info;
}

ChunkIterator::ChunkIterator(std::string_view chunk) { Reset(chunk); }

void ChunkIterator::Reset(std::string_view chunk) {
  chunk_ = chunk;
  info_ = ChunkInfo();
  status_ = absl::OkStatus();
  cur_ = Sample();
  read_ = 0;
  started_ = false;
  done_ = false;
  ts_bits_.Reset({});
  val_bits_.Reset({});
  interval_ = 0;
  delta_ = 0;
  value_bits_ = 0;
  leading_ = trailing_ = 0;
  has_window_ = false;
  scale_ = 1;
  exc_ = {};
  exc_left_ = 0;
  exc_pos_ = exc_from_ = exc_bits_ = 0;
}

bool ChunkIterator::Fail(std::string_view what) {
  status_ = Corrupt(chunk_, what);
  done_ = true;
  return false;
}

bool ChunkIterator::DecodeHeader() {
  Layout layout;
  absl::Status s = ParseLayout(chunk_, &layout);
  if (!s.ok()) {
    status_ = s;
    done_ = true;
    return false;
  }
  info_ = layout.info;
  ts_bits_.Reset(layout.ts_col);
  val_bits_.Reset(layout.val_col);
  if (info_.timestamps == TimestampEncoding::kRegular && info_.num_samples > 1) {
    interval_ = layout.span / (info_.num_samples - 1);
  }
  if (info_.timestamps == TimestampEncoding::kPacked) {
    std::string_view col = layout.ts_col;
    if (!internal::GetVarint64(&col, &interval_)) return Fail("bad timestamp interval");
    if (!ts_ints_.Init(col, info_.num_samples - 1)) return Fail("bad packed timestamp column");
  }
  if (info_.values == ValueEncoding::kDecimal && !DecodeDecimalHeader(layout.val_col)) {
    return false;
  }
  if (info_.values == ValueEncoding::kFloatBits &&
      !val_ints_.Init(layout.val_col, info_.num_samples)) {
    return Fail("bad float bits value column");
  }
  if (info_.values == ValueEncoding::kConstant) {
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) {
      bits |= static_cast<uint64_t>(static_cast<uint8_t>(layout.val_col[i])) << (8 * i);
    }
    value_bits_ = bits;
  }
  started_ = true;
  return true;
}

bool ChunkIterator::DecodeDecimalHeader(std::string_view col) {
  const uint8_t e = static_cast<uint8_t>(col[0]);  // the header checked col is not empty
  col.remove_prefix(1);
  if (e > kMaxDecimalExponent) return Fail("decimal exponent out of range");
  scale_ = kPow10[e];
  uint64_t num_exc;
  if (!internal::GetVarint64(&col, &num_exc) || num_exc > info_.num_samples) {
    return Fail("bad decimal exception count");
  }
  // Walk the exceptions to find where the mantissas start; they are read again as the
  // iteration reaches them.
  exc_ = col;
  uint64_t from = 0;
  for (uint64_t j = 0; j < num_exc; ++j) {
    uint64_t gap;
    if (!internal::GetVarint64(&col, &gap) || col.size() < 8) {
      return Fail("decimal exceptions truncated");
    }
    if (from > info_.num_samples || gap >= info_.num_samples - from) {
      return Fail("decimal exception position out of range");
    }
    from += gap + 1;
    col.remove_prefix(8);
  }
  exc_left_ = static_cast<uint32_t>(num_exc);
  exc_from_ = 0;
  if (!val_ints_.Init(col, info_.num_samples)) return Fail("bad decimal mantissa column");
  return ReadDecimalException();
}

// Reads the next decimal exception (validated by DecodeDecimalHeader) into exc_pos_/exc_bits_.
bool ChunkIterator::ReadDecimalException() {
  if (exc_left_ == 0) {
    exc_pos_ = std::numeric_limits<uint64_t>::max();
    return true;
  }
  uint64_t gap;
  if (!internal::GetVarint64(&exc_, &gap) || exc_.size() < 8) {
    return Fail("decimal exceptions truncated");
  }
  exc_pos_ = exc_from_ + gap;
  exc_from_ = exc_pos_ + 1;
  exc_bits_ = 0;
  for (int b = 0; b < 8; ++b) {
    exc_bits_ |= static_cast<uint64_t>(static_cast<uint8_t>(exc_[b])) << (8 * b);
  }
  exc_.remove_prefix(8);
  --exc_left_;
  return true;
}

bool ChunkIterator::ReadTimestamp() {
  if (read_ == 0) {
    cur_.t = info_.min_time_ms;
    return true;
  }
  if (info_.timestamps == TimestampEncoding::kRegular) {
    // read_ * interval_ <= span, checked by the header: no overflow.
    cur_.t = static_cast<int64_t>(static_cast<uint64_t>(info_.min_time_ms) +
                                  static_cast<uint64_t>(read_) * interval_);
    return true;
  }
  uint64_t next;
  const uint64_t prev = static_cast<uint64_t>(cur_.t);
  if (info_.timestamps == TimestampEncoding::kPacked) {
    uint64_t x;
    if (!ts_ints_.Next(&x)) return Fail("packed timestamp column corrupt");
    next = static_cast<uint64_t>(info_.min_time_ms) + static_cast<uint64_t>(read_) * interval_ + x;
  } else if (!ReadDeltaOfDelta(prev, &next)) {
    return false;
  }
  const uint64_t room = static_cast<uint64_t>(info_.max_time_ms) - prev;
  if (next - prev == 0 || next - prev > room) {
    return Fail("timestamps not increasing within [min, max]");
  }
  cur_.t = static_cast<int64_t>(next);
  if (read_ + 1 == info_.num_samples && cur_.t != info_.max_time_ms) {
    return Fail("last timestamp is not the max time");
  }
  return true;
}

bool ChunkIterator::ReadDeltaOfDelta(uint64_t prev, uint64_t* next) {
  // kDeltaOfDelta: count the prefix's one bits (at most 5).
  int ones = 0;
  while (ones < 5) {
    bool bit;
    if (!ts_bits_.ReadBit(&bit)) return Fail("timestamp column truncated");
    if (!bit) break;
    ++ones;
  }
  uint64_t dod = 0;
  if (ones == 5) {
    if (!ts_bits_.ReadBits(64, &dod)) return Fail("timestamp column truncated");
  } else if (ones > 0) {
    int width = kDodWidths[ones - 1];
    uint64_t raw;
    if (!ts_bits_.ReadBits(width, &raw)) return Fail("timestamp column truncated");
    // Sign-extend from `width` bits.
    uint64_t sign = uint64_t{1} << (width - 1);
    dod = (raw ^ sign) - sign;
  }
  delta_ += dod;
  *next = prev + delta_;
  return true;
}

bool ChunkIterator::ReadValue() {
  if (info_.values == ValueEncoding::kConstant) {
    cur_.v = std::bit_cast<double>(value_bits_);
    return true;
  }
  if (info_.values == ValueEncoding::kDecimal) {
    uint64_t m;
    if (!val_ints_.Next(&m)) return Fail("decimal mantissa column corrupt");
    if (read_ == exc_pos_) {
      cur_.v = std::bit_cast<double>(exc_bits_);
      return ReadDecimalException();
    }
    cur_.v = FromDecimal(static_cast<int64_t>(m), scale_);
    return true;
  }
  if (info_.values == ValueEncoding::kFloatBits) {
    uint64_t bits;
    if (!val_ints_.Next(&bits)) return Fail("float bits value column corrupt");
    cur_.v = std::bit_cast<double>(bits);
    return true;
  }
  if (read_ == 0) {
    if (!val_bits_.ReadBits(64, &value_bits_)) return Fail("value column truncated");
    cur_.v = std::bit_cast<double>(value_bits_);
    return true;
  }
  bool bit;
  if (!val_bits_.ReadBit(&bit)) return Fail("value column truncated");
  if (bit) {
    if (!val_bits_.ReadBit(&bit)) return Fail("value column truncated");
    if (bit) {
      uint64_t l, s1;
      if (!val_bits_.ReadBits(6, &l) || !val_bits_.ReadBits(6, &s1)) {
        return Fail("value column truncated");
      }
      uint64_t sig = s1 + 1;
      if (l + sig > 64) return Fail("value window wider than 64 bits");
      leading_ = static_cast<uint8_t>(l);
      trailing_ = static_cast<uint8_t>(64 - l - sig);
      has_window_ = true;
    } else if (!has_window_) {
      return Fail("value window reused before one was set");
    }
    int sig = 64 - leading_ - trailing_;
    uint64_t x;
    if (!val_bits_.ReadBits(sig, &x)) return Fail("value column truncated");
    value_bits_ ^= x << trailing_;  // trailing_ <= 63
  }
  cur_.v = std::bit_cast<double>(value_bits_);
  return true;
}

bool ChunkIterator::CheckColumnsConsumed() {
  if (info_.timestamps == TimestampEncoding::kDeltaOfDelta && ts_bits_.remaining_bits() >= 8) {
    return Fail("trailing bytes after the timestamp column");
  }
  if (info_.values == ValueEncoding::kXor && val_bits_.remaining_bits() >= 8) {
    return Fail("trailing bytes after the value column");
  }
  if (info_.timestamps == TimestampEncoding::kPacked && !ts_ints_.Finished()) {
    return Fail("trailing bytes after the timestamp column");
  }
  if ((info_.values == ValueEncoding::kDecimal || info_.values == ValueEncoding::kFloatBits) &&
      !val_ints_.Finished()) {
    return Fail("trailing bytes after the value column");
  }
  return true;
}

bool ChunkIterator::Next() {
  if (done_) return false;
  if (!started_ && !DecodeHeader()) return false;
  if (read_ == info_.num_samples) {
    CheckColumnsConsumed();
    done_ = true;
    return false;
  }
  if (!ReadTimestamp() || !ReadValue()) return false;
  ++read_;
  return true;
}

bool ChunkIterator::Seek(int64_t t) {
  if (done_) return false;
  if (read_ > 0 && cur_.t >= t) return true;  // never backwards
  if (started_ && t > info_.max_time_ms) {
    done_ = true;
    return false;
  }
  while (Next()) {
    if (cur_.t >= t) return true;
  }
  return false;
}

}  // namespace tidemark
