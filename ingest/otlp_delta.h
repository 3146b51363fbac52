// Delta-to-cumulative running totals of OTLP ingest: what is kept per series, and its encoding.
//
// One DeltaState per cumulative series family (keyed by the family's labels), stored through a
// DeltaStateStore. Encoding (little-endian), version 1:
//   u8 version=1 | u8 kind | u64 start_ns | u64 last_ns | payload
//   kind 1 (number):      f64 value
//   kind 2 (histogram):   f64 sum | f64 count | u32 n | n x f64 bound | u32 m | m x f64 bucket
//   kind 3 (exponential): f64 sum | f64 count | i32 scale | f64 zero_threshold | f64 zero_count |
//                         i32 pos_offset | u32 n | n x f64 | i32 neg_offset | u32 m | m x f64
// Internal to ingest; exposed for tests.
#ifndef TIDEMARK_INGEST_OTLP_DELTA_H_
#define TIDEMARK_INGEST_OTLP_DELTA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tidemark::ingest::internal {

// Exponential histogram buckets at one scale; index i covers (base^i, base^(i+1)] with
// base = 2^(2^-scale). Counts are doubles so that sums of deltas never overflow.
struct ExpBuckets {
  int32_t scale = 0;
  double zero_threshold = 0;
  double zero_count = 0;
  int32_t pos_offset = 0;
  std::vector<double> pos;
  int32_t neg_offset = 0;
  std::vector<double> neg;

  // Merges buckets to `scale` (<= this->scale).
  void Downscale(int32_t scale);
  // Adds `other` (any scale: both end at the lower one).
  void Add(ExpBuckets other);
};

struct DeltaState {
  enum class Kind : uint8_t { kNumber = 1, kHistogram = 2, kExponential = 3 };
  Kind kind = Kind::kNumber;
  uint64_t start_ns = 0;  // start of the cumulative series
  uint64_t last_ns = 0;   // end of the last accumulated delta
  double value = 0;       // kNumber
  double sum = 0;         // histograms
  double count = 0;
  std::vector<double> bounds;   // kHistogram: explicit upper bounds
  std::vector<double> buckets;  // kHistogram: per-bucket (not cumulative) counts
  ExpBuckets exp;               // kExponential
};

std::string EncodeDeltaState(const DeltaState& state);
// nullopt for bytes that are not a version-1 state.
std::optional<DeltaState> DecodeDeltaState(std::string_view bytes);

}  // namespace tidemark::ingest::internal

#endif  // TIDEMARK_INGEST_OTLP_DELTA_H_
