// Sample: one float value of a series at a millisecond timestamp, and the stale marker.
//
// Timestamps are milliseconds since the Unix epoch, as in Prometheus. The stale marker is a NaN
// with exactly the bits 0x7ff0000000000002; storage keeps every float bit for bit, so a stale
// marker stays distinguishable from an ordinary NaN.
#ifndef TIDEMARK_STORAGE_SAMPLE_H_
#define TIDEMARK_STORAGE_SAMPLE_H_

#include <bit>
#include <cstdint>

namespace tidemark {

struct Sample {
  int64_t t = 0;  // milliseconds since the epoch
  double v = 0;

  // Bitwise equality, so NaN == NaN when the bits agree.
  friend bool operator==(const Sample& a, const Sample& b) {
    return a.t == b.t && std::bit_cast<uint64_t>(a.v) == std::bit_cast<uint64_t>(b.v);
  }
};

inline constexpr uint64_t kStaleNaNBits = 0x7ff0000000000002ULL;

inline double StaleNaN() { return std::bit_cast<double>(kStaleNaNBits); }
inline bool IsStaleNaN(double v) { return std::bit_cast<uint64_t>(v) == kStaleNaNBits; }

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_SAMPLE_H_
