// SLO definitions read from YAML: OpenSLO v1 (`apiVersion: openslo/v1`, `kind: SLO` with a
// ratio indicator, inline or by `indicatorRef` to a `kind: SLI` document of the same file) and
// Sloth (`version: prometheus/v1`). Both become the same SloDefinition: an objective and the
// PromQL of good (or bad) and total events, over a rolling window or calendar month.
//
// Event queries are templates. A query that contains `{{.window}}` (Sloth's form) gets the window
// substituted; any other query (OpenSLO's usual `sum(http_requests_total{code!~"5.."})`) names
// counters, and each of its selectors becomes `increase(selector[window])`. Latency SLIs are the
// same ratio: good = `sum(http_request_duration_seconds_bucket{le="0.3"})`, total =
// `sum(http_request_duration_seconds_count)`.
// Pure functions; thread-safe.
#ifndef TIDEMARK_CLI_SLO_H_
#define TIDEMARK_CLI_SLO_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tidemark::cli {

inline constexpr int64_t kDefaultSloWindowMs = 30LL * 24 * 3600 * 1000;

struct SloDefinition {
  std::string name;
  std::string service;
  std::string description;
  double objective = 0;       // a fraction in (0, 1): 0.999
  std::string good_query;     // exactly one of good_query and bad_query is set
  std::string bad_query;
  std::string total_query;
  int64_t window_ms = kDefaultSloWindowMs;  // rolling window
  bool calendar_month = false;              // window is the calendar month so far instead
  std::string origin;                       // "file:line" of the definition, for messages
};

// Parses every SLO of a (multi-document) YAML text. `file_name` prefixes error messages, which
// name the line and the field: `slos.yaml:12: spec.objectives[0].target: must be a number
// between 0 and 1, got "high"`. InvalidArgument on any error; an empty result is an error too.
absl::StatusOr<std::vector<SloDefinition>> ParseSloYaml(std::string_view text,
                                                        std::string_view file_name);

// Reads and parses a file (NotFound when it cannot be read).
absl::StatusOr<std::vector<SloDefinition>> LoadSloFile(const std::string& path);

// The PromQL for the events of `query_template` over `window_ms`, with every range function
// counting events (`func` = "increase") or per-second rates (`func` = "rate"), e.g.
//   EventsQuery("sum(http_requests_total{code=~\"5..\"})", 3600000, "increase")
//     == "sum(increase(http_requests_total{code=~\"5..\"}[1h]))"
//   EventsQuery("sum(rate(x[{{.window}}]))", 300000, "increase") == "sum(increase(x[5m]))"
// InvalidArgument when the query does not parse, or has a range selector but no {{.window}}.
absl::StatusOr<std::string> EventsQuery(std::string_view query_template, int64_t window_ms,
                                        std::string_view func);

}  // namespace tidemark::cli

#endif  // TIDEMARK_CLI_SLO_H_
