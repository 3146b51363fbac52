// Column-wise evaluation of range queries: each node of the query is evaluated once over all
// steps, series by series, instead of once per step. Labels of output series, grouping keys
// and matching signatures are computed once per series; windows slide over each series'
// loaded samples with moving indices and are read in place. Series are read one at a time
// (ColumnSource::ForEachLoaded), and sum/avg/min/max/count/group/stddev/stdvar over a selector
// or a window function fold each series' column into their output as it comes, so a query
// holds its output and one series at a time rather than all of its input.
//
// It gives exactly the answer of the step-by-step evaluator (same values bit for bit, same
// order of floating-point operations, same stats), which it falls back on for the parts it
// does not evaluate itself (any node but selectors, the common range functions,
// histogram_quantile, aggregations other than count_values, arithmetic and comparison
// operators, unary minus): those are evaluated step by step through ColumnSource::EvalStep and
// turned into columns. Whenever the step-by-step evaluation could fail (duplicate series,
// many-to-many matching, a bad parameter) it fails, with some error; the caller then evaluates
// the whole query step by step, which gives Prometheus's error. Too many samples held is the
// exception: it is reported (over_max_samples), as its verdict is the step-by-step one. Internal
// to query/.
#ifndef TIDEMARK_QUERY_RANGE_EVAL_H_
#define TIDEMARK_QUERY_RANGE_EVAL_H_

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "query/ast.h"
#include "query/value.h"
#include "storage/labels.h"
#include "storage/sample.h"

namespace tidemark::promql::internal {

// The series of one selector, loaded once for the whole query. A range selector's samples
// hold no stale markers (the loader drops them); an instant selector's may.
struct LoadedSeries {
  Labels labels;
  std::vector<Sample> samples;  // increasing time
};

// What column-wise evaluation needs from the step-by-step evaluator.
class ColumnSource {
 public:
  virtual ~ColumnSource() = default;
  // Calls `fn` with each loaded series of `vs` (none when it has none), in the order
  // Querier::Select gave them, and returns the first error of `fn` or of reading. A series is
  // only valid during its call: the source may read it from storage just then and release it
  // right after, so that a node that folds series one at a time never holds them all. Each
  // selector is read once this way.
  virtual absl::Status ForEachLoaded(
      const VectorSelector& vs, const std::function<absl::Status(const LoadedSeries&)>& fn) = 0;
  // The time `vs` reads at when the query is evaluated at `t` (@ and offset applied).
  virtual int64_t RefTime(const VectorSelector& vs, int64_t t) const = 0;
  // Cancellation and deadline, as the step-by-step evaluator reports them.
  virtual absl::Status CheckInterrupted() const = 0;
  // Evaluates `expr` at `t` step by step; adds to `*held` the samples the evaluation holds and
  // to `*queried` the samples it reads from storage.
  virtual absl::StatusOr<Value> EvalStep(const Expr& expr, int64_t t, int64_t* held,
                                         int64_t* queried) = 0;
};

struct ColumnarResult {
  Matrix matrix;                             // sorted by labels, as the range query returns it
  std::vector<std::pair<int64_t, int64_t>> queried_per_step;  // (step time, samples read)
  int64_t total_queried = 0;
  int64_t peak_samples = 0;
  // At the end of some step, the step-by-step evaluator would hold more than max_samples (that
  // step's samples and the result so far): it fails with too many samples, at that step or
  // before. The other fields are then incomplete.
  bool over_max_samples = false;
};

// True when `expr` may be evaluated column-wise at all (it holds no subquery: subqueries keep
// per-step state that only the step-by-step evaluator accounts for).
bool ColumnarApplicable(const Expr& expr);

// Evaluates the range query `expr` at start, start+step, ... <= end. Any error means "evaluate
// step by step instead" (see the file comment); past `max_samples`, held as the step-by-step
// evaluator holds samples, it answers with over_max_samples.
absl::StatusOr<ColumnarResult> EvaluateColumnar(const Expr& expr, int64_t start_ms,
                                                int64_t end_ms, int64_t step_ms,
                                                int64_t lookback_delta_ms, int64_t max_samples,
                                                ColumnSource& source);

}  // namespace tidemark::promql::internal

#endif  // TIDEMARK_QUERY_RANGE_EVAL_H_
