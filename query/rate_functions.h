// Range-vector functions over one series' window (the non-stale samples in the range, in
// increasing time): rate, increase, delta (extrapolated), irate, idelta, deriv, predict_linear,
// holt_winters, changes, resets and the *_over_time aggregations, with Prometheus 2.42's
// semantics. Pure functions; internal to the engine.
#ifndef TIDEMARK_QUERY_RATE_FUNCTIONS_H_
#define TIDEMARK_QUERY_RATE_FUNCTIONS_H_

#include <cstdint>
#include <optional>
#include <span>
#include <utility>

#include "storage/sample.h"

namespace tidemark::promql::internal {

// rate (is_counter, is_rate), increase (is_counter), delta (neither) over `window`, the
// non-stale samples in [range_start_ms, range_end_ms] in increasing time. Counter resets add
// the value before the reset; the result is extrapolated towards the range boundaries when the
// first/last sample is within 1.1 average intervals of them (else by half an interval), and for
// counters not below zero. std::nullopt (no output element) with fewer than two samples.
std::optional<double> ExtrapolatedRate(std::span<const Sample> window, int64_t range_start_ms,
                                       int64_t range_end_ms, bool is_counter, bool is_rate);

// irate (is_rate) or idelta over the last two samples of `window`: for irate a drop counts as a
// counter reset. std::nullopt with fewer than two samples or two at the same time.
std::optional<double> InstantRate(std::span<const Sample> window, bool is_rate);

// Neumaier-compensated summation step (Prometheus's kahanSumInc): adds `inc` to `sum`,
// accumulating the lost low-order bits in `c`. The total is sum + c (sum alone when infinite).
void KahanSumInc(double inc, double& sum, double& c);

// Least-squares slope (per second) and intercept at `intercept_time_ms` of `window` (>= 1
// sample). A constant series gives slope 0 (NaN and NaN when the constant is infinite).
std::pair<double, double> LinearRegression(std::span<const Sample> window,
                                           int64_t intercept_time_ms);

// deriv: the regression slope; std::nullopt with fewer than two samples.
std::optional<double> Deriv(std::span<const Sample> window);
// predict_linear: the value `seconds` after `eval_time_ms`; std::nullopt with < 2 samples.
std::optional<double> PredictLinear(std::span<const Sample> window, int64_t eval_time_ms,
                                    double seconds);
// holt_winters double exponential smoothing; std::nullopt with fewer than two samples. The
// factors must be in (0, 1) (checked by the caller).
std::optional<double> HoltWinters(std::span<const Sample> window, double smoothing, double trend);

// Aggregations over a non-empty window.
double AvgOverTime(std::span<const Sample> window);
double SumOverTime(std::span<const Sample> window);
double MinOverTime(std::span<const Sample> window);  // NaN only when all are NaN
double MaxOverTime(std::span<const Sample> window);
double StdvarOverTime(std::span<const Sample> window);
double StddevOverTime(std::span<const Sample> window);
// Number of value changes (NaN to NaN is no change) and of decreases.
double Changes(std::span<const Sample> window);
double Resets(std::span<const Sample> window);

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_RATE_FUNCTIONS_H_
