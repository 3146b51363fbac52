// Range-vector functions over one series' window: rate, increase, delta (extrapolated) and
// irate, with Prometheus 2.42's semantics. Pure functions; internal to the engine.
#ifndef TIDEMARK_QUERY_RATE_FUNCTIONS_H_
#define TIDEMARK_QUERY_RATE_FUNCTIONS_H_

#include <cstdint>
#include <optional>
#include <span>

#include "storage/sample.h"

namespace tidemark::promql::internal {

// rate (is_counter, is_rate), increase (is_counter), delta (neither) over `window`, the
// non-stale samples in [range_start_ms, range_end_ms] in increasing time. Counter resets add
// the value before the reset; the result is extrapolated towards the range boundaries when the
// first/last sample is within 1.1 average intervals of them (else by half an interval), and for
// counters not below zero. std::nullopt (no output element) with fewer than two samples.
std::optional<double> ExtrapolatedRate(std::span<const Sample> window, int64_t range_start_ms,
                                       int64_t range_end_ms, bool is_counter, bool is_rate);

// irate (is_rate) over the last two samples of `window`: a drop counts as a counter reset.
// std::nullopt with fewer than two samples.
std::optional<double> InstantRate(std::span<const Sample> window, bool is_rate);

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_RATE_FUNCTIONS_H_
