// Evaluation of PromQL function calls (every function of Prometheus 2.42, float samples), for
// the evaluator. The evaluator hands a call and a FunctionContext (how to evaluate arguments);
// EvalFunction evaluates the arguments it needs and applies the function at one step.
//
// Results follow Prometheus 2.42's promql/functions.go: which functions drop the metric name,
// which skip series, NaN and ±Inf handling, error messages. Output elements carry time `t` (the
// evaluation time). A result with two elements of the same label set fails with
// FailedPrecondition("vector cannot contain metrics with the same labelset").
// Internal to query/; thread-compatible (no shared state).
#ifndef TIDEMARK_QUERY_FUNCTIONS_EVAL_H_
#define TIDEMARK_QUERY_FUNCTIONS_EVAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "query/ast.h"
#include "query/value.h"

namespace tidemark::promql::internal {

// One series of a range-vector argument: its labels and its window of samples, both borrowed
// (from the evaluator's loaded series or from RangeArgument::owned).
struct WindowSeries {
  const Labels* labels = nullptr;
  std::span<const Sample> samples;
};

// A range-vector argument evaluated at one step: each series' non-stale samples in
// [range_start_ms, range_end_ms], series without samples left out. The windows read the loaded
// samples in place; a subquery's points are kept in `owned` (moving the argument keeps the
// windows valid).
struct RangeArgument {
  std::vector<WindowSeries> series;
  Matrix owned;
  int64_t range_start_ms = 0;
  int64_t range_end_ms = 0;
};

// How a function evaluates its arguments; implemented by the evaluator.
class FunctionContext {
 public:
  virtual ~FunctionContext() = default;
  // Any expression at step `t`.
  virtual absl::StatusOr<Value> Eval(const Expr& expr, int64_t t) = 0;
  // A range-vector expression (matrix selector or subquery) at step `t`.
  virtual absl::StatusOr<RangeArgument> EvalRange(const Expr& expr, int64_t t) = 0;
  // The instant selector at step `t`, each element's `t` being its sample's own timestamp
  // (timestamp() needs it).
  virtual absl::StatusOr<Vector> SelectWithSampleTimes(const VectorSelector& vs, int64_t t) = 0;
};

// True when EvalFunction evaluates `name`.
bool IsEvaluableFunction(std::string_view name);

// Evaluates `call` at step `t`.
absl::StatusOr<Value> EvalFunction(const Call& call, int64_t t, FunctionContext& ctx);

// ---- Pure helpers, exposed for tests. ----

struct Bucket {
  double upper_bound = 0;
  double count = 0;
};

// Prometheus's bucketQuantile over classic histogram buckets (any order; sorted here): NaN for a
// NaN q, -Inf for q < 0, +Inf for q > 1; NaN without a +Inf bucket, with fewer than two buckets
// (after merging equal bounds) or no observations; counts are made monotonic first; linear
// interpolation in the bucket, the lowest bucket starting at 0 when its bound is positive.
double BucketQuantile(double q, std::vector<Bucket> buckets);

// Go's strconv.ParseFloat(s, 64) success (a histogram bucket's `le`): the whole string is a
// number (incl. Inf/NaN spellings); std::nullopt otherwise and for out-of-range values.
std::optional<double> ParseGoFloat(const std::string& s);

// Prometheus's quantile of `values` (quantile_over_time): NaN when empty or q is NaN, -Inf for
// q < 0, +Inf for q > 1, else linear interpolation between the closest ranks.
double Quantile(double q, std::vector<double> values);

// Go's regexp.Expand of `tmpl` ($1, ${1}, $name, ${name}, $$) for a match of `re` whose groups
// are `groups` (groups[0] the whole match, nullptr data for a group that did not take part).
struct MatchGroups {
  std::vector<std::string_view> groups;
  std::vector<std::pair<std::string, int>> names;  // named groups: name -> index
  std::vector<bool> matched;                       // whether group i took part
};
std::string ExpandTemplate(std::string_view tmpl, const MatchGroups& match);

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_FUNCTIONS_EVAL_H_
