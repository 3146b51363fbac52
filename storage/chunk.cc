// Chunk codec. Byte layout (also in storage/FORMAT.md, "## Chunks"):
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
#include "storage/chunk.h"

#include <bit>
#include <limits>

#include "absl/strings/str_cat.h"
#include "storage/bit_stream.h"

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

void EncodeDeltaOfDelta(std::span<const Sample> samples, std::string* out) {
  internal::BitWriter w(out);
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
  w.Finish();
}

void EncodeXor(std::span<const Sample> samples, std::string* out) {
  internal::BitWriter w(out);
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
  w.Finish();
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
  const TimestampEncoding ts_enc =
      regular ? TimestampEncoding::kRegular : TimestampEncoding::kDeltaOfDelta;
  const ValueEncoding val_enc = constant ? ValueEncoding::kConstant : ValueEncoding::kXor;

  std::string ts_col;
  if (!regular) EncodeDeltaOfDelta(samples, &ts_col);

  out->push_back(static_cast<char>(kChunkFormatVersion));
  internal::PutVarint64(out, samples.size());
  internal::PutVarint64(out, internal::ZigZagEncode(min_t));
  internal::PutVarint64(out, span);
  out->push_back(static_cast<char>(ts_enc));
  out->push_back(static_cast<char>(val_enc));
  internal::PutVarint64(out, ts_col.size());
  out->append(ts_col);
  if (constant) {
    for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(first_bits >> (8 * i)));
  } else {
    EncodeXor(samples, out);
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
  uint64_t prev = static_cast<uint64_t>(cur_.t);
  uint64_t room = static_cast<uint64_t>(info_.max_time_ms) - prev;
  if (delta_ == 0 || delta_ > room) return Fail("timestamps not increasing within [min, max]");
  cur_.t = static_cast<int64_t>(prev + delta_);
  if (read_ + 1 == info_.num_samples && cur_.t != info_.max_time_ms) {
    return Fail("last timestamp is not the max time");
  }
  return true;
}

bool ChunkIterator::ReadValue() {
  if (info_.values == ValueEncoding::kConstant) {
    cur_.v = std::bit_cast<double>(value_bits_);
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
