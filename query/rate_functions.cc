#include "query/rate_functions.h"

#include <cmath>
#include <limits>

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

namespace tidemark::promql::internal {

void KahanSumInc(double inc, double& sum, double& c) {
  double t = sum + inc;
  // Neumaier's variant: the bits lost are those of the smaller operand.
  if (std::abs(sum) >= std::abs(inc)) {
    c += (sum - t) + inc;
  } else {
    c += (inc - t) + sum;
  }
  sum = t;
}

std::pair<double, double> LinearRegression(std::span<const Sample> window,
                                           int64_t intercept_time_ms) {
  double n = 0;
  double sum_x = 0, c_x = 0, sum_y = 0, c_y = 0, sum_xy = 0, c_xy = 0, sum_x2 = 0, c_x2 = 0;
  double init_y = window.front().v;
  bool const_y = true;
  for (size_t i = 0; i < window.size(); ++i) {
    const Sample& s = window[i];
    if (const_y && i > 0 && s.v != init_y) const_y = false;
    n += 1;
    double x = static_cast<double>(s.t - intercept_time_ms) / 1e3;
    KahanSumInc(x, sum_x, c_x);
    KahanSumInc(s.v, sum_y, c_y);
    KahanSumInc(x * s.v, sum_xy, c_xy);
    KahanSumInc(x * x, sum_x2, c_x2);
  }
  if (const_y) {
    if (std::isinf(init_y)) {
      return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
    }
    return {0, init_y};
  }
  sum_x += c_x;
  sum_y += c_y;
  sum_xy += c_xy;
  sum_x2 += c_x2;
  double cov_xy = sum_xy - sum_x * sum_y / n;
  double var_x = sum_x2 - sum_x * sum_x / n;
  double slope = cov_xy / var_x;
  double intercept = sum_y / n - slope * sum_x / n;
  return {slope, intercept};
}

std::optional<double> Deriv(std::span<const Sample> window) {
  if (window.size() < 2) return std::nullopt;
  // The first sample's time as the intercept time keeps x small (Prometheus issue 2674).
  return LinearRegression(window, window.front().t).first;
}

std::optional<double> PredictLinear(std::span<const Sample> window, int64_t eval_time_ms,
                                    double seconds) {
  if (window.size() < 2) return std::nullopt;
  auto [slope, intercept] = LinearRegression(window, eval_time_ms);
  return slope * seconds + intercept;
}

std::optional<double> HoltWinters(std::span<const Sample> window, double smoothing, double trend) {
  if (window.size() < 2) return std::nullopt;
  double s0 = 0;
  double s1 = window[0].v;
  double b = window[1].v - window[0].v;
  for (size_t i = 1; i < window.size(); ++i) {
    double x = smoothing * window[i].v;
    // The trend at the previous point; the initial trend is used as it is for i == 1.
    if (i > 1) b = trend * (s1 - s0) + (1 - trend) * b;
    double y = (1 - smoothing) * (s1 + b);
    s0 = s1;
    s1 = x + y;
  }
  return s1;
}

double AvgOverTime(std::span<const Sample> window) {
  double mean = 0, c = 0, count = 0;
  for (const Sample& s : window) {
    count += 1;
    if (std::isinf(mean)) {
      // Inf - Inf would give NaN: an infinite mean stays for a same-signed Inf or a finite value.
      if (std::isinf(s.v) && (mean > 0) == (s.v > 0)) continue;
      if (!std::isinf(s.v) && !std::isnan(s.v)) continue;
    }
    KahanSumInc(s.v / count - mean / count, mean, c);
  }
  if (std::isinf(mean)) return mean;
  return mean + c;
}

double SumOverTime(std::span<const Sample> window) {
  double sum = 0, c = 0;
  for (const Sample& s : window) KahanSumInc(s.v, sum, c);
  if (std::isinf(sum)) return sum;
  return sum + c;
}

double MinOverTime(std::span<const Sample> window) {
  double m = window.front().v;
  for (const Sample& s : window) {
    if (s.v < m || std::isnan(m)) m = s.v;
  }
  return m;
}

double MaxOverTime(std::span<const Sample> window) {
  double m = window.front().v;
  for (const Sample& s : window) {
    if (s.v > m || std::isnan(m)) m = s.v;
  }
  return m;
}

double StdvarOverTime(std::span<const Sample> window) {
  double count = 0, mean = 0, c_mean = 0, aux = 0, c_aux = 0;
  for (const Sample& s : window) {
    count += 1;
    double delta = s.v - (mean + c_mean);
    KahanSumInc(delta / count, mean, c_mean);
    KahanSumInc(delta * (s.v - (mean + c_mean)), aux, c_aux);
  }
  return (aux + c_aux) / count;
}

double StddevOverTime(std::span<const Sample> window) {
  return std::sqrt(StdvarOverTime(window));
}

double Changes(std::span<const Sample> window) {
  double changes = 0;
  double prev = window.front().v;
  for (const Sample& s : window.subspan(1)) {
    if (s.v != prev && !(std::isnan(s.v) && std::isnan(prev))) changes += 1;
    prev = s.v;
  }
  return changes;
}

double Resets(std::span<const Sample> window) {
  double resets = 0;
  double prev = window.front().v;
  for (const Sample& s : window.subspan(1)) {
    if (s.v < prev) resets += 1;
    prev = s.v;
  }
  return resets;
}

}  // namespace tidemark::promql::internal
