// Integer columns of the chunk codec: a run of 64-bit integers (two's complement, arithmetic
// modulo 2^64) stored as themselves, their deltas or their deltas of deltas ("order" 0, 1, 2),
// the residuals bit-packed at one width per column over a frame of reference (base and
// multiplier), with an exception list for the few residuals that do not fit (as ALP does).
// The byte layout is in storage/FORMAT.md ("Integer columns"). Internal to the chunk codec;
// header-only; the encoder functions are stateless, a reader object is not thread-safe.
#ifndef TIDEMARK_STORAGE_PACKED_INTS_H_
#define TIDEMARK_STORAGE_PACKED_INTS_H_

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/bit_stream.h"

namespace tidemark::internal {

inline int BitWidth(uint64_t v) { return 64 - std::countl_zero(v); }
inline size_t VarintLength(uint64_t v) { return v < 128 ? 1 : (BitWidth(v) + 6) / 7; }
inline int64_t AsSigned(uint64_t v) { return static_cast<int64_t>(v); }

// Residuals tried for exceptions: up to this many of the smallest and largest.
inline constexpr int kMaxExceptionsTried = 8;

// How a packed block stores its residuals: kept values lie in [lo, hi] (signed compare) and are
// written as (x - lo) / mult in `width` bits; the others are exceptions.
struct PackedPlan {
  uint64_t lo = 0, hi = 0;
  uint64_t mult = 1;
  int width = 0;
  uint64_t num_exceptions = 0;
  size_t bytes = 0;  // exact encoded size
};

// Greatest common divisor (binary: no division); Gcd(0, b) = b.
inline uint64_t Gcd(uint64_t a, uint64_t b) {
  if (a == 0) return b;
  if (b == 0) return a;
  const int shift = std::countr_zero(a | b);
  a >>= std::countr_zero(a);
  do {
    b >>= std::countr_zero(b);
    if (a > b) std::swap(a, b);
    b -= a;
  } while (b != 0);
  return a << shift;
}

// Gcd(g, x) for a running gcd g over a column: most values are a multiple of the gcd so far
// (g = 1 and g = 4096 are common), which a mask or one division shows without the loop.
inline uint64_t GcdStep(uint64_t g, uint64_t x) {
  if (g == 1) return 1;
  if (g != 0 && ((g & (g - 1)) == 0 ? (x & (g - 1)) == 0 : x % g == 0)) return g;
  return Gcd(g, x);
}

// |a - b| of two int64 held in uint64, exact (fits in uint64).
inline uint64_t AbsDiff(uint64_t a, uint64_t b) {
  return AsSigned(a) >= AsSigned(b) ? a - b : b - a;
}

// Chooses the frame of reference and the exceptions that make `xs` smallest.
inline PackedPlan PlanPacked(std::span<const uint64_t> xs) {
  PackedPlan plan;
  const size_t c = xs.size();
  if (c == 0) {
    plan.bytes = 4;
    return plan;
  }
  const int k = static_cast<int>(std::min<size_t>(kMaxExceptionsTried, c - 1));
  // The k+1 smallest (ascending) and k+1 largest (descending) values, and the gcd of all
  // differences to the first value.
  int64_t lows[kMaxExceptionsTried + 1], highs[kMaxExceptionsTried + 1];
  int nl = 0, nh = 0;
  uint64_t g = 0;
  const uint64_t x0 = xs[0];
  for (uint64_t u : xs) {
    const int64_t x = AsSigned(u);
    if (nl < k + 1 || x < lows[nl - 1]) {
      int j = nl < k + 1 ? nl++ : nl - 1;
      while (j > 0 && lows[j - 1] > x) {
        lows[j] = lows[j - 1];
        --j;
      }
      lows[j] = x;
    }
    if (nh < k + 1 || x > highs[nh - 1]) {
      int j = nh < k + 1 ? nh++ : nh - 1;
      while (j > 0 && highs[j - 1] < x) {
        highs[j] = highs[j - 1];
        --j;
      }
      highs[j] = x;
    }
    g = GcdStep(g, AbsDiff(u, x0));
  }
  if (g == 0) g = 1;
  // Cost of an exception: its position gap and its value.
  const size_t gap_bytes = c < 128 ? 1 : 2;
  size_t low_cost[kMaxExceptionsTried + 1] = {0}, high_cost[kMaxExceptionsTried + 1] = {0};
  for (int j = 0; j < k; ++j) {
    low_cost[j + 1] = low_cost[j] + gap_bytes + VarintLength(ZigZagEncode(lows[j]));
    high_cost[j + 1] = high_cost[j] + gap_bytes + VarintLength(ZigZagEncode(highs[j]));
  }
  size_t best = SIZE_MAX;
  int best_a = 0, best_b = 0;
  // Divisions by g are shifts when g is a power of two (g = 1 most of the time).
  const bool g_pow2 = (g & (g - 1)) == 0;
  const int g_shift = std::countr_zero(g);
  for (int a = 0; a <= k; ++a) {
    for (int b = 0; a + b <= k; ++b) {
      const uint64_t range = static_cast<uint64_t>(highs[b]) - static_cast<uint64_t>(lows[a]);
      const int w = BitWidth(g_pow2 ? range >> g_shift : range / g);
      const size_t bytes = (c * static_cast<size_t>(w) + 7) / 8 + low_cost[a] + high_cost[b];
      if (bytes < best) {
        best = bytes;
        best_a = a;
        best_b = b;
      }
    }
  }
  plan.lo = static_cast<uint64_t>(lows[best_a]);
  plan.hi = static_cast<uint64_t>(highs[best_b]);
  // Exact pass: the gcd of the kept values and the exceptions' real cost.
  uint64_t kept_g = 0;
  size_t exc_bytes = 0;
  size_t prev = 0;
  bool any = false;
  for (size_t i = 0; i < c; ++i) {
    const int64_t x = AsSigned(xs[i]);
    if (x >= AsSigned(plan.lo) && x <= AsSigned(plan.hi)) {
      kept_g = GcdStep(kept_g, xs[i] - plan.lo);
    } else {
      exc_bytes += VarintLength(any ? i - prev - 1 : i) + VarintLength(ZigZagEncode(x));
      prev = i;
      any = true;
      ++plan.num_exceptions;
    }
  }
  plan.mult = kept_g == 0 ? 1 : kept_g;
  plan.width = BitWidth((plan.hi - plan.lo) / plan.mult);
  plan.bytes = 1 + VarintLength(ZigZagEncode(AsSigned(plan.lo))) + VarintLength(plan.mult) +
               VarintLength(plan.num_exceptions) + (c * static_cast<size_t>(plan.width) + 7) / 8 +
               exc_bytes;
  return plan;
}

// Appends the packed block of `xs` as `plan` (from PlanPacked(xs)) says.
inline void AppendPacked(std::span<const uint64_t> xs, const PackedPlan& plan, std::string* out) {
  out->push_back(static_cast<char>(plan.width));
  PutVarint64(out, ZigZagEncode(AsSigned(plan.lo)));
  PutVarint64(out, plan.mult);
  PutVarint64(out, plan.num_exceptions);
  auto kept = [&](uint64_t x) {
    return AsSigned(x) >= AsSigned(plan.lo) && AsSigned(x) <= AsSigned(plan.hi);
  };
  {
    BitWriter w(out);
    for (uint64_t x : xs) {
      uint64_t field = 0;
      if (kept(x)) field = plan.mult == 1 ? x - plan.lo : (x - plan.lo) / plan.mult;
      w.WriteBits(field, plan.width);
    }
    w.Finish();
  }
  size_t next = 0;  // position the next gap counts from
  for (size_t i = 0; i < xs.size(); ++i) {
    if (kept(xs[i])) continue;
    PutVarint64(out, i - next);
    PutVarint64(out, ZigZagEncode(AsSigned(xs[i])));
    next = i + 1;
  }
}

// Residuals of `xs` of `order` (0, 1 or 2; order <= xs.size()): xs.size() - order entries.
inline void Residuals(std::span<const uint64_t> xs, int order, std::vector<uint64_t>* res) {
  res->clear();
  for (size_t i = static_cast<size_t>(order); i < xs.size(); ++i) {
    uint64_t r = xs[i];
    if (order >= 1) r -= xs[i - 1];
    if (order == 2) r -= xs[i - 1] - xs[i - 2];
    res->push_back(r);
  }
}

// Appends an integer column of `xs`, choosing the order that makes it smallest. `scratch`
// is reused memory.
inline void AppendIntColumn(std::span<const uint64_t> xs, std::string* out,
                            std::vector<uint64_t> scratch[2]) {
  const int max_order = xs.size() <= 1 ? 0 : (xs.size() == 2 ? 1 : 2);
  int best_order = 0;
  size_t best = SIZE_MAX;
  PackedPlan best_plan;
  int best_slot = 0;
  for (int order = 0; order <= max_order; ++order) {
    // Keep the best residuals in one slot and compute the next candidate in the other.
    int slot = best == SIZE_MAX ? 0 : 1 - best_slot;
    Residuals(xs, order, &scratch[slot]);
    PackedPlan plan = PlanPacked(scratch[slot]);
    size_t bytes = 1 + plan.bytes;
    if (order >= 1) bytes += VarintLength(ZigZagEncode(AsSigned(xs[0])));
    if (order == 2) bytes += VarintLength(ZigZagEncode(AsSigned(xs[1] - xs[0])));
    if (bytes < best) {
      best = bytes;
      best_order = order;
      best_plan = plan;
      best_slot = slot;
    }
  }
  out->push_back(static_cast<char>(best_order));
  if (best_order >= 1) PutVarint64(out, ZigZagEncode(AsSigned(xs[0])));
  if (best_order == 2) PutVarint64(out, ZigZagEncode(AsSigned(xs[1] - xs[0])));
  AppendPacked(scratch[best_slot], best_plan, out);
}

// Reads a packed block of `count` residuals. The block runs to the end of its bytes.
class PackedReader {
 public:
  // False on a malformed block header or bytes too short for the packed bits.
  bool Init(std::string_view col, uint32_t count) {
    if (col.empty()) return false;
    width_ = static_cast<uint8_t>(col[0]);
    col.remove_prefix(1);
    uint64_t zz_base;
    if (width_ > 64 || !GetVarint64(&col, &zz_base) || !GetVarint64(&col, &mult_) ||
        !GetVarint64(&col, &exc_left_)) {
      return false;
    }
    base_ = static_cast<uint64_t>(ZigZagDecode(zz_base));
    if (mult_ == 0 || exc_left_ > count) return false;
    const uint64_t bytes = (static_cast<uint64_t>(count) * width_ + 7) / 8;
    if (bytes > col.size()) return false;
    bits_.Reset(col.substr(0, bytes));
    exc_ = col.substr(bytes);
    if (exc_.size() / 2 < exc_left_) return false;  // an exception takes 2 bytes or more
    count_ = count;
    pos_ = 0;
    next_from_ = 0;
    return ReadException();
  }

  // The next residual; false on corrupt bytes.
  bool Next(uint64_t* x) {
    uint64_t field;
    if (!bits_.ReadBits(width_, &field)) return false;
    if (pos_ == exc_pos_) {
      if (field != 0) return false;  // an exception's slot holds 0
      *x = exc_value_;
      if (!ReadException()) return false;
    } else {
      *x = base_ + mult_ * field;
    }
    ++pos_;
    return true;
  }

  // After `count` Next() calls: every byte was used.
  bool Finished() const {
    return exc_left_ == 0 && exc_pos_ == kNone && exc_.empty() && bits_.remaining_bits() < 8;
  }

 private:
  static constexpr uint64_t kNone = ~uint64_t{0};

  bool ReadException() {
    if (exc_left_ == 0) {
      exc_pos_ = kNone;
      return true;
    }
    uint64_t gap, zz;
    if (!GetVarint64(&exc_, &gap) || !GetVarint64(&exc_, &zz)) return false;
    if (next_from_ > count_ || gap >= count_ - next_from_) return false;
    exc_pos_ = next_from_ + gap;
    next_from_ = exc_pos_ + 1;
    exc_value_ = static_cast<uint64_t>(ZigZagDecode(zz));
    --exc_left_;
    return true;
  }

  BitReader bits_;
  std::string_view exc_;
  uint64_t base_ = 0, mult_ = 1;
  uint64_t exc_left_ = 0;    // exceptions not yet read from exc_
  uint64_t exc_pos_ = kNone;  // position of the pending exception
  uint64_t exc_value_ = 0;
  uint64_t next_from_ = 0;   // the next exception's gap counts from here
  uint64_t count_ = 0, pos_ = 0;
  uint8_t width_ = 0;
};

// Reads an integer column of `count` values.
class IntColumnReader {
 public:
  bool Init(std::string_view col, uint32_t count) {
    if (col.empty()) return false;
    order_ = static_cast<uint8_t>(col[0]);
    col.remove_prefix(1);
    if (order_ > 2 || order_ > count) return false;
    uint64_t zz;
    first_ = delta_ = 0;
    if (order_ >= 1) {
      if (!GetVarint64(&col, &zz)) return false;
      first_ = static_cast<uint64_t>(ZigZagDecode(zz));
    }
    if (order_ == 2) {
      if (!GetVarint64(&col, &zz)) return false;
      delta_ = static_cast<uint64_t>(ZigZagDecode(zz));
    }
    i_ = 0;
    prev_ = 0;
    return packed_.Init(col, count - order_);
  }

  // The next value; false on corrupt bytes.
  bool Next(uint64_t* x) {
    uint64_t v;
    if (i_ < order_) {
      v = i_ == 0 ? first_ : first_ + delta_;
    } else {
      uint64_t r;
      if (!packed_.Next(&r)) return false;
      if (order_ == 0) {
        v = r;
      } else if (order_ == 1) {
        v = prev_ + r;
      } else {
        delta_ += r;
        v = prev_ + delta_;
      }
    }
    prev_ = v;
    ++i_;
    *x = v;
    return true;
  }

  bool Finished() const { return packed_.Finished(); }

 private:
  PackedReader packed_;
  uint64_t first_ = 0, delta_ = 0, prev_ = 0;
  uint32_t i_ = 0;
  uint8_t order_ = 0;
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_PACKED_INTS_H_
