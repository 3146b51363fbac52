// Bit-level writer and reader for the chunk codec, plus LEB128 varints and zigzag.
//
// Bits are packed most significant first: the first bit written is the high bit of the first
// byte; the last byte is padded with zero bits. The writer appends to a caller-owned string;
// the reader views caller-owned bytes and never reads past them: every read reports whether
// the bits were there. Internal to storage/; not thread-safe per object.
#ifndef TIDEMARK_STORAGE_BIT_STREAM_H_
#define TIDEMARK_STORAGE_BIT_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tidemark::internal {

// Appends bits to `out`. Call Finish() once at the end to flush the last partial byte.
class BitWriter {
 public:
  explicit BitWriter(std::string* out) : out_(out) {}

  void WriteBit(bool bit) { WriteBits(bit ? 1 : 0, 1); }

  // Writes the low `n` bits of `value`, most significant first; 0 <= n <= 64.
  void WriteBits(uint64_t value, int n) {
    if (n == 0) return;
    if (n < 64) value &= (uint64_t{1} << n) - 1;
    const int free = 64 - count_;  // >= 1: a full accumulator is flushed at once
    if (n < free) {
      acc_ |= value << (free - n);
      count_ += n;
      return;
    }
    const int rest = n - free;  // bits that go to the next word, 0..63
    acc_ |= value >> rest;
    Flush64();
    acc_ = rest == 0 ? 0 : value << (64 - rest);
    count_ = rest;
  }

  // Flushes the remaining bits, padded with zeros to a whole byte.
  void Finish() {
    char buf[8];
    int bytes = (count_ + 7) / 8;
    for (int i = 0; i < bytes; ++i) buf[i] = static_cast<char>(acc_ >> (56 - 8 * i));
    out_->append(buf, static_cast<size_t>(bytes));
    acc_ = 0;
    count_ = 0;
  }

 private:
  void Flush64() {
    char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(acc_ >> (56 - 8 * i));
    out_->append(buf, 8);
  }

  std::string* out_;
  uint64_t acc_ = 0;  // pending bits, left-aligned
  int count_ = 0;     // pending bits, < 64 between calls
};

// Reads bits from a byte range. A failed read leaves the reader in an unspecified position;
// callers stop at the first failure.
class BitReader {
 public:
  BitReader() = default;
  explicit BitReader(std::string_view bytes) { Reset(bytes); }

  void Reset(std::string_view bytes) {
    p_ = reinterpret_cast<const uint8_t*>(bytes.data());
    end_ = p_ + bytes.size();
    window_ = 0;
    count_ = 0;
  }

  bool ReadBit(bool* bit) {
    if (count_ == 0) {
      Refill();
      if (count_ == 0) return false;
    }
    *bit = (window_ >> 63) != 0;
    window_ <<= 1;
    --count_;
    return true;
  }

  // Reads `n` bits, 0 <= n <= 64, into the low bits of *value.
  bool ReadBits(int n, uint64_t* value) {
    if (n <= 32) return ReadBits32(n, value);
    uint64_t hi, lo;
    if (!ReadBits32(n - 32, &hi) || !ReadBits32(32, &lo)) return false;
    *value = (hi << 32) | lo;
    return true;
  }

  // Bits not yet read.
  uint64_t remaining_bits() const {
    return static_cast<uint64_t>(count_) + 8 * static_cast<uint64_t>(end_ - p_);
  }

 private:
  void Refill() {
    while (count_ <= 56 && p_ < end_) {
      window_ |= static_cast<uint64_t>(*p_++) << (56 - count_);
      count_ += 8;
    }
  }

  bool ReadBits32(int n, uint64_t* value) {
    if (n == 0) {
      *value = 0;
      return true;
    }
    if (count_ < n) {
      Refill();
      if (count_ < n) return false;
    }
    *value = window_ >> (64 - n);
    window_ <<= n;  // n <= 32 < 64
    count_ -= n;
    return true;
  }

  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  uint64_t window_ = 0;  // left-aligned pending bits
  int count_ = 0;        // valid bits in window_
};

inline uint64_t ZigZagEncode(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t ZigZagDecode(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

// Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
inline void PutVarint64(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads a varint from the front of *in and advances it. False on truncation or on an
// encoding longer than 10 bytes or overflowing 64 bits.
inline bool GetVarint64(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (size_t i = 0; i < in->size() && i < 10; ++i) {
    uint8_t b = static_cast<uint8_t>((*in)[i]);
    if (i == 9 && b > 1) return false;  // bits beyond 64
    result |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      in->remove_prefix(i + 1);
      *v = result;
      return true;
    }
  }
  return false;
}

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_BIT_STREAM_H_
