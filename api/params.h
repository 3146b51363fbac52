// Parsing of the Prometheus HTTP API's parameter values: times, durations and limits.
//
// Each function accepts what Prometheus accepts and fails with InvalidArgument carrying
// Prometheus's wording (`cannot parse "x" to a valid timestamp`). Callers prefix the parameter
// name (`invalid parameter "start": ...`). Stateless and thread-safe.
#ifndef TIDEMARK_API_PARAMS_H_
#define TIDEMARK_API_PARAMS_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tidemark::api {

// Prometheus's "no bound" times (v1.MinTime / v1.MaxTime) in milliseconds; the default of an
// absent start or end of the labels and series APIs.
inline constexpr int64_t kMinTimeMs = -9223309901257974000LL;
inline constexpr int64_t kMaxTimeMs = 9223309901257974999LL;

// A time parameter in milliseconds since the epoch: float or integer unix seconds
// (`1700000000.123`, rounded to the millisecond), RFC3339 with optional fraction and offset
// (`2023-11-14T22:13:20.5+01:00`), or the formatted Min/Max times client_golang sends.
absl::StatusOr<int64_t> ParseTime(std::string_view text);

// A duration parameter (`step`, `timeout`): float seconds (`0.5`, `15`) or a Prometheus duration
// (`15s`, `1m30s`, `1h0m0s`, `2d`). Negative floats are returned as they are (the caller checks).
absl::StatusOr<absl::Duration> ParseDurationParam(std::string_view text);

// A Prometheus (model) duration: units y, w, d, h, m, s, ms in that order, each at most once,
// e.g. `15d`, `1h30m`, `250ms`, or `0`. Returns milliseconds.
absl::StatusOr<int64_t> ParseModelDuration(std::string_view text);

// The `limit` parameter: absent/empty means no limit (returns 0); otherwise a positive integer.
absl::StatusOr<int64_t> ParseLimit(std::string_view text);

// Go's strconv.ParseFloat for the decimal forms (optional sign, exponent, Inf, NaN).
bool ParseGoFloat(std::string_view text, double* out);

}  // namespace tidemark::api

#endif  // TIDEMARK_API_PARAMS_H_
