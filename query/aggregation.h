// PromQL aggregation operators over one instant vector (one evaluation step), with Prometheus
// 2.42's semantics: sum avg min max count group stddev stdvar topk bottomk quantile
// count_values, grouped by(...) or without(...). Pure functions; internal to the engine.
#ifndef TIDEMARK_QUERY_AGGREGATION_H_
#define TIDEMARK_QUERY_AGGREGATION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "query/ast.h"
#include "query/value.h"

namespace tidemark::promql::internal {

// The parameter of an aggregation evaluated at this step: the scalar of topk/bottomk/quantile,
// the label name of count_values. Ignored by the other operators.
struct AggregationParam {
  double scalar = 0;
  std::string_view label;
};

// Aggregates `in` (elements in input order) at time `t`. Groups come out in the order of their
// first element in `in`; topk/bottomk give, per group, the kept input elements (labels
// unchanged) from the highest (lowest) value down (up), NaN last. FailedPrecondition with
// Prometheus's message when the topk/bottomk parameter does not fit an int64 or the count_values
// label is not a valid label name.
absl::StatusOr<Vector> Aggregate(const AggregateExpr& agg, const Vector& in,
                                 const AggregationParam& param, int64_t t);

// The q-quantile of `values` (reordered), interpolating between the two nearest ranks as
// Prometheus's quantile() does: NaN for no values or q = NaN, -Inf for q < 0, +Inf for q > 1.
// NaN values sort first.
double Quantile(double q, std::vector<double>& values);

// Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest decimal without exponent that reads
// back as `v`; "NaN", "+Inf", "-Inf" for the special values. count_values' label values.
std::string FormatFloatForLabel(double v);

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_AGGREGATION_H_
