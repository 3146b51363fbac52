// Engine: evaluates PromQL queries against a Queryable with Prometheus's semantics.
//
// Errors come back as absl::Status with codes that api/ maps to Prometheus error types once:
//   InvalidArgument     -> 400 bad_data   (parse and type errors, bad parameters)
//   Unimplemented       -> 422 execution  ("not implemented yet: <name>")
//   FailedPrecondition  -> 422 execution  (e.g. many-to-many matching, duplicate series)
//   ResourceExhausted   -> 422 execution  (too many samples)
//   DeadlineExceeded    -> 503 timeout
//   Cancelled           -> 499 canceled
//   anything else       -> 500 internal
// An Engine is thread-safe; queries run concurrently.
#ifndef TIDEMARK_QUERY_ENGINE_H_
#define TIDEMARK_QUERY_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "query/value.h"
#include "storage/querier.h"

namespace tidemark::promql {

struct EngineOptions {
  int64_t lookback_delta_ms = 5 * 60 * 1000;  // how far back an instant selector looks
  int64_t max_samples = 50'000'000;           // samples loaded at once by one query
  absl::Duration default_timeout = absl::Minutes(2);
  // The step of a subquery written without one (`m[1h:]`): Prometheus's global
  // evaluation_interval, 1m by default.
  int64_t default_subquery_step_ms = 60 * 1000;
  // Range queries are evaluated column by column (each series over all steps at once) where
  // that gives exactly the step-by-step answer; false evaluates every step in turn (for tests).
  bool columnar_range_queries = true;
  // A range query that reads the series of a selector one at a time (columnar evaluation) reads
  // them on a second thread, a batch ahead, when the selector selected at least
  // `read_ahead_min_series` (0: never): batches of an eighth of the selection, at least 32 and
  // at most `read_ahead_batch` series. The answer is the same either way.
  size_t read_ahead_min_series = 128;
  size_t read_ahead_batch = 256;
};

struct QueryParams {
  absl::Duration timeout = absl::ZeroDuration();  // 0: the engine's default
  const std::atomic<bool>* cancelled = nullptr;   // set by the caller when the client left
};

struct QueryStats {
  int64_t total_queryable_samples = 0;  // samples read from storage, as Prometheus counts them
  int64_t peak_samples = 0;
  double eval_seconds = 0;     // the whole evaluation (preparation, steps, sorting)
  double prepare_seconds = 0;  // of which: selecting and loading series
  double sort_seconds = 0;     // of which: sorting the result
  // total_queryable_samples broken down by evaluation step: (step time ms, samples).
  std::vector<std::pair<int64_t, int64_t>> samples_per_step;
};

struct QueryResult {
  Value value;                        // Matrix for range queries
  std::vector<std::string> warnings;  // shown by Grafana; empty usually
  QueryStats stats;
};

class Engine {
 public:
  explicit Engine(EngineOptions options = {});

  // Evaluates `query` at `time_ms`.
  absl::StatusOr<QueryResult> Instant(Queryable& data, std::string_view query, int64_t time_ms,
                                      const QueryParams& params = {}) const;

  // Evaluates `query` at start, start+step, ... <= end; returns a Matrix sorted by labels.
  // A scalar query gives one series with no labels. InvalidArgument when step <= 0 or end < start.
  absl::StatusOr<QueryResult> Range(Queryable& data, std::string_view query, int64_t start_ms,
                                    int64_t end_ms, int64_t step_ms,
                                    const QueryParams& params = {}) const;

  const EngineOptions& options() const { return options_; }

 private:
  EngineOptions options_;
};

}  // namespace tidemark::promql

#endif  // TIDEMARK_QUERY_ENGINE_H_
