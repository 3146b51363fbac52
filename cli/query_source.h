// QuerySource: where the command line reads data from. Every command (query, labels,
// label-values, series, slo report) runs against one of two sources:
//   - HTTP: any Prometheus-compatible HTTP API (Tidemark, Prometheus, ...), `--server URL`,
//     with an optional bearer token and a tenant sent as X-Scope-OrgID;
//   - embedded: a Tidemark data directory opened read-only (`--storage.path DIR`), safe while a
//     server is writing to it; queries run in-process with the PromQL engine.
// Errors are statuses with a reason a user can act on: Unavailable for a server that cannot be
// reached, the server's own error type and message for a rejected query. A source is used by one
// thread at a time.
#ifndef TIDEMARK_CLI_QUERY_SOURCE_H_
#define TIDEMARK_CLI_QUERY_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "query/value.h"
#include "storage/labels.h"

namespace tidemark::cli {

class QuerySource {
 public:
  virtual ~QuerySource() = default;

  // PromQL `query` evaluated at `time_ms`.
  virtual absl::StatusOr<promql::Value> Instant(std::string_view query, int64_t time_ms) = 0;

  // PromQL `query` over [start_ms, end_ms] every step_ms; a Matrix sorted by labels.
  virtual absl::StatusOr<promql::Matrix> Range(std::string_view query, int64_t start_ms,
                                               int64_t end_ms, int64_t step_ms) = 0;

  // Sorted label names (of series matching `selector` when it is non-empty) in [start, end].
  virtual absl::StatusOr<std::vector<std::string>> LabelNames(std::string_view selector,
                                                              int64_t start_ms,
                                                              int64_t end_ms) = 0;

  // Sorted values of label `name`.
  virtual absl::StatusOr<std::vector<std::string>> LabelValues(std::string_view name,
                                                               std::string_view selector,
                                                               int64_t start_ms,
                                                               int64_t end_ms) = 0;

  // Label sets of the series matching `selector` in [start, end], sorted.
  virtual absl::StatusOr<std::vector<Labels>> Series(std::string_view selector, int64_t start_ms,
                                                     int64_t end_ms) = 0;

  // "http://host:port" or "storage /path", for messages.
  virtual std::string Describe() const = 0;
};

struct HttpSourceOptions {
  std::string url;     // http(s)://host[:port][/path prefix]
  std::string token;   // bearer token; empty: none
  std::string tenant;  // X-Scope-OrgID; empty: none
  int timeout_seconds = 120;
};

// InvalidArgument for a malformed URL. Does not connect yet.
absl::StatusOr<std::unique_ptr<QuerySource>> NewHttpSource(const HttpSourceOptions& options);

struct EmbeddedSourceOptions {
  std::string path;    // data directory
  std::string tenant;  // empty: the default tenant
  int64_t lookback_delta_ms = 5 * 60 * 1000;
};

// Opens the directory read-only (NotFound / FailedPrecondition with the reason when it is not a
// Tidemark data directory).
absl::StatusOr<std::unique_ptr<QuerySource>> NewEmbeddedSource(
    const EmbeddedSourceOptions& options);

namespace internal {

// Decodes a Prometheus HTTP API response body (`{"status":"success","data":...}`) of a query:
// the Value of `data`. An error response becomes a status carrying errorType and error.
absl::StatusOr<promql::Value> DecodeQueryResponse(std::string_view body);

// Decodes the `data` array of /api/v1/labels and /label/<name>/values.
absl::StatusOr<std::vector<std::string>> DecodeStringListResponse(std::string_view body);

// Decodes the `data` array of /api/v1/series.
absl::StatusOr<std::vector<Labels>> DecodeSeriesResponse(std::string_view body);

}  // namespace internal
}  // namespace tidemark::cli

#endif  // TIDEMARK_CLI_QUERY_SOURCE_H_
