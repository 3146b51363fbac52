#include "query/rate_functions.h"

namespace tidemark::promql::internal {

std::optional<double> ExtrapolatedRate(std::span<const Sample> window, int64_t range_start_ms,
                                       int64_t range_end_ms, bool is_counter, bool is_rate) {
  if (window.size() < 2) return std::nullopt;
  const Sample& first = window.front();
  const Sample& last = window.back();
  double result = last.v - first.v;
  if (is_counter) {
    double previous = 0;
    for (const Sample& s : window) {
      if (s.v < previous) result += previous;  // counter reset
      previous = s.v;
    }
  }

  double duration_to_start = static_cast<double>(first.t - range_start_ms) / 1000;
  double duration_to_end = static_cast<double>(range_end_ms - last.t) / 1000;
  double sampled_interval = static_cast<double>(last.t - first.t) / 1000;
  double average_interval = sampled_interval / static_cast<double>(window.size() - 1);

  if (is_counter && result > 0 && first.v >= 0) {
    // A counter does not go below zero: do not extrapolate past the point where it would.
    double duration_to_zero = sampled_interval * (first.v / result);
    if (duration_to_zero < duration_to_start) duration_to_start = duration_to_zero;
  }

  double threshold = average_interval * 1.1;
  double extrapolate_to = sampled_interval;
  extrapolate_to += duration_to_start < threshold ? duration_to_start : average_interval / 2;
  extrapolate_to += duration_to_end < threshold ? duration_to_end : average_interval / 2;
  result *= extrapolate_to / sampled_interval;
  if (is_rate) result /= static_cast<double>(range_end_ms - range_start_ms) / 1000;
  return result;
}

std::optional<double> InstantRate(std::span<const Sample> window, bool is_rate) {
  if (window.size() < 2) return std::nullopt;
  const Sample& last = window[window.size() - 1];
  const Sample& previous = window[window.size() - 2];
  double result = (is_rate && last.v < previous.v) ? last.v : last.v - previous.v;
  int64_t interval_ms = last.t - previous.t;
  if (interval_ms == 0) return std::nullopt;
  if (is_rate) result /= static_cast<double>(interval_ms) / 1000;
  return result;
}

}  // namespace tidemark::promql::internal
