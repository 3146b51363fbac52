// Time and duration arguments of the command line: `--time`, `--start`, `--end`, `--step`.
//
// A time is RFC3339 (`2024-03-01T00:00:00Z`, with optional fraction and offset), Unix seconds
// (`1709251200`, `1709251200.5`), or relative to now (`now`, `now-1h`, `now+30m`). Durations
// are Prometheus durations (`5m`, `1h30m`, `30d`). Pure functions; thread-safe.
#ifndef TIDEMARK_CLI_TIME_ARGS_H_
#define TIDEMARK_CLI_TIME_ARGS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tidemark::cli {

// Milliseconds since the epoch for `text`; `now_ms` anchors relative times.
// InvalidArgument naming the accepted forms when `text` is none of them.
absl::StatusOr<int64_t> ParseTimeArg(std::string_view text, int64_t now_ms);

// Milliseconds of a Prometheus duration, or of plain seconds (`60`, `0.5`) as the HTTP API
// accepts for `step`. InvalidArgument otherwise; zero and negative durations are refused.
absl::StatusOr<int64_t> ParseDurationArg(std::string_view text);

// RFC3339 in UTC with milliseconds only when needed: `2024-03-01T00:00:00Z`.
std::string FormatTimeRfc3339(int64_t ms);

// Start of the calendar month (UTC) that contains `ms`.
int64_t StartOfMonthUtc(int64_t ms);

// A human duration: `12d 3h`, `5h 20m`, `42m`, `30s`.
std::string FormatHumanDuration(int64_t ms);

}  // namespace tidemark::cli

#endif  // TIDEMARK_CLI_TIME_ARGS_H_
