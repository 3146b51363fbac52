// PromQL binary operators over one evaluation step, with Prometheus 2.42's semantics:
// arithmetic (+ - * / % ^ atan2), comparisons (filtering or `bool`), set operators
// (and/or/unless), one-to-one and many-to-one/one-to-many matching with on/ignoring and
// group_left/group_right(include...). Pure functions; internal to the engine.
#ifndef TIDEMARK_QUERY_BINARY_OPS_H_
#define TIDEMARK_QUERY_BINARY_OPS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "query/ast.h"
#include "query/value.h"

namespace tidemark::promql::internal {

// The value of `l op r` and, for a comparison, whether it holds (true for arithmetic).
// A comparison's value is `l`. % is Go's math.Mod (C fmod), ^ is math.Pow.
std::pair<double, bool> ApplyBinaryOp(BinaryOp op, double l, double r);

// True for the operators whose result drops the metric name (+ - * / % ^; not atan2).
bool DropsMetricName(BinaryOp op);

// Prometheus's resultMetric: the labels of the "many" side `many`, less the metric name for
// arithmetic, narrowed to the matching labels for one-to-one matching, with the include labels
// of group_x copied from the "one" side `one`.
Labels ResultLabels(const Labels& many, const Labels& one, BinaryOp op,
                    const VectorMatching& matching);

// scalar op scalar; comparisons give 1 or 0.
double ScalarBinary(BinaryOp op, double l, double r);

// vector op scalar (scalar_left: scalar op vector). Comparisons keep the vector's value and
// labels for the elements they keep, or with `bool` give 1/0 for every element without the
// metric name. Elements keep their input order.
Vector VectorScalarBinary(BinaryOp op, bool return_bool, Vector vec, double scalar,
                          bool scalar_left);

// vector op vector under `b.matching`. The result is in the order of the "many" side (lhs for
// one-to-one). FailedPrecondition with Prometheus's messages on duplicate series on the "one"
// side, several matches in one-to-one matching, or colliding results in group_left/right.
// Does not check the output for duplicate label sets (see CheckUniqueLabels).
absl::StatusOr<Vector> VectorVectorBinary(const BinaryExpr& b, const Vector& lhs,
                                          const Vector& rhs);

// FailedPrecondition("vector cannot contain metrics with the same labelset") when two
// elements of `v` share a label set. Does not reorder `v`.
absl::Status CheckUniqueLabels(const Vector& v);

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_BINARY_OPS_H_
