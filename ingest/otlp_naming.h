// OTLP names to Prometheus names, per the OpenTelemetry "Prometheus and OpenMetrics
// Compatibility" specification as Prometheus 3's OTLP receiver applies it with the
// UnderscoreEscaping strategies (legacy names `[a-zA-Z_:][a-zA-Z0-9_:]*`).
//
//   BuildOtlpMetricName("http.server.duration", "ms", kHistogram, true)
//       -> "http_server_duration_milliseconds"
//   BuildOtlpMetricName("requests", "1", kMonotonicCounter, true) -> "requests_total"
//   BuildOtlpLabelName("http.method") -> "http_method"
//
// Pure functions; thread-safe.
#ifndef TIDEMARK_INGEST_OTLP_NAMING_H_
#define TIDEMARK_INGEST_OTLP_NAMING_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace tidemark::ingest {

// The Prometheus-side kind of an OTLP metric, as far as naming cares.
enum class OtlpMetricType : uint8_t {
  kGauge = 0,
  kMonotonicCounter = 1,     // monotonic sum
  kNonMonotonicCounter = 2,  // non-monotonic sum (stored as a gauge, named without _total)
  kHistogram = 3,
  kExponentialHistogram = 4,
  kSummary = 5,
};

// The metric family name. With suffixes: the name split into tokens at every character outside
// `[a-zA-Z0-9:]` (so runs of `_` and of invalid characters become one `_`), the unit's main part
// (unit map, e.g. `ms` -> `milliseconds`, `By` -> `bytes`, `{...}` annotations dropped) and per
// part (`/s` -> `per_second`) appended unless already a token, `total` moved to the end of
// monotonic counters, `ratio` to the end of gauges with unit `1`, and `_` prepended when the name
// starts with a digit. Without suffixes: invalid characters replaced by `_` (runs collapsed,
// existing underscores kept). Returns "" when the result would be empty or only underscores:
// such a metric cannot be stored.
std::string BuildOtlpMetricName(std::string_view name, std::string_view unit, OtlpMetricType type,
                                bool with_suffixes);

// A label name from an attribute key: characters outside `[a-zA-Z0-9]` replaced by `_` with runs
// collapsed (a reserved `__x__` key keeps its double underscores), `key_` prepended when it
// starts with a digit. Returns "" when the key is empty or the result is only underscores.
std::string BuildOtlpLabelName(std::string_view key);

// The unit as a name suffix would spell it (`ms` -> `milliseconds`, `By/s` -> `bytes_per_second`,
// `1` -> ""), for metadata.
std::string BuildOtlpUnitName(std::string_view unit);

}  // namespace tidemark::ingest

#endif  // TIDEMARK_INGEST_OTLP_NAMING_H_
