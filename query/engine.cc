#include "query/engine.h"

#include <utility>

#include "query/evaluator.h"
#include "query/parser.h"

namespace tidemark::promql {

Engine::Engine(EngineOptions options) : options_(std::move(options)) {}

absl::StatusOr<QueryResult> Engine::Instant(Queryable& data, std::string_view query,
                                            int64_t time_ms, const QueryParams& params) const {
  absl::StatusOr<ExprPtr> expr = Parse(query);
  if (!expr.ok()) return expr.status();
  return internal::EvaluateInstant(options_, data, **expr, time_ms, params);
}

absl::StatusOr<QueryResult> Engine::Range(Queryable& data, std::string_view query,
                                          int64_t start_ms, int64_t end_ms, int64_t step_ms,
                                          const QueryParams& params) const {
  absl::StatusOr<ExprPtr> expr = Parse(query);
  if (!expr.ok()) return expr.status();
  return internal::EvaluateRange(options_, data, **expr, start_ms, end_ms, step_ms, params);
}

}  // namespace tidemark::promql
