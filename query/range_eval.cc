#include "query/range_eval.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "query/aggregation.h"
#include "query/binary_ops.h"
#include "query/functions_eval.h"
#include "query/rate_functions.h"
#include "query/selection_heap.h"

namespace tidemark::promql::internal {
namespace {

// One series of a node's result over all steps: present[i] says whether it has a value at
// step i, v[i] is that value.
struct Column {
  Labels labels;
  std::vector<double> v;
  std::vector<uint8_t> present;
};

// A node's instant vectors at every step, as columns. The step-by-step evaluator's vector at
// step i holds the present columns in column order, or, when `rank` is not empty, in the order
// of rank[column][i].
struct Columns {
  std::vector<Column> cols;
  std::vector<std::vector<int32_t>> rank;
};

using Scalars = std::vector<double>;  // one per step
using Node = std::variant<Scalars, Columns>;

struct LabelsHash {
  size_t operator()(const Labels& l) const { return static_cast<size_t>(l.Hash()); }
};

// Interns label sets: equal sets get the same small id, in order of first appearance.
class LabelsIndex {
 public:
  int32_t Id(const Labels& l) {
    auto [it, inserted] = ids_.try_emplace(l, static_cast<int32_t>(ids_.size()));
    return it->second;
  }
  int32_t size() const { return static_cast<int32_t>(ids_.size()); }

 private:
  absl::flat_hash_map<Labels, int32_t, LabelsHash> ids_;
};

absl::Status Unsupported(std::string_view what) {
  return absl::UnimplementedError(absl::StrCat("columnar: ", std::string(what)));
}

absl::Status DuplicateLabelset() {
  return absl::FailedPreconditionError("vector cannot contain metrics with the same labelset");
}

enum class WindowFunc {
  kRate, kIncrease, kDelta, kIrate, kIdelta, kAvg, kSum, kMin, kMax, kCount, kStddev, kStdvar,
  kLast, kPresent, kChanges, kResets, kDeriv,
};

std::optional<WindowFunc> WindowFuncOf(std::string_view name) {
  static const auto* const table = new absl::flat_hash_map<std::string_view, WindowFunc>{
      {"rate", WindowFunc::kRate},
      {"increase", WindowFunc::kIncrease},
      {"delta", WindowFunc::kDelta},
      {"irate", WindowFunc::kIrate},
      {"idelta", WindowFunc::kIdelta},
      {"avg_over_time", WindowFunc::kAvg},
      {"sum_over_time", WindowFunc::kSum},
      {"min_over_time", WindowFunc::kMin},
      {"max_over_time", WindowFunc::kMax},
      {"count_over_time", WindowFunc::kCount},
      {"stddev_over_time", WindowFunc::kStddev},
      {"stdvar_over_time", WindowFunc::kStdvar},
      {"last_over_time", WindowFunc::kLast},
      {"present_over_time", WindowFunc::kPresent},
      {"changes", WindowFunc::kChanges},
      {"resets", WindowFunc::kResets},
      {"deriv", WindowFunc::kDeriv},
  };
  auto it = table->find(name);
  if (it == table->end()) return std::nullopt;
  return it->second;
}

// The same functions functions_eval.cc applies to a window.
std::optional<double> ApplyWindow(WindowFunc f, std::span<const Sample> w, int64_t lo,
                                  int64_t hi) {
  switch (f) {
    case WindowFunc::kRate: return ExtrapolatedRate(w, lo, hi, true, true);
    case WindowFunc::kIncrease: return ExtrapolatedRate(w, lo, hi, true, false);
    case WindowFunc::kDelta: return ExtrapolatedRate(w, lo, hi, false, false);
    case WindowFunc::kIrate: return InstantRate(w, true);
    case WindowFunc::kIdelta: return InstantRate(w, false);
    case WindowFunc::kAvg: return AvgOverTime(w);
    case WindowFunc::kSum: return SumOverTime(w);
    case WindowFunc::kMin: return MinOverTime(w);
    case WindowFunc::kMax: return MaxOverTime(w);
    case WindowFunc::kCount: return static_cast<double>(w.size());
    case WindowFunc::kStddev: return StddevOverTime(w);
    case WindowFunc::kStdvar: return StdvarOverTime(w);
    case WindowFunc::kLast: return w.back().v;
    case WindowFunc::kPresent: return 1.0;
    case WindowFunc::kChanges: return Changes(w);
    case WindowFunc::kResets: return Resets(w);
    case WindowFunc::kDeriv: return Deriv(w);
  }
  return std::nullopt;
}

const Expr& Unparen(const Expr& e) {
  const Expr* p = &e;
  while (const auto* n = p->As<ParenExpr>()) {
    if (n->expr == nullptr) break;
    p = n->expr.get();
  }
  return *p;
}

// Prometheus's convertibleToInt64, as aggregation.cc checks topk's parameter.
bool ConvertibleToInt64(double v) {
  return v <= 9223372036854774784.0 && v >= -9223372036854775808.0;
}

class ColumnarEvaluator {
 public:
  ColumnarEvaluator(std::vector<int64_t> times, int64_t lookback, int64_t max_cells,
                    ColumnSource& source)
      : times_(std::move(times)),
        n_(times_.size()),
        lookback_(lookback),
        max_cells_(max_cells),
        src_(source),
        held_(n_, 0),
        queried_(n_, 0) {}

  const std::vector<int64_t>& held() const { return held_; }
  const std::vector<int64_t>& queried() const { return queried_; }
  const std::vector<int64_t>& times() const { return times_; }

  absl::StatusOr<Node> Eval(const Expr& expr) {
    if (absl::Status st = src_.CheckInterrupted(); !st.ok()) return st;
    const Expr& e = Unparen(expr);
    if (const auto* n = e.As<NumberLiteral>()) return Node(Scalars(n_, n->value));
    if (const auto* n = e.As<VectorSelector>()) return Select(*n);
    if (const auto* n = e.As<Call>()) {
      if (n->func == "histogram_quantile" && n->args.size() == 2 && n->args[0] != nullptr &&
          n->args[1] != nullptr) {
        return HistogramQuantile(*n);
      }
      if (auto call = WindowCall(e)) return RangeFunction(call->first, *call->second);
      return Fallback(e);
    }
    if (const auto* n = e.As<AggregateExpr>()) {
      if (n->op == AggregateOp::kCountValues || n->expr == nullptr) return Fallback(e);
      return Aggregate(*n);
    }
    if (const auto* n = e.As<BinaryExpr>()) {
      if (IsSetOperator(n->op) || n->lhs == nullptr || n->rhs == nullptr) return Fallback(e);
      return Binary(*n);
    }
    if (const auto* n = e.As<UnaryExpr>()) {
      if (n->expr == nullptr) return Fallback(e);
      return Unary(*n);
    }
    return Fallback(e);
  }

 private:
  // A new column; fails when the columns kept so far would hold more than the step-by-step
  // evaluator may (its limit then applies, step by step).
  absl::StatusOr<Column*> NewColumn(Columns& out, Labels labels, bool ranked) {
    cells_ += static_cast<int64_t>(n_);
    if (cells_ > max_cells_) return Unsupported("too many cells");
    if (absl::Status st = CountColumn(); !st.ok()) return st;
    out.cols.push_back(Column{std::move(labels), std::vector<double>(n_, 0),
                              std::vector<uint8_t>(n_, 0)});
    if (ranked) out.rank.emplace_back(n_, 0);
    return &out.cols.back();
  }

  // Counts a column made (kept or streamed), checking for interruption now and then.
  absl::Status CountColumn() {
    if ((++columns_made_ & 255) == 0) return src_.CheckInterrupted();
    return absl::OkStatus();
  }

  // Makes `c` a new column with `labels`, present nowhere yet, reusing its buffers. A streamed
  // column is folded and reused at once: it holds no cells beyond its own (what the series it
  // reads load counts against the sample limit, as the step-by-step evaluator counts them).
  absl::Status StartColumn(Column& c, const Labels& labels) {
    if (absl::Status st = CountColumn(); !st.ok()) return st;
    c.labels = labels;
    c.v.assign(n_, 0);
    c.present.assign(n_, 0);
    return absl::OkStatus();
  }

  // Drops columns that are never present, and the ranks when they follow the column order.
  static void Compact(Columns& c) {
    size_t kept = 0;
    for (size_t k = 0; k < c.cols.size(); ++k) {
      bool any = std::find(c.cols[k].present.begin(), c.cols[k].present.end(), 1) !=
                 c.cols[k].present.end();
      if (!any) continue;
      if (kept != k) {
        c.cols[kept] = std::move(c.cols[k]);
        if (!c.rank.empty()) c.rank[kept] = std::move(c.rank[k]);
      }
      ++kept;
    }
    c.cols.resize(kept);
    if (c.rank.empty()) return;
    c.rank.resize(kept);
    const size_t steps = kept == 0 ? 0 : c.cols[0].v.size();
    for (size_t i = 0; i < steps; ++i) {
      int32_t last = -1;
      for (size_t k = 0; k < kept; ++k) {
        if (!c.cols[k].present[i]) continue;
        if (c.rank[k][i] < last) return;
        last = c.rank[k][i];
      }
    }
    c.rank.clear();
  }

  // The columns present at step i, in the order of the step's vector.
  static void StepOrder(const Columns& c, size_t i, std::vector<int32_t>& out) {
    out.clear();
    for (size_t k = 0; k < c.cols.size(); ++k) {
      if (c.cols[k].present[i]) out.push_back(static_cast<int32_t>(k));
    }
    if (!c.rank.empty()) {
      std::sort(out.begin(), out.end(),
                [&c, i](int32_t a, int32_t b) { return c.rank[a][i] < c.rank[b][i]; });
    }
  }

  // Fails when two columns with the same labels are present at one step (the step-by-step
  // evaluator's "vector cannot contain metrics with the same labelset").
  static absl::Status CheckUniquePerStep(const Columns& c) {
    LabelsIndex index;
    std::vector<int32_t> id(c.cols.size());
    for (size_t k = 0; k < c.cols.size(); ++k) id[k] = index.Id(c.cols[k].labels);
    if (index.size() == static_cast<int32_t>(c.cols.size())) return absl::OkStatus();
    std::vector<std::vector<int32_t>> members(static_cast<size_t>(index.size()));
    for (size_t k = 0; k < c.cols.size(); ++k) members[id[k]].push_back(static_cast<int32_t>(k));
    for (const std::vector<int32_t>& m : members) {
      if (m.size() < 2) continue;
      const size_t steps = c.cols[m[0]].present.size();
      for (size_t i = 0; i < steps; ++i) {
        int present = 0;
        for (int32_t k : m) present += c.cols[k].present[i];
        if (present > 1) return DuplicateLabelset();
      }
    }
    return absl::OkStatus();
  }

  // Receives the columns of a streamed node one at a time, in the order the node's Columns
  // would hold them (never ranked); it may move from the column.
  using Emit = std::function<absl::Status(Column&)>;

  // The window function and range selector of `e` when it is one that streams.
  static std::optional<std::pair<WindowFunc, const MatrixSelector*>> WindowCall(const Expr& e) {
    const auto* n = e.As<Call>();
    if (n == nullptr || n->args.size() != 1 || n->args[0] == nullptr) return std::nullopt;
    std::optional<WindowFunc> f = WindowFuncOf(n->func);
    if (!f.has_value()) return std::nullopt;
    const auto* ms = Unparen(*n->args[0]).As<MatrixSelector>();
    if (ms == nullptr || ms->selector == nullptr || ms->selector->As<VectorSelector>() == nullptr) {
      return std::nullopt;
    }
    return std::make_pair(*f, ms);
  }

  // True when `e` can give its columns one at a time (Stream): a selector or a window function
  // over a range selector, whose columns each come from one series.
  static bool Streams(const Expr& e) {
    const Expr& u = Unparen(e);
    return u.As<VectorSelector>() != nullptr || WindowCall(u).has_value();
  }

  // Evaluates a node for which Streams() holds, column by column.
  absl::Status Stream(const Expr& expr, const Emit& emit) {
    if (absl::Status st = src_.CheckInterrupted(); !st.ok()) return st;
    const Expr& e = Unparen(expr);
    if (const auto* n = e.As<VectorSelector>()) return StreamSelect(*n, emit);
    auto call = WindowCall(e);
    if (!call.has_value()) return Unsupported("not a streamed node");
    return StreamRangeFunction(call->first, *call->second, emit);
  }

  static absl::Status Collect(Columns& out, Column& c) {
    out.cols.push_back(std::move(c));
    return absl::OkStatus();
  }

  absl::StatusOr<Node> Select(const VectorSelector& vs) {
    Columns out;
    absl::Status st = StreamSelect(vs, [&out](Column& c) { return Collect(out, c); });
    if (!st.ok()) return st;
    return Node(std::move(out));
  }

  absl::StatusOr<Node> RangeFunction(WindowFunc f, const MatrixSelector& ms) {
    Columns out;
    absl::Status st =
        StreamRangeFunction(f, ms, [&out](Column& c) { return Collect(out, c); });
    if (!st.ok()) return st;
    return Node(std::move(out));
  }

  absl::Status StreamSelect(const VectorSelector& vs, const Emit& emit) {
    Column c;
    return src_.ForEachLoaded(vs, [&](const LoadedSeries& s) -> absl::Status {
      bool made = false;
      size_t j = 0;  // samples at or before the reference time
      for (size_t i = 0; i < n_; ++i) {
        int64_t ref = src_.RefTime(vs, times_[i]);
        while (j < s.samples.size() && s.samples[j].t <= ref) ++j;
        if (j == 0) continue;
        const Sample& smp = s.samples[j - 1];
        if (smp.t < ref - lookback_ || IsStaleNaN(smp.v)) continue;
        if (!made) {
          if (absl::Status st = StartColumn(c, s.labels); !st.ok()) return st;
          made = true;
        }
        c.present[i] = 1;
        c.v[i] = smp.v;
        ++held_[i];
        ++queried_[i];
      }
      return made ? emit(c) : absl::OkStatus();
    });
  }

  // Fails when two columns with the same labels would be present at one step, as
  // CheckUniquePerStep, seeing the columns one at a time. It keeps a hash of the labels and the
  // steps present per label set: two different label sets with one hash count as the same,
  // which only sends the query step by step. One entry per streamed series (500 k for a
  // dashboard panel at 1 M series): the step bits of all sit in blocks of 32 KiB, not in a
  // vector each.
  class UniquePerStep {
   public:
    explicit UniquePerStep(size_t steps)
        : words_(std::max<size_t>(1, (steps + 63) / 64)),
          per_block_(std::max<size_t>(1, kBlockWords / words_)) {}
    absl::Status Add(const Column& c) {
      auto [it, inserted] =
          seen_.try_emplace(c.labels.Hash(), static_cast<uint32_t>(seen_.size()));
      uint64_t* bits = BitsOf(it->second);
      for (size_t i = 0; i < c.present.size(); ++i) {
        if (!c.present[i]) continue;
        const uint64_t bit = uint64_t{1} << (i & 63);
        if (bits[i >> 6] & bit) return DuplicateLabelset();
        bits[i >> 6] |= bit;
      }
      return absl::OkStatus();
    }

   private:
    static constexpr size_t kBlockWords = 4096;
    // Entries are numbered in order of arrival, so a new one is in the last block or the next.
    uint64_t* BitsOf(uint32_t entry) {
      const size_t block = entry / per_block_;
      if (block == blocks_.size()) {
        blocks_.push_back(std::make_unique<uint64_t[]>(per_block_ * words_));  // zeroed
      }
      return blocks_[block].get() + (entry % per_block_) * words_;
    }

    size_t words_;
    size_t per_block_;
    absl::flat_hash_map<uint64_t, uint32_t> seen_;  // labels hash -> entry
    std::vector<std::unique_ptr<uint64_t[]>> blocks_;
  };

  absl::Status StreamRangeFunction(WindowFunc f, const MatrixSelector& ms, const Emit& emit) {
    const auto& vs = *ms.selector->As<VectorSelector>();
    const bool keep_name = f == WindowFunc::kLast;
    UniquePerStep unique(n_);
    Column c;
    return src_.ForEachLoaded(vs, [&](const LoadedSeries& s) -> absl::Status {
      const std::vector<Sample>& smp = s.samples;
      bool made = false;
      size_t a = 0, b = 0;  // the window is smp[a, b)
      for (size_t i = 0; i < n_; ++i) {
        int64_t ref = src_.RefTime(vs, times_[i]);
        int64_t lo = ref - ms.range_ms;
        while (b < smp.size() && smp[b].t <= ref) ++b;
        while (a < smp.size() && smp[a].t < lo) ++a;
        if (a >= b) continue;
        const int64_t points = static_cast<int64_t>(b - a);
        queried_[i] += points;
        held_[i] += points;
        std::optional<double> v = ApplyWindow(f, std::span<const Sample>(&smp[a], b - a), lo, ref);
        if (!v.has_value()) continue;
        if (!made) {
          absl::Status st = keep_name ? StartColumn(c, s.labels)
                                      : StartColumn(c, s.labels.Without(kMetricNameLabel));
          if (!st.ok()) return st;
          made = true;
        }
        c.present[i] = 1;
        c.v[i] = *v;
        ++held_[i];
      }
      if (!made) return absl::OkStatus();
      if (absl::Status st = unique.Add(c); !st.ok()) return st;
      return emit(c);
    });
  }

  absl::StatusOr<Scalars> EvalScalars(const Expr& e) {
    absl::StatusOr<Node> node = Eval(e);
    if (!node.ok()) return node.status();
    if (auto* s = std::get_if<Scalars>(&*node)) return std::move(*s);
    return Unsupported("expected a scalar");
  }

  absl::StatusOr<Columns> EvalColumns(const Expr& e) {
    absl::StatusOr<Node> node = Eval(e);
    if (!node.ok()) return node.status();
    if (auto* c = std::get_if<Columns>(&*node)) return std::move(*c);
    return Unsupported("expected an instant vector");
  }

  absl::StatusOr<Node> HistogramQuantile(const Call& call) {
    absl::StatusOr<Scalars> q = EvalScalars(*call.args[0]);
    if (!q.ok()) return q.status();
    absl::StatusOr<Columns> in = EvalColumns(*call.args[1]);
    if (!in.ok()) return in.status();
    // Per input column: its bucket bound (nullopt: skipped) and its histogram.
    static const std::vector<std::string> kExcluded = {std::string(kMetricNameLabel), "le"};
    std::vector<std::optional<double>> upper(in->cols.size());
    std::vector<int32_t> group(in->cols.size(), -1);
    LabelsIndex index;
    Columns out;
    for (size_t k = 0; k < in->cols.size(); ++k) {
      const Labels& l = in->cols[k].labels;
      upper[k] = ParseGoFloat(std::string(l.Get("le")));
      if (!upper[k].has_value()) continue;
      group[k] = index.Id(l.Without("le"));
      if (group[k] == static_cast<int32_t>(out.cols.size())) {
        absl::StatusOr<Column*> made = NewColumn(out, l.Filter(kExcluded, false), true);
        if (!made.ok()) return made.status();
      }
    }
    std::vector<std::vector<Bucket>> buckets(out.cols.size());
    std::vector<size_t> stamp(out.cols.size(), n_);
    std::vector<int32_t> order, seen;
    for (size_t i = 0; i < n_; ++i) {
      StepOrder(*in, i, order);
      seen.clear();
      for (int32_t k : order) {
        int32_t g = group[k];
        if (g < 0) continue;
        if (stamp[g] != i) {
          stamp[g] = i;
          buckets[g].clear();
          seen.push_back(g);
        }
        buckets[g].push_back(Bucket{*upper[k], in->cols[k].v[i]});
      }
      for (size_t pos = 0; pos < seen.size(); ++pos) {
        int32_t g = seen[pos];
        out.cols[g].present[i] = 1;
        out.cols[g].v[i] = BucketQuantile((*q)[i], buckets[g]);
        out.rank[g][i] = static_cast<int32_t>(pos);
      }
      held_[i] += static_cast<int64_t>(seen.size());
    }
    Compact(out);
    if (absl::Status st = CheckUniquePerStep(out); !st.ok()) return st;
    return Node(std::move(out));
  }

  // One group's fold at one step, on its fields (Aggregate keeps them together, AggregateStream
  // in separate arrays), with the arithmetic of aggregation.cc. `count` and `mean` are only
  // read by avg, count, stddev and stdvar.
  static void FoldStart(AggregateOp op, double v, double& value, double& mean, int64_t& count) {
    value = v;
    mean = v;
    count = 1;
    switch (op) {
      case AggregateOp::kStddev:
      case AggregateOp::kStdvar: value = 0; break;
      case AggregateOp::kGroup: value = 1; break;
      default: break;
    }
  }

  static void FoldAdd(AggregateOp op, double v, double& value, double& mean, int64_t& count) {
    switch (op) {
      case AggregateOp::kSum: value += v; break;
      case AggregateOp::kAvg: {
        ++count;
        if (std::isinf(mean)) {
          if (std::isinf(v) && (mean > 0) == (v > 0)) break;
          if (!std::isinf(v) && !std::isnan(v)) break;
        }
        double cnt = static_cast<double>(count);
        mean += v / cnt - mean / cnt;
        break;
      }
      case AggregateOp::kMax:
        if (value < v || std::isnan(value)) value = v;
        break;
      case AggregateOp::kMin:
        if (value > v || std::isnan(value)) value = v;
        break;
      case AggregateOp::kCount:
      case AggregateOp::kCountValues: ++count; break;
      case AggregateOp::kStddev:
      case AggregateOp::kStdvar: {
        ++count;
        double delta = v - mean;
        mean += delta / static_cast<double>(count);
        value += delta * (v - mean);
        break;
      }
      default: break;  // group; topk, bottomk and quantile are folded by Aggregate itself
    }
  }

  static double FoldResult(AggregateOp op, double value, double mean, int64_t count) {
    switch (op) {
      case AggregateOp::kAvg: return mean;
      case AggregateOp::kCount: return static_cast<double>(count);
      case AggregateOp::kStdvar: return value / static_cast<double>(count);
      case AggregateOp::kStddev: return std::sqrt(value / static_cast<double>(count));
      default: return value;
    }
  }

  // The group key of an input column's labels.
  static Labels GroupKey(const AggregateExpr& agg, const std::vector<std::string>& drop,
                         const Labels& labels) {
    return agg.without ? labels.Filter(drop, false) : labels.Filter(agg.grouping, true);
  }

  // sum, avg, min, max, count, group, stddev and stdvar over a node that streams: each input
  // column is folded into its group's output column when it comes and then dropped, so the
  // input is never held whole. Per group and step the values are folded in column order, which
  // is the order (so the arithmetic) of Aggregate's per-step loop over unranked columns; the
  // groups of a step are then ranked by their first column there, as Aggregate ranks them.
  absl::StatusOr<Node> AggregateStream(const AggregateExpr& agg) {
    const AggregateOp op = agg.op;
    const bool with_mean =
        op == AggregateOp::kAvg || op == AggregateOp::kStddev || op == AggregateOp::kStdvar;
    const bool with_count = with_mean || op == AggregateOp::kCount;
    std::vector<std::string> drop;
    if (agg.without) {
      drop = agg.grouping;
      drop.emplace_back(kMetricNameLabel);
    }
    LabelsIndex index;
    // One column per group, in order of first appearance. The first input column of group g at
    // step i is creator[g], the column that made the group, unless firsts[g] is not empty: a
    // group's columns usually all cover the same steps, so a vector per group and step is only
    // made for the groups where a later column came first at some step.
    Columns out;
    std::vector<int32_t> creator;
    std::vector<std::vector<int32_t>> firsts;
    std::vector<double> mean;     // group * n_ + step
    std::vector<int64_t> count;   // group * n_ + step
    double unused_mean = 0;
    int64_t unused_count = 0;
    int32_t col = 0;
    absl::Status st = Stream(*agg.expr, [&](Column& c) -> absl::Status {
      Labels key = GroupKey(agg, drop, c.labels);
      const int32_t g = index.Id(key);
      if (g == static_cast<int32_t>(out.cols.size())) {
        absl::StatusOr<Column*> made = NewColumn(out, std::move(key), false);
        if (!made.ok()) return made.status();
        creator.push_back(col);
        firsts.emplace_back();
        if (with_mean) mean.resize(mean.size() + n_);
        if (with_count) count.resize(count.size() + n_);
      }
      Column& o = out.cols[g];
      const size_t base = static_cast<size_t>(g) * n_;
      for (size_t i = 0; i < n_; ++i) {
        if (!c.present[i]) continue;
        double& m = with_mean ? mean[base + i] : unused_mean;
        int64_t& n = with_count ? count[base + i] : unused_count;
        if (!o.present[i]) {
          o.present[i] = 1;
          if (col != creator[g]) {
            if (firsts[g].empty()) firsts[g].assign(n_, creator[g]);
            firsts[g][i] = col;
          }
          FoldStart(op, c.v[i], o.v[i], m, n);
        } else {
          FoldAdd(op, c.v[i], o.v[i], m, n);
        }
      }
      ++col;
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    auto first = [&creator, &firsts](size_t g, size_t i) {
      return firsts[g].empty() ? creator[g] : firsts[g][i];
    };
    // The groups of step i ranked by their first column there. When that is the column order
    // at every step (groups are numbered by their first column overall, so usually), the
    // output needs no ranks.
    std::vector<int32_t> seen;
    auto present_in_rank_order = [&](size_t i) {
      seen.clear();
      bool in_order = true;
      for (size_t g = 0; g < out.cols.size(); ++g) {
        if (!out.cols[g].present[i]) continue;
        if (!seen.empty() && first(seen.back(), i) > first(g, i)) in_order = false;
        seen.push_back(static_cast<int32_t>(g));
      }
      if (!in_order) {
        std::sort(seen.begin(), seen.end(),
                  [&first, i](int32_t a, int32_t b) { return first(a, i) < first(b, i); });
      }
      return in_order;
    };
    bool ranked = false;
    for (size_t i = 0; i < n_ && !ranked; ++i) ranked = !present_in_rank_order(i);
    if (ranked) out.rank.assign(out.cols.size(), std::vector<int32_t>(n_, 0));
    for (size_t i = 0; i < n_; ++i) {
      present_in_rank_order(i);
      int32_t pos = 0;
      for (int32_t g : seen) {
        const size_t at = static_cast<size_t>(g) * n_ + i;
        double& v = out.cols[g].v[i];
        v = FoldResult(op, v, with_mean ? mean[at] : 0, with_count ? count[at] : 0);
        if (ranked) out.rank[g][i] = pos;
        ++pos;
      }
      held_[i] += pos;
    }
    Compact(out);
    return Node(std::move(out));
  }

  absl::StatusOr<Node> Aggregate(const AggregateExpr& agg) {
    const AggregateOp op = agg.op;
    Scalars param;
    if (agg.param != nullptr) {
      absl::StatusOr<Scalars> p = EvalScalars(*agg.param);
      if (!p.ok()) return p.status();
      param = *std::move(p);
    } else {
      param.assign(n_, 0);
    }
    const bool selection = op == AggregateOp::kTopk || op == AggregateOp::kBottomk;
    if (!selection && op != AggregateOp::kQuantile && Streams(*agg.expr)) {
      return AggregateStream(agg);
    }
    absl::StatusOr<Columns> in = EvalColumns(*agg.expr);
    if (!in.ok()) return in.status();

    // The group of every input column, computed once.
    std::vector<std::string> drop;
    if (agg.without) {
      drop = agg.grouping;
      drop.emplace_back(kMetricNameLabel);
    }
    LabelsIndex index;
    std::vector<int32_t> group(in->cols.size());
    std::vector<Labels> group_labels;
    for (size_t k = 0; k < in->cols.size(); ++k) {
      Labels key = GroupKey(agg, drop, in->cols[k].labels);
      group[k] = index.Id(key);
      if (group[k] == static_cast<int32_t>(group_labels.size())) {
        group_labels.push_back(std::move(key));
      }
    }
    const size_t groups = group_labels.size();

    Columns out;
    // topk/bottomk give input columns (labels unchanged); the others one column per group.
    std::vector<int32_t> out_of_input(selection ? in->cols.size() : 0, -1);
    if (!selection) {
      for (Labels& l : group_labels) {
        absl::StatusOr<Column*> made = NewColumn(out, std::move(l), true);
        if (!made.ok()) return made.status();
      }
    }

    struct Acc {
      double value = 0;
      double mean = 0;
      int64_t count = 0;
    };
    struct Elem {
      double v;
      int32_t col;
    };
    std::vector<Acc> acc(groups);
    std::vector<size_t> stamp(groups, n_);
    std::vector<std::vector<double>> values(op == AggregateOp::kQuantile ? groups : 0);
    std::vector<std::optional<SelectionHeap<Elem>>> heaps(selection ? groups : 0);
    std::vector<Elem> elems;
    std::vector<int32_t> order, seen;
    for (size_t i = 0; i < n_; ++i) {
      int64_t k = 0;
      if (selection) {
        if (!ConvertibleToInt64(param[i])) return Unsupported("topk parameter overflows");
        k = static_cast<int64_t>(param[i]);
        if (k < 1) continue;
      }
      StepOrder(*in, i, order);
      seen.clear();
      elems.clear();
      elems.reserve(order.size());  // the heaps point into it: no reallocation below
      for (int32_t c : order) {
        const double v = in->cols[c].v[i];
        const int32_t g = group[c];
        Acc& a = acc[g];
        if (stamp[g] != i) {
          stamp[g] = i;
          seen.push_back(g);
          FoldStart(op, v, a.value, a.mean, a.count);
          switch (op) {
            case AggregateOp::kQuantile:
              values[g].clear();
              values[g].push_back(v);
              break;
            case AggregateOp::kTopk:
            case AggregateOp::kBottomk:
              elems.push_back(Elem{v, c});
              heaps[g].emplace(op == AggregateOp::kBottomk);
              heaps[g]->Push(&elems.back());
              break;
            default: break;
          }
          continue;
        }
        switch (op) {
          case AggregateOp::kTopk:
          case AggregateOp::kBottomk:
            elems.push_back(Elem{v, c});
            heaps[g]->Offer(&elems.back(), k);
            break;
          case AggregateOp::kQuantile: values[g].push_back(v); break;
          default: FoldAdd(op, v, a.value, a.mean, a.count); break;
        }
      }
      int32_t pos = 0;
      for (int32_t g : seen) {
        const Acc& a = acc[g];
        double v = FoldResult(op, a.value, a.mean, a.count);
        switch (op) {
          case AggregateOp::kQuantile: {
            std::vector<double>& vals = values[g];
            v = static_cast<double (*)(double, std::vector<double>&)>(&Quantile)(param[i], vals);
            break;
          }
          case AggregateOp::kTopk:
          case AggregateOp::kBottomk:
            for (const Elem* e : heaps[g]->SortedOutput()) {
              int32_t& oc = out_of_input[e->col];
              if (oc < 0) {
                absl::StatusOr<Column*> made = NewColumn(out, in->cols[e->col].labels, true);
                if (!made.ok()) return made.status();
                oc = static_cast<int32_t>(out.cols.size() - 1);
              }
              out.cols[oc].present[i] = 1;
              out.cols[oc].v[i] = e->v;
              out.rank[oc][i] = pos++;
            }
            heaps[g].reset();
            continue;
          default: break;
        }
        out.cols[g].present[i] = 1;
        out.cols[g].v[i] = v;
        out.rank[g][i] = pos++;
      }
      held_[i] += pos;
    }
    Compact(out);
    return Node(std::move(out));
  }

  absl::StatusOr<Node> Unary(const UnaryExpr& u) {
    absl::StatusOr<Node> node = Eval(*u.expr);
    if (!node.ok() || !u.negate) return node;
    if (auto* s = std::get_if<Scalars>(&*node)) {
      for (double& v : *s) v = -v;
      return node;
    }
    Columns& c = std::get<Columns>(*node);
    for (Column& col : c.cols) {
      col.labels = col.labels.Without(kMetricNameLabel);
      for (size_t i = 0; i < n_; ++i) {
        if (col.present[i]) col.v[i] = -col.v[i];
      }
    }
    if (absl::Status st = CheckUniquePerStep(c); !st.ok()) return st;
    return node;
  }

  absl::StatusOr<Node> Binary(const BinaryExpr& b) {
    absl::StatusOr<Node> lhs = Eval(*b.lhs);
    if (!lhs.ok()) return lhs.status();
    absl::StatusOr<Node> rhs = Eval(*b.rhs);
    if (!rhs.ok()) return rhs.status();
    auto* ls = std::get_if<Scalars>(&*lhs);
    auto* rs = std::get_if<Scalars>(&*rhs);
    if (ls != nullptr && rs != nullptr) {
      if (IsComparison(b.op) && !b.return_bool) return Unsupported("scalar comparison");
      Scalars out(n_);
      for (size_t i = 0; i < n_; ++i) out[i] = ScalarBinary(b.op, (*ls)[i], (*rs)[i]);
      return Node(std::move(out));
    }
    Columns out;
    if (ls != nullptr || rs != nullptr) {
      const bool scalar_left = ls != nullptr;
      Columns& vec = std::get<Columns>(scalar_left ? *rhs : *lhs);
      const Scalars& scalar = scalar_left ? *ls : *rs;
      const bool drop_name = DropsMetricName(b.op) || b.return_bool;
      for (Column& c : vec.cols) {
        bool any = false;
        for (size_t i = 0; i < n_; ++i) {
          if (!c.present[i]) continue;
          double l = scalar_left ? scalar[i] : c.v[i];
          double r = scalar_left ? c.v[i] : scalar[i];
          auto [v, keep] = ApplyBinaryOp(b.op, l, r);
          if (IsComparison(b.op) && scalar_left) v = r;
          if (b.return_bool) {
            v = keep ? 1 : 0;
            keep = true;
          }
          if (!keep) {
            c.present[i] = 0;
            continue;
          }
          c.v[i] = v;
          any = true;
          ++held_[i];
        }
        if (any && drop_name) c.labels = c.labels.Without(kMetricNameLabel);
      }
      out = std::move(vec);
      Compact(out);
    } else {
      absl::StatusOr<Columns> v = VectorVector(b, std::get<Columns>(*lhs), std::get<Columns>(*rhs));
      if (!v.ok()) return v.status();
      out = *std::move(v);
    }
    if (absl::Status st = CheckUniquePerStep(out); !st.ok()) return st;
    return Node(std::move(out));
  }

  absl::StatusOr<Columns> VectorVector(const BinaryExpr& b, const Columns& lhs,
                                       const Columns& rhs) {
    VectorMatching matching;
    if (b.matching.has_value()) matching = *b.matching;
    if (matching.card == VectorMatching::Card::kManyToMany) return Unsupported("many-to-many");
    const bool swapped = matching.card == VectorMatching::Card::kOneToMany;
    const Columns& many = swapped ? rhs : lhs;
    const Columns& one = swapped ? lhs : rhs;
    // Matching signatures, once per column.
    std::vector<std::string> names = matching.matching_labels;
    if (!matching.on) names.emplace_back(kMetricNameLabel);
    LabelsIndex sigs;
    std::vector<int32_t> many_sig(many.cols.size()), one_sig(one.cols.size());
    for (size_t k = 0; k < many.cols.size(); ++k) {
      many_sig[k] = sigs.Id(many.cols[k].labels.Filter(names, matching.on));
    }
    for (size_t k = 0; k < one.cols.size(); ++k) {
      one_sig[k] = sigs.Id(one.cols[k].labels.Filter(names, matching.on));
    }
    const size_t nsig = static_cast<size_t>(sigs.size());
    std::vector<size_t> one_stamp(nsig, n_), matched_stamp(nsig, n_);
    std::vector<int32_t> one_at(nsig, -1);
    // The output column of each (many column, one column) pair that produced a result.
    absl::flat_hash_map<std::pair<int32_t, int32_t>, int32_t> pairs;
    Columns out;
    std::vector<int32_t> order;
    for (size_t i = 0; i < n_; ++i) {
      bool many_any = false;
      for (const Column& c : many.cols) many_any = many_any || c.present[i];
      if (!many_any) continue;
      bool one_any = false;
      for (size_t k = 0; k < one.cols.size(); ++k) {
        if (!one.cols[k].present[i]) continue;
        one_any = true;
        int32_t s = one_sig[k];
        if (one_stamp[s] == i) return Unsupported("duplicate series on the one side");
        one_stamp[s] = i;
        one_at[s] = static_cast<int32_t>(k);
      }
      if (!one_any) continue;
      StepOrder(many, i, order);
      int32_t pos = 0;
      for (int32_t l : order) {
        int32_t s = many_sig[l];
        if (one_stamp[s] != i) continue;
        int32_t r = one_at[s];
        double vl = swapped ? one.cols[r].v[i] : many.cols[l].v[i];
        double vr = swapped ? many.cols[l].v[i] : one.cols[r].v[i];
        auto [v, keep] = ApplyBinaryOp(b.op, vl, vr);
        if (b.return_bool) {
          v = keep ? 1 : 0;
        } else if (!keep) {
          continue;
        }
        if (matching.card == VectorMatching::Card::kOneToOne) {
          if (matched_stamp[s] == i) return Unsupported("multiple matches");
          matched_stamp[s] = i;
        }
        auto [it, inserted] = pairs.try_emplace(std::make_pair(l, r), 0);
        if (inserted) {
          Labels labels = ResultLabels(many.cols[l].labels, one.cols[r].labels, b.op, matching);
          if (b.return_bool) labels = labels.Without(kMetricNameLabel);
          absl::StatusOr<Column*> made = NewColumn(out, std::move(labels), true);
          if (!made.ok()) return made.status();
          it->second = static_cast<int32_t>(out.cols.size() - 1);
        }
        Column& c = out.cols[it->second];
        c.present[i] = 1;
        c.v[i] = v;
        out.rank[it->second][i] = pos++;
      }
      held_[i] += pos;
    }
    Compact(out);
    return out;
  }

  // Any other node: evaluated step by step, its vectors turned into columns by label set.
  absl::StatusOr<Node> Fallback(const Expr& e) {
    Scalars scalars;
    Columns cols;
    bool scalar = false, vector = false;
    absl::flat_hash_map<Labels, std::vector<int32_t>, LabelsHash> index;
    for (size_t i = 0; i < n_; ++i) {
      absl::StatusOr<Value> v = src_.EvalStep(e, times_[i], &held_[i], &queried_[i]);
      if (!v.ok()) return v.status();
      if (const auto* s = std::get_if<Scalar>(&*v)) {
        if (scalars.empty()) scalars.assign(n_, 0);
        scalars[i] = s->v;
        scalar = true;
      } else if (const auto* vec = std::get_if<Vector>(&*v)) {
        vector = true;
        int32_t pos = 0;
        for (const VectorElement& el : *vec) {
          std::vector<int32_t>& same = index[el.labels];
          int32_t col = -1;
          for (int32_t c : same) {
            if (!cols.cols[c].present[i]) {
              col = c;
              break;
            }
          }
          if (col < 0) {
            absl::StatusOr<Column*> made = NewColumn(cols, el.labels, true);
            if (!made.ok()) return made.status();
            col = static_cast<int32_t>(cols.cols.size() - 1);
            same.push_back(col);
          }
          cols.cols[col].present[i] = 1;
          cols.cols[col].v[i] = el.v;
          cols.rank[col][i] = pos++;
        }
      } else {
        return Unsupported("fallback gave neither scalar nor vector");
      }
    }
    if (scalar && vector) return Unsupported("fallback gave scalars and vectors");
    if (scalar) return Node(std::move(scalars));
    Compact(cols);
    return Node(std::move(cols));
  }

  const std::vector<int64_t> times_;
  const size_t n_;
  const int64_t lookback_;
  const int64_t max_cells_;
  ColumnSource& src_;
  std::vector<int64_t> held_;
  std::vector<int64_t> queried_;
  int64_t cells_ = 0;
  uint64_t columns_made_ = 0;
};

bool HasSubquery(const Expr& e) {
  if (e.As<SubqueryExpr>() != nullptr) return true;
  if (const auto* n = e.As<MatrixSelector>()) return n->selector && HasSubquery(*n->selector);
  if (const auto* n = e.As<Call>()) {
    for (const ExprPtr& a : n->args) {
      if (a && HasSubquery(*a)) return true;
    }
    return false;
  }
  if (const auto* n = e.As<AggregateExpr>()) {
    return (n->param && HasSubquery(*n->param)) || (n->expr && HasSubquery(*n->expr));
  }
  if (const auto* n = e.As<BinaryExpr>()) {
    return (n->lhs && HasSubquery(*n->lhs)) || (n->rhs && HasSubquery(*n->rhs));
  }
  if (const auto* n = e.As<UnaryExpr>()) return n->expr && HasSubquery(*n->expr);
  if (const auto* n = e.As<ParenExpr>()) return n->expr && HasSubquery(*n->expr);
  return false;
}

}  // namespace

bool ColumnarApplicable(const Expr& expr) { return !HasSubquery(expr); }

absl::StatusOr<ColumnarResult> EvaluateColumnar(const Expr& expr, int64_t start_ms,
                                                int64_t end_ms, int64_t step_ms,
                                                int64_t lookback_delta_ms, int64_t max_samples,
                                                ColumnSource& source) {
  std::vector<int64_t> times;
  for (int64_t t = start_ms; t <= end_ms; t += step_ms) {
    times.push_back(t);
    if (end_ms - t < step_ms) break;  // no overflow past end_ms
  }
  ColumnarEvaluator ev(std::move(times), lookback_delta_ms, max_samples, source);
  absl::StatusOr<Node> root = ev.Eval(expr);
  if (!root.ok()) return root.status();
  const std::vector<int64_t>& t = ev.times();
  const size_t n = t.size();
  ColumnarResult result;
  std::vector<int64_t> kept(n, 0);
  if (const auto* s = std::get_if<Scalars>(&*root)) {
    MatrixSeries series{Labels(), {}};
    series.samples.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      series.samples.push_back(Sample{t[i], (*s)[i]});
      kept[i] = 1;
    }
    result.matrix.push_back(std::move(series));
  } else {
    const Columns& c = std::get<Columns>(*root);
    // Columns with equal labels make one series (their steps are disjoint, or they follow the
    // step's order, as the step-by-step evaluator appends them).
    std::vector<int32_t> sorted(c.cols.size());
    for (size_t k = 0; k < sorted.size(); ++k) sorted[k] = static_cast<int32_t>(k);
    std::stable_sort(sorted.begin(), sorted.end(), [&c](int32_t a, int32_t b) {
      return c.cols[a].labels < c.cols[b].labels;
    });
    std::vector<int32_t> members;
    for (size_t k = 0; k < sorted.size();) {
      size_t e = k + 1;
      while (e < sorted.size() && c.cols[sorted[e]].labels == c.cols[sorted[k]].labels) ++e;
      members.assign(sorted.begin() + static_cast<std::ptrdiff_t>(k),
                     sorted.begin() + static_cast<std::ptrdiff_t>(e));
      MatrixSeries series{c.cols[sorted[k]].labels, {}};
      for (size_t i = 0; i < n; ++i) {
        if (members.size() > 1 && !c.rank.empty()) {
          std::sort(members.begin(), members.end(),
                    [&c, i](int32_t a, int32_t b) { return c.rank[a][i] < c.rank[b][i]; });
        }
        for (int32_t m : members) {
          if (!c.cols[m].present[i]) continue;
          series.samples.push_back(Sample{t[i], c.cols[m].v[i]});
          ++kept[i];
        }
      }
      if (!series.samples.empty()) result.matrix.push_back(std::move(series));
      k = e;
    }
  }
  // What the step-by-step evaluator holds at the end of step i: that step's samples and the
  // result so far.
  int64_t results = 0;
  for (size_t i = 0; i < n; ++i) {
    results += kept[i];
    int64_t current = ev.held()[i] + results;
    result.peak_samples = std::max(result.peak_samples, current);
    if (current > max_samples) {
      result.over_max_samples = true;
      return result;
    }
    result.queried_per_step.emplace_back(t[i], ev.queried()[i]);
    result.total_queried += ev.queried()[i];
  }
  return result;
}

}  // namespace tidemark::promql::internal
