// The PromQL evaluator behind Engine: walks a parsed AST step by step over series that it loads
// once from a Querier. Internal to query/; Engine is the public face.
//
// Semantics follow Prometheus 2.42: instant selectors take the latest sample in
// [t - lookback, t] unless it is a stale marker; range selectors take the non-stale samples in
// [t - range, t]; offset and @ move t; a subquery evaluates its expression at the multiples of
// its step in [t - offset - range, t - offset] (the loader widens the data range accordingly).
// Aggregations and binary operators are in aggregation.h and binary_ops.h. Constructs outside
// the implemented subset fail with Unimplemented("not implemented yet: <name>") before any data
// is read. Cancellation and the deadline are checked per step, per series loaded and per
// subquery step; max_samples bounds both the samples loaded and those held at once.
#ifndef TIDEMARK_QUERY_EVALUATOR_H_
#define TIDEMARK_QUERY_EVALUATOR_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "query/ast.h"
#include "query/engine.h"
#include "query/value.h"
#include "storage/querier.h"

namespace tidemark::promql::internal {

// OK when every construct in `expr` is implemented, else Unimplemented naming the first one
// that is not.
absl::Status CheckImplemented(const Expr& expr);

// The static type of `expr`, for the constructs CheckImplemented accepts.
ValueType StaticType(const Expr& expr);

// Evaluates `expr` at `time_ms` (Instant) or at start, start+step, ... <= end (Range), opening
// one Querier on `data` for the time range the query needs. Results and errors as Engine's.
absl::StatusOr<QueryResult> EvaluateInstant(const EngineOptions& options, Queryable& data,
                                            const Expr& expr, int64_t time_ms,
                                            const QueryParams& params);
absl::StatusOr<QueryResult> EvaluateRange(const EngineOptions& options, Queryable& data,
                                          const Expr& expr, int64_t start_ms, int64_t end_ms,
                                          int64_t step_ms, const QueryParams& params);

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_EVALUATOR_H_
