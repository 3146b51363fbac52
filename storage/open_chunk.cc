#include "storage/open_chunk.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "storage/bit_stream.h"

namespace tidemark::internal {
namespace {

uint64_t ZigZag64(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag64(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

uint64_t Bits(double v) { return std::bit_cast<uint64_t>(v); }

bool ByTime(const Sample& a, int64_t t) { return a.t < t; }

// v as an integer, when it is exactly one (|v| < 2^53; not -0.0, NaN or an infinity).
bool IntValue(double v, int64_t* m) {
  if (!(std::fabs(v) < 9007199254740992.0)) return false;
  const auto r = static_cast<int64_t>(v);
  if (Bits(static_cast<double>(r)) != Bits(v)) return false;
  *m = r;
  return true;
}

int64_t WrapSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t WrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

}  // namespace

// The widths of the prefix-coded buckets after '0' ('10', '110', '1110', '1111').
struct OpenChunkBuckets {
  int w[4];
};

namespace {

using Buckets = OpenChunkBuckets;
constexpr Buckets kTimeV1 = {{7, 12, 20, 64}};
constexpr Buckets kTime = {{5, 12, 20, 64}};
constexpr Buckets kIntValue = {{6, 12, 20, 64}};

void PutVarint(std::string* out, uint64_t v) { PutVarint64(out, v); }
bool GetVarint(std::string_view* in, uint64_t* v) { return GetVarint64(in, v); }

void PutFixed64(std::string* out, uint64_t v) {  // little-endian
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetFixed64(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i) *v |= uint64_t{static_cast<uint8_t>((*in)[i])} << (8 * i);
  in->remove_prefix(8);
  return true;
}

}  // namespace

void OpenChunk::PutBits(uint64_t value, int n) {
  if (n > 32) {
    PutBits(value >> 32, n - 32);
    n = 32;
  }
  value &= (uint64_t{1} << n) - 1;
  acc_ = (acc_ << n) | value;  // acc_bits_ < 8, so at most 39 bits are pending
  int pending = acc_bits_ + n;
  while (pending >= 8) {
    pending -= 8;
    if (bytes_.size() == bytes_.capacity()) {
      bytes_.reserve(std::max<size_t>(32, bytes_.capacity() + bytes_.capacity() / 4));
    }
    bytes_.push_back(static_cast<char>((acc_ >> pending) & 0xff));
  }
  acc_bits_ = static_cast<uint8_t>(pending);
  acc_ &= (uint64_t{1} << pending) - 1;
}

void OpenChunk::PutBucketed(uint64_t zz, const OpenChunkBuckets& b) {
  if (zz == 0) {
    PutBits(0, 1);
  } else if (zz < (uint64_t{1} << b.w[0])) {
    PutBits(0b10, 2);
    PutBits(zz, b.w[0]);
  } else if (zz < (uint64_t{1} << b.w[1])) {
    PutBits(0b110, 3);
    PutBits(zz, b.w[1]);
  } else if (b.w[2] < 64 && zz < (uint64_t{1} << b.w[2])) {
    PutBits(0b1110, 4);
    PutBits(zz, b.w[2]);
  } else {
    PutBits(0b1111, 4);
    PutBits(zz, 64);
  }
}

void OpenChunk::Start(const Sample& s, Mode mode) {
  first_ = last_ = s;
  count_ = 1;
  delta_ = 0;
  vdelta_ = 0;
  lead_ = 0xff;
  mode_ = mode;
}

void OpenChunk::Append(const Sample& s) {
  int64_t m = 0;
  if (count_ == 0) {
    Start(s, IntValue(s.v, &m) ? kInt : kXor);
    return;
  }
  if (mode_ == kInt && !IntValue(s.v, &m)) {
    // Not an integer after all: the chunk goes on as floats.
    std::vector<Sample> all;
    Decode(&all);
    Encode(all, kXor);
  }
  Put(s, m);
}

void OpenChunk::Put(const Sample& s, int64_t m) {
  // Wrapping arithmetic: any pair of int64 timestamps (and integer values) round-trips.
  const int64_t delta = WrapSub(s.t, last_.t);
  PutBucketed(ZigZag64(WrapSub(delta, delta_)), mode_ == kXorV1 ? kTimeV1 : kTime);
  if (mode_ == kInt) {
    const int64_t vdelta = WrapSub(m, static_cast<int64_t>(last_.v));
    PutBucketed(ZigZag64(WrapSub(vdelta, vdelta_)), kIntValue);
    vdelta_ = vdelta;
  } else {
    const uint64_t x = Bits(s.v) ^ Bits(last_.v);
    if (x == 0) {
      PutBits(0, 1);
    } else {
      const int lead = std::countl_zero(x);
      const int trail = std::countr_zero(x);
      if (lead_ != 0xff && lead >= lead_ && trail >= trail_) {
        PutBits(0b10, 2);
        PutBits(x >> trail_, 64 - lead_ - trail_);
      } else {
        const int sig = 64 - lead - trail;  // 1..64
        PutBits(0b11, 2);
        PutBits(static_cast<uint64_t>(lead), 6);
        PutBits(static_cast<uint64_t>(sig - 1), 6);
        PutBits(x >> trail, sig);
        lead_ = static_cast<uint8_t>(lead);
        trail_ = static_cast<uint8_t>(trail);
      }
    }
  }
  delta_ = delta;
  last_ = s;
  ++count_;
}

void OpenChunk::Encode(const std::vector<Sample>& samples, Mode mode) {
  Clear();
  if (samples.empty()) return;
  Start(samples.front(), mode);
  for (size_t i = 1; i < samples.size(); ++i) {
    int64_t m = 0;
    if (mode == kInt) IntValue(samples[i].v, &m);
    Put(samples[i], m);
  }
}

namespace {

// Reads a value written by PutBucketed; false at the end of the stream.
bool ReadBucketed(BitReader& r, const Buckets& b, uint64_t* zz) {
  bool bit = false;
  *zz = 0;
  if (!r.ReadBit(&bit)) return false;
  if (!bit) return true;
  int i = 0;
  for (; i < 3; ++i) {
    if (!r.ReadBit(&bit)) return false;
    if (!bit) break;
  }
  return r.ReadBits(i == 3 ? 64 : b.w[i], zz);
}

}  // namespace

void OpenChunk::Decode(std::vector<Sample>* out) const {
  if (count_ == 0) return;
  out->reserve(out->size() + count_);
  out->push_back(first_);
  if (count_ == 1) return;
  std::string buf(bytes_.data(), bytes_.size());
  if (acc_bits_ > 0) buf.push_back(static_cast<char>((acc_ << (8 - acc_bits_)) & 0xff));
  BitReader r;
  r.Reset(buf);
  const Buckets& time_buckets = mode_ == kXorV1 ? kTimeV1 : kTime;
  int64_t t = first_.t;
  int64_t delta = 0;
  uint64_t v = Bits(first_.v);
  int64_t m = static_cast<int64_t>(first_.v);  // kInt
  int64_t vdelta = 0;
  int lead = 0, trail = 0;
  for (uint32_t i = 1; i < count_; ++i) {
    uint64_t zz = 0;
    // Written by Append: every read succeeds; a failure would be a bug, so stop there.
    if (!ReadBucketed(r, time_buckets, &zz)) return;
    delta = WrapAdd(delta, UnZigZag64(zz));
    t = WrapAdd(t, delta);
    if (mode_ == kInt) {
      if (!ReadBucketed(r, kIntValue, &zz)) return;
      vdelta = WrapAdd(vdelta, UnZigZag64(zz));
      m = WrapAdd(m, vdelta);
      out->push_back(Sample{t, static_cast<double>(m)});
      continue;
    }
    bool b = false;
    if (!r.ReadBit(&b)) return;
    if (b) {
      if (!r.ReadBit(&b)) return;
      if (b) {
        uint64_t l = 0, s = 0;
        if (!r.ReadBits(6, &l) || !r.ReadBits(6, &s)) return;
        lead = static_cast<int>(l);
        trail = 64 - lead - static_cast<int>(s + 1);
      }
      uint64_t bits = 0;
      if (!r.ReadBits(64 - lead - trail, &bits)) return;
      v ^= bits << trail;
    }
    out->push_back(Sample{t, std::bit_cast<double>(v)});
  }
}

void OpenChunk::CopyRange(int64_t mint, int64_t maxt, std::vector<Sample>* out) const {
  if (count_ == 0 || maxt < first_.t || mint > last_.t) return;
  if (count_ == 1) {
    out->push_back(first_);
    return;
  }
  std::vector<Sample> all;
  Decode(&all);
  auto it = std::lower_bound(all.begin(), all.end(), mint, ByTime);
  for (; it != all.end() && it->t <= maxt; ++it) out->push_back(*it);
}

std::optional<Sample> OpenChunk::Find(int64_t t) const {
  if (count_ == 0 || t < first_.t || t > last_.t) return std::nullopt;
  if (t == last_.t) return last_;
  if (t == first_.t) return first_;
  std::vector<Sample> all;
  Decode(&all);
  auto it = std::lower_bound(all.begin(), all.end(), t, ByTime);
  if (it != all.end() && it->t == t) return *it;
  return std::nullopt;
}

bool OpenChunk::Insert(const Sample& s) {
  if (count_ == 0 || s.t > last_.t) {
    Append(s);
    return true;
  }
  std::vector<Sample> all;
  Decode(&all);
  auto it = std::lower_bound(all.begin(), all.end(), s.t, ByTime);
  if (it != all.end() && it->t == s.t) return false;
  all.insert(it, s);
  Assign(all);
  return true;
}

void OpenChunk::EraseThrough(int64_t t) {
  if (count_ == 0 || t < first_.t) return;
  if (t >= last_.t) {
    Clear();
    return;
  }
  std::vector<Sample> all;
  Decode(&all);
  all.erase(all.begin(), std::upper_bound(all.begin(), all.end(), t,
                                          [](int64_t x, const Sample& a) { return x < a.t; }));
  Assign(all);
}

void OpenChunk::EraseRange(int64_t mint, int64_t maxt) {
  if (count_ == 0 || maxt < first_.t || mint > last_.t) return;
  std::vector<Sample> all;
  Decode(&all);
  auto first = std::lower_bound(all.begin(), all.end(), mint, ByTime);
  auto last = std::upper_bound(first, all.end(), maxt,
                               [](int64_t x, const Sample& a) { return x < a.t; });
  all.erase(first, last);
  Assign(all);
}

void OpenChunk::Assign(const std::vector<Sample>& samples) {
  int64_t m;
  const bool ints = std::all_of(samples.begin(), samples.end(),
                                [&m](const Sample& s) { return IntValue(s.v, &m); });
  Encode(samples, ints ? kInt : kXor);
}

void OpenChunk::Save(std::string* out) const {
  PutVarint(out, count_);
  if (count_ == 0) return;
  auto put_sample = [out](const Sample& x) {
    PutVarint(out, ZigZag64(x.t));
    PutFixed64(out, Bits(x.v));
  };
  put_sample(first_);
  put_sample(last_);
  PutVarint(out, ZigZag64(delta_));
  out->push_back(static_cast<char>(mode_));
  out->push_back(static_cast<char>(lead_));
  out->push_back(static_cast<char>(trail_));
  out->push_back(static_cast<char>(acc_bits_));
  PutVarint(out, acc_);
  if (mode_ == kInt) PutVarint(out, ZigZag64(vdelta_));
  PutVarint(out, bytes_.size());
  out->append(bytes_.data(), bytes_.size());
}

bool OpenChunk::Restore(std::string_view* in, int version) {
  Clear();
  uint64_t count;
  if (!GetVarint(in, &count) || count > UINT32_MAX) return false;
  if (count == 0) return true;
  auto get_sample = [in](Sample* x) {
    uint64_t zt, bits;
    if (!GetVarint(in, &zt) || !GetFixed64(in, &bits)) return false;
    x->t = UnZigZag64(zt);
    x->v = std::bit_cast<double>(bits);
    return true;
  };
  uint64_t zdelta, acc, n, zvdelta = 0;
  if (!get_sample(&first_) || !get_sample(&last_) || !GetVarint(in, &zdelta)) return false;
  Mode mode = kXorV1;  // version 1 had only this one
  if (version >= 2) {
    if (in->empty() || static_cast<uint8_t>((*in)[0]) > kInt) return false;
    mode = static_cast<Mode>((*in)[0]);
    in->remove_prefix(1);
  }
  if (in->size() < 3) return false;
  lead_ = static_cast<uint8_t>((*in)[0]);
  trail_ = static_cast<uint8_t>((*in)[1]);
  acc_bits_ = static_cast<uint8_t>((*in)[2]);
  in->remove_prefix(3);
  int64_t m;
  if (acc_bits_ >= 8 || !GetVarint(in, &acc) || acc >= (uint64_t{1} << acc_bits_) ||
      (mode == kInt && (!GetVarint(in, &zvdelta) || !IntValue(first_.v, &m) ||
                        !IntValue(last_.v, &m))) ||
      !GetVarint(in, &n) || n > in->size() || first_.t > last_.t) {
    Clear();
    return false;
  }
  mode_ = mode;
  count_ = static_cast<uint32_t>(count);
  delta_ = UnZigZag64(zdelta);
  vdelta_ = UnZigZag64(zvdelta);
  acc_ = acc;
  bytes_.assign(in->data(), in->data() + n);
  in->remove_prefix(n);
  return true;
}

void OpenChunk::Clear() {
  std::vector<char>().swap(bytes_);
  acc_ = 0;
  acc_bits_ = 0;
  lead_ = 0xff;
  trail_ = 0;
  mode_ = kXor;
  count_ = 0;
  delta_ = 0;
  vdelta_ = 0;
  first_ = last_ = Sample{};
}

}  // namespace tidemark::internal
