#include "query/evaluator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "query/rate_functions.h"

namespace tidemark::promql::internal {
namespace {

absl::Status NotImplemented(std::string_view name) {
  return absl::UnimplementedError(absl::StrCat("not implemented yet: ", std::string(name)));
}

bool IsImplementedFunction(std::string_view name) {
  return name == "rate" || name == "irate" || name == "increase" || name == "delta";
}

bool IsImplementedAggregation(AggregateOp op) {
  return op == AggregateOp::kSum || op == AggregateOp::kAvg || op == AggregateOp::kMin ||
         op == AggregateOp::kMax || op == AggregateOp::kCount;
}

// Walks every VectorSelector in `expr`, telling whether it sits under a MatrixSelector.
template <typename F>
void ForEachSelector(const Expr& expr, F&& f, const MatrixSelector* matrix = nullptr) {
  if (const auto* n = expr.As<VectorSelector>()) {
    f(*n, matrix);
  } else if (const auto* n = expr.As<MatrixSelector>()) {
    if (n->selector) ForEachSelector(*n->selector, f, n);
  } else if (const auto* n = expr.As<SubqueryExpr>()) {
    if (n->expr) ForEachSelector(*n->expr, f);
  } else if (const auto* n = expr.As<Call>()) {
    for (const ExprPtr& a : n->args) {
      if (a) ForEachSelector(*a, f);
    }
  } else if (const auto* n = expr.As<AggregateExpr>()) {
    if (n->expr) ForEachSelector(*n->expr, f);
    if (n->param) ForEachSelector(*n->param, f);
  } else if (const auto* n = expr.As<BinaryExpr>()) {
    if (n->lhs) ForEachSelector(*n->lhs, f);
    if (n->rhs) ForEachSelector(*n->rhs, f);
  } else if (const auto* n = expr.As<UnaryExpr>()) {
    if (n->expr) ForEachSelector(*n->expr, f);
  } else if (const auto* n = expr.As<ParenExpr>()) {
    if (n->expr) ForEachSelector(*n->expr, f);
  }
}

// Sorts by labels and fails when two elements share a label set.
absl::Status SortAndCheckUnique(Vector& v) {
  std::sort(v.begin(), v.end(),
            [](const VectorElement& a, const VectorElement& b) { return a.labels < b.labels; });
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i].labels == v[i - 1].labels) {
      return absl::FailedPreconditionError("vector cannot contain metrics with the same labelset");
    }
  }
  return absl::OkStatus();
}

// Prometheus's vectorElemBinop: the value and whether a comparison keeps the element.
std::pair<double, bool> ApplyBinaryOp(BinaryOp op, double l, double r) {
  switch (op) {
    case BinaryOp::kAdd: return {l + r, true};
    case BinaryOp::kSub: return {l - r, true};
    case BinaryOp::kMul: return {l * r, true};
    case BinaryOp::kDiv: return {l / r, true};
    case BinaryOp::kMod: return {std::fmod(l, r), true};
    case BinaryOp::kPow: return {std::pow(l, r), true};
    case BinaryOp::kEql: return {l, l == r};
    case BinaryOp::kNeq: return {l, l != r};
    case BinaryOp::kGtr: return {l, l > r};
    case BinaryOp::kLss: return {l, l < r};
    case BinaryOp::kGte: return {l, l >= r};
    case BinaryOp::kLte: return {l, l <= r};
    default: break;
  }
  return {std::numeric_limits<double>::quiet_NaN(), false};  // rejected by CheckImplemented
}

bool DropsMetricName(BinaryOp op) {
  return op == BinaryOp::kAdd || op == BinaryOp::kSub || op == BinaryOp::kMul ||
         op == BinaryOp::kDiv || op == BinaryOp::kMod || op == BinaryOp::kPow;
}

// The series of one selector, loaded once for the whole query.
struct LoadedSeries {
  Labels labels;
  std::vector<Sample> samples;  // increasing time, may hold stale markers
};

struct EvalRange {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  int64_t step_ms = 0;  // 0 for an instant query
};

class Evaluator {
 public:
  Evaluator(const EngineOptions& options, const QueryParams& params, EvalRange range,
            QueryStats* stats)
      : options_(options), params_(params), range_(range), stats_(stats) {
    absl::Duration timeout =
        params.timeout > absl::ZeroDuration() ? params.timeout : options.default_timeout;
    deadline_ = absl::Now() + timeout;
  }

  // Opens one querier over the range every selector of `root` needs and loads their series.
  absl::Status Load(Queryable& data, const Expr& root) {
    struct Need {
      const VectorSelector* selector;
      int64_t mint, maxt;
    };
    std::vector<Need> needs;
    ForEachSelector(root, [&](const VectorSelector& vs, const MatrixSelector* ms) {
      int64_t lo_ref = range_.start_ms - vs.offset_ms;
      int64_t hi_ref = range_.end_ms - vs.offset_ms;
      if (vs.at.kind != AtModifier::Kind::kNone) lo_ref = hi_ref = RefTime(vs, range_.start_ms);
      int64_t before = ms != nullptr ? ms->range_ms : options_.lookback_delta_ms;
      needs.push_back({&vs, lo_ref - before, hi_ref});
    });
    if (needs.empty()) return absl::OkStatus();
    int64_t mint = needs[0].mint, maxt = needs[0].maxt;
    for (const Need& n : needs) {
      mint = std::min(mint, n.mint);
      maxt = std::max(maxt, n.maxt);
    }
    absl::StatusOr<std::unique_ptr<Querier>> querier = data.NewQuerier(mint, maxt);
    if (!querier.ok()) return querier.status();
    int64_t loaded = 0;
    for (const Need& n : needs) {
      bool has_non_empty = std::any_of(n.selector->matchers.begin(), n.selector->matchers.end(),
                                       [](const LabelMatcher& m) { return !m.MatchesEmpty(); });
      if (!has_non_empty) {
        return absl::InvalidArgumentError(
            "vector selector must contain at least one non-empty matcher");
      }
      absl::StatusOr<std::vector<Series>> series =
          (*querier)->Select(n.selector->matchers, SelectHints{n.mint, n.maxt});
      if (!series.ok()) return series.status();
      std::vector<LoadedSeries>& out = data_[n.selector];
      for (Series& s : *series) {
        if (absl::Status st = CheckInterrupted(); !st.ok()) return st;
        LoadedSeries loaded_series{std::move(s.labels), {}};
        SampleIterator& it = *s.samples;
        for (bool ok = it.Seek(n.mint); ok && it.At().t <= n.maxt; ok = it.Next()) {
          loaded_series.samples.push_back(it.At());
        }
        if (absl::Status st = it.status(); !st.ok()) return st;
        loaded += static_cast<int64_t>(loaded_series.samples.size());
        if (loaded > options_.max_samples) return TooManySamples();
        if (!loaded_series.samples.empty()) out.push_back(std::move(loaded_series));
      }
    }
    return absl::OkStatus();
  }

  // Starts a new evaluation step: the samples of the previous step are released.
  absl::Status BeginStep() {
    step_samples_ = 0;
    return CheckInterrupted();
  }

  // Counts samples kept by the result of a range query.
  absl::Status KeepInResult(int64_t n) {
    result_samples_ += n;
    return Account(0);
  }

  absl::StatusOr<Value> Eval(const Expr& expr, int64_t t) {
    if (const auto* n = expr.As<NumberLiteral>()) return Value(Scalar{t, n->value});
    if (const auto* n = expr.As<StringLiteral>()) return Value(String{t, n->value});
    if (const auto* n = expr.As<ParenExpr>()) return Eval(*n->expr, t);
    if (const auto* n = expr.As<VectorSelector>()) return EvalVectorSelector(*n, t);
    if (const auto* n = expr.As<MatrixSelector>()) return EvalMatrixSelector(*n, t);
    if (const auto* n = expr.As<UnaryExpr>()) return EvalUnary(*n, t);
    if (const auto* n = expr.As<Call>()) return EvalCall(*n, t);
    if (const auto* n = expr.As<AggregateExpr>()) return EvalAggregate(*n, t);
    if (const auto* n = expr.As<BinaryExpr>()) return EvalBinary(*n, t);
    if (expr.As<SubqueryExpr>() != nullptr) return NotImplemented("subquery");
    return absl::InternalError("BUG: unknown expression node");
  }

 private:
  absl::Status CheckInterrupted() const {
    if (params_.cancelled != nullptr && params_.cancelled->load(std::memory_order_relaxed)) {
      return absl::CancelledError("query was canceled in expression evaluation");
    }
    if (absl::Now() > deadline_) {
      return absl::DeadlineExceededError("query timed out in expression evaluation");
    }
    return absl::OkStatus();
  }

  static absl::Status TooManySamples() {
    return absl::ResourceExhaustedError(
        "query processing would load too many samples into memory in query execution");
  }

  absl::Status Account(int64_t n) {
    step_samples_ += n;
    int64_t current = step_samples_ + result_samples_;
    stats_->peak_samples = std::max(stats_->peak_samples, current);
    if (current > options_.max_samples) return TooManySamples();
    return absl::OkStatus();
  }

  // The time a selector reads at when the query is evaluated at `t`: @ replaces t, then the
  // offset moves it back.
  int64_t RefTime(const VectorSelector& vs, int64_t t) const {
    switch (vs.at.kind) {
      case AtModifier::Kind::kNone: break;
      case AtModifier::Kind::kTimestamp: t = vs.at.timestamp_ms; break;
      case AtModifier::Kind::kStart: t = range_.start_ms; break;
      case AtModifier::Kind::kEnd: t = range_.end_ms; break;
    }
    return t - vs.offset_ms;
  }

  absl::StatusOr<Value> EvalVectorSelector(const VectorSelector& vs, int64_t t) {
    if (absl::Status st = CheckInterrupted(); !st.ok()) return st;
    int64_t ref = RefTime(vs, t);
    Vector out;
    for (const LoadedSeries& s : data_[&vs]) {
      auto it = std::upper_bound(s.samples.begin(), s.samples.end(), ref,
                                 [](int64_t x, const Sample& smp) { return x < smp.t; });
      if (it == s.samples.begin()) continue;
      --it;
      if (it->t < ref - options_.lookback_delta_ms || IsStaleNaN(it->v)) continue;
      out.push_back(VectorElement{s.labels, t, it->v});
    }
    stats_->total_queryable_samples += static_cast<int64_t>(out.size());
    if (absl::Status st = Account(static_cast<int64_t>(out.size())); !st.ok()) return st;
    return Value(std::move(out));
  }

  // The non-stale samples of each series in [ref - range, ref]; series without any are left out.
  absl::StatusOr<Matrix> SelectWindows(const MatrixSelector& ms, int64_t t) {
    if (absl::Status st = CheckInterrupted(); !st.ok()) return st;
    const auto& vs = *ms.selector->As<VectorSelector>();
    int64_t ref = RefTime(vs, t);
    int64_t lo = ref - ms.range_ms;
    Matrix out;
    int64_t points = 0;
    for (const LoadedSeries& s : data_[&vs]) {
      auto begin = std::lower_bound(s.samples.begin(), s.samples.end(), lo,
                                    [](const Sample& smp, int64_t x) { return smp.t < x; });
      MatrixSeries series{s.labels, {}};
      for (auto it = begin; it != s.samples.end() && it->t <= ref; ++it) {
        if (!IsStaleNaN(it->v)) series.samples.push_back(*it);
      }
      if (series.samples.empty()) continue;
      points += static_cast<int64_t>(series.samples.size());
      out.push_back(std::move(series));
    }
    stats_->total_queryable_samples += points;
    if (absl::Status st = Account(points); !st.ok()) return st;
    return out;
  }

  absl::StatusOr<Value> EvalMatrixSelector(const MatrixSelector& ms, int64_t t) {
    if (ms.selector == nullptr || ms.selector->As<VectorSelector>() == nullptr) {
      return absl::InvalidArgumentError("range selector without an instant vector selector");
    }
    absl::StatusOr<Matrix> m = SelectWindows(ms, t);
    if (!m.ok()) return m.status();
    return Value(*std::move(m));
  }

  absl::StatusOr<Vector> EvalVector(const Expr& expr, int64_t t) {
    absl::StatusOr<Value> v = Eval(expr, t);
    if (!v.ok()) return v.status();
    if (auto* vec = std::get_if<Vector>(&*v)) return std::move(*vec);
    return absl::InvalidArgumentError(absl::StrCat(
        "expected instant vector, got ", std::string(ValueTypeName(TypeOfValue(*v)))));
  }

  absl::StatusOr<Value> EvalUnary(const UnaryExpr& u, int64_t t) {
    absl::StatusOr<Value> v = Eval(*u.expr, t);
    if (!v.ok() || !u.negate) return v;
    if (auto* s = std::get_if<Scalar>(&*v)) {
      s->v = -s->v;
      return v;
    }
    auto* vec = std::get_if<Vector>(&*v);
    if (vec == nullptr) return absl::InvalidArgumentError("unary minus needs a scalar or vector");
    for (VectorElement& e : *vec) {
      e.labels = e.labels.Without(kMetricNameLabel);
      e.v = -e.v;
    }
    if (absl::Status st = SortAndCheckUnique(*vec); !st.ok()) return st;
    return v;
  }

  absl::StatusOr<Value> EvalCall(const Call& call, int64_t t) {
    if (!IsImplementedFunction(call.func)) return NotImplemented(call.func);
    if (call.args.size() != 1 || call.args[0] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected 1 argument in call to \"", call.func, "\""));
    }
    const auto* ms = call.args[0]->As<MatrixSelector>();
    if (ms == nullptr) return NotImplemented(absl::StrCat(call.func, " of a non-selector"));
    if (ms->selector == nullptr || ms->selector->As<VectorSelector>() == nullptr) {
      return absl::InvalidArgumentError("range selector without an instant vector selector");
    }
    absl::StatusOr<Matrix> windows = SelectWindows(*ms, t);
    if (!windows.ok()) return windows.status();
    int64_t ref = RefTime(*ms->selector->As<VectorSelector>(), t);
    int64_t range_start = ref - ms->range_ms;
    Vector out;
    for (const MatrixSeries& s : *windows) {
      std::optional<double> v;
      std::span<const Sample> window(s.samples);
      if (call.func == "rate") {
        v = ExtrapolatedRate(window, range_start, ref, /*is_counter=*/true, /*is_rate=*/true);
      } else if (call.func == "increase") {
        v = ExtrapolatedRate(window, range_start, ref, /*is_counter=*/true, /*is_rate=*/false);
      } else if (call.func == "delta") {
        v = ExtrapolatedRate(window, range_start, ref, /*is_counter=*/false, /*is_rate=*/false);
      } else {  // irate
        v = InstantRate(window, /*is_rate=*/true);
      }
      if (!v.has_value()) continue;
      out.push_back(VectorElement{s.labels.Without(kMetricNameLabel), t, *v});
    }
    if (absl::Status st = SortAndCheckUnique(out); !st.ok()) return st;
    if (absl::Status st = Account(static_cast<int64_t>(out.size())); !st.ok()) return st;
    return Value(std::move(out));
  }

  absl::StatusOr<Value> EvalAggregate(const AggregateExpr& agg, int64_t t) {
    if (!IsImplementedAggregation(agg.op) || agg.param != nullptr) {
      return NotImplemented(AggregateOpName(agg.op));
    }
    absl::StatusOr<Vector> in = EvalVector(*agg.expr, t);
    if (!in.ok()) return in.status();
    std::vector<std::string> drop;
    if (agg.without) {
      drop = agg.grouping;
      drop.emplace_back(kMetricNameLabel);
    }
    struct Group {
      Labels labels;
      double value = 0;
      double mean = 0;
      int64_t count = 0;
    };
    std::vector<Group> groups;
    std::map<Labels, size_t> index;
    for (const VectorElement& e : *in) {
      Labels key = agg.without ? e.labels.Filter(drop, false) : e.labels.Filter(agg.grouping, true);
      auto [pos, inserted] = index.emplace(key, groups.size());
      if (inserted) {
        groups.push_back(Group{std::move(key), e.v, e.v, 1});
        continue;
      }
      Group& g = groups[pos->second];
      ++g.count;
      switch (agg.op) {
        case AggregateOp::kSum: g.value += e.v; break;
        case AggregateOp::kMin:
          if (g.value > e.v || std::isnan(g.value)) g.value = e.v;
          break;
        case AggregateOp::kMax:
          if (g.value < e.v || std::isnan(g.value)) g.value = e.v;
          break;
        case AggregateOp::kAvg: {
          if (std::isinf(g.mean)) {
            // An infinite mean stays as it is for a same-signed Inf or a finite value;
            // subtracting it below would give NaN.
            if (std::isinf(e.v) && (g.mean > 0) == (e.v > 0)) break;
            if (!std::isinf(e.v) && !std::isnan(e.v)) break;
          }
          double n = static_cast<double>(g.count);
          g.mean += e.v / n - g.mean / n;
          break;
        }
        default: break;
      }
    }
    Vector out;
    out.reserve(groups.size());
    for (Group& g : groups) {
      double v = g.value;
      if (agg.op == AggregateOp::kAvg) v = g.mean;
      if (agg.op == AggregateOp::kCount) v = static_cast<double>(g.count);
      out.push_back(VectorElement{std::move(g.labels), t, v});
    }
    if (absl::Status st = Account(static_cast<int64_t>(out.size())); !st.ok()) return st;
    return Value(std::move(out));
  }

  absl::StatusOr<Value> EvalBinary(const BinaryExpr& b, int64_t t) {
    if (IsSetOperator(b.op) || b.op == BinaryOp::kAtan2) return NotImplemented(BinaryOpName(b.op));
    absl::StatusOr<Value> lhs = Eval(*b.lhs, t);
    if (!lhs.ok()) return lhs.status();
    absl::StatusOr<Value> rhs = Eval(*b.rhs, t);
    if (!rhs.ok()) return rhs.status();
    const auto* ls = std::get_if<Scalar>(&*lhs);
    const auto* rs = std::get_if<Scalar>(&*rhs);
    auto* lv = std::get_if<Vector>(&*lhs);
    auto* rv = std::get_if<Vector>(&*rhs);
    if (ls != nullptr && rs != nullptr) {
      if (IsComparison(b.op) && !b.return_bool) {
        return absl::InvalidArgumentError("comparisons between scalars must use BOOL modifier");
      }
      auto [v, keep] = ApplyBinaryOp(b.op, ls->v, rs->v);
      if (IsComparison(b.op)) v = keep ? 1 : 0;
      return Value(Scalar{t, v});
    }
    absl::StatusOr<Vector> out;
    if (lv != nullptr && rs != nullptr) {
      out = VectorScalar(b, std::move(*lv), rs->v, /*scalar_left=*/false);
    } else if (ls != nullptr && rv != nullptr) {
      out = VectorScalar(b, std::move(*rv), ls->v, /*scalar_left=*/true);
    } else if (lv != nullptr && rv != nullptr) {
      out = VectorVector(b, std::move(*lv), std::move(*rv));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "binary expression must contain only scalar and instant vector types, got ",
          std::string(ValueTypeName(TypeOfValue(*lhs)))));
    }
    if (!out.ok()) return out.status();
    if (absl::Status st = SortAndCheckUnique(*out); !st.ok()) return st;
    if (absl::Status st = Account(static_cast<int64_t>(out->size())); !st.ok()) return st;
    return Value(*std::move(out));
  }

  absl::StatusOr<Vector> VectorScalar(const BinaryExpr& b, Vector vec, double scalar,
                                      bool scalar_left) {
    Vector out;
    for (VectorElement& e : vec) {
      double l = scalar_left ? scalar : e.v;
      double r = scalar_left ? e.v : scalar;
      auto [v, keep] = ApplyBinaryOp(b.op, l, r);
      // A comparison keeps the vector's value, whichever side it is on.
      if (IsComparison(b.op) && scalar_left) v = r;
      if (b.return_bool) {
        v = keep ? 1 : 0;
        keep = true;
      }
      if (!keep) continue;
      e.v = v;
      if (DropsMetricName(b.op) || b.return_bool) e.labels = e.labels.Without(kMetricNameLabel);
      out.push_back(std::move(e));
    }
    return out;
  }

  absl::StatusOr<Vector> VectorVector(const BinaryExpr& b, Vector lhs, Vector rhs) {
    VectorMatching matching;
    if (b.matching.has_value()) matching = *b.matching;
    if (matching.card == VectorMatching::Card::kManyToOne) return NotImplemented("group_left");
    if (matching.card == VectorMatching::Card::kOneToMany) return NotImplemented("group_right");
    if (matching.card == VectorMatching::Card::kManyToMany) {
      return NotImplemented("many-to-many matching");
    }
    std::vector<std::string> ignored = matching.matching_labels;
    ignored.emplace_back(kMetricNameLabel);
    auto signature = [&](const Labels& l) {
      return matching.on ? l.Filter(matching.matching_labels, true) : l.Filter(ignored, false);
    };
    std::map<Labels, const VectorElement*> right;
    for (const VectorElement& r : rhs) {
      Labels sig = signature(r.labels);
      auto [it, inserted] = right.emplace(sig, &r);
      if (!inserted) {
        return absl::FailedPreconditionError(absl::StrCat(
            "found duplicate series for the match group ", sig.ToString(),
            " on the right hand-side of the operation: [", r.labels.ToString(), ", ",
            it->second->labels.ToString(),
            "];many-to-many matching not allowed: matching labels must be unique on one side"));
      }
    }
    std::map<Labels, bool> matched;
    Vector out;
    for (const VectorElement& l : lhs) {
      Labels sig = signature(l.labels);
      auto it = right.find(sig);
      if (it == right.end()) continue;
      auto [v, keep] = ApplyBinaryOp(b.op, l.v, it->second->v);
      if (b.return_bool) {
        v = keep ? 1 : 0;
      } else if (!keep) {
        continue;
      }
      if (!matched.emplace(sig, true).second) {
        return absl::FailedPreconditionError(
            "multiple matches for labels: many-to-one matching must be explicit "
            "(group_left/group_right)");
      }
      Labels labels = l.labels;
      if (DropsMetricName(b.op) || b.return_bool) labels = labels.Without(kMetricNameLabel);
      if (matching.on) {
        labels = labels.Filter(matching.matching_labels, true);
      } else {
        labels = labels.Filter(matching.matching_labels, false);
      }
      out.push_back(VectorElement{std::move(labels), l.t, v});
    }
    return out;
  }

  const EngineOptions& options_;
  const QueryParams& params_;
  EvalRange range_;
  QueryStats* stats_;
  absl::Time deadline_;
  absl::flat_hash_map<const VectorSelector*, std::vector<LoadedSeries>> data_;
  int64_t step_samples_ = 0;
  int64_t result_samples_ = 0;
};

absl::Status ValidateRootType(const Expr& expr) {
  ValueType type = StaticType(expr);
  if (type == ValueType::kScalar || type == ValueType::kVector) return absl::OkStatus();
  const char* name = type == ValueType::kMatrix ? "range vector" : "string";
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid expression type \"", name, "\" for range query, must be Scalar or instant Vector"));
}

double SecondsSince(absl::Time start) { return absl::ToDoubleSeconds(absl::Now() - start); }

}  // namespace

absl::Status CheckImplemented(const Expr& expr) {
  absl::Status status = absl::OkStatus();
  auto fail = [&status](absl::Status s) {
    if (status.ok()) status = std::move(s);
  };
  auto visit = [&](auto& self, const Expr& e) -> void {
    if (!status.ok()) return;
    if (const auto* n = e.As<MatrixSelector>()) {
      if (n->selector) self(self, *n->selector);
    } else if (e.As<SubqueryExpr>() != nullptr) {
      fail(NotImplemented("subquery"));
    } else if (const auto* n = e.As<Call>()) {
      if (!IsImplementedFunction(n->func)) return fail(NotImplemented(n->func));
      for (const ExprPtr& a : n->args) {
        if (a) self(self, *a);
      }
      for (const ExprPtr& a : n->args) {
        if (a && a->As<MatrixSelector>() == nullptr) {
          return fail(NotImplemented(absl::StrCat(n->func, " of a non-selector")));
        }
      }
    } else if (const auto* n = e.As<AggregateExpr>()) {
      if (!IsImplementedAggregation(n->op) || n->param != nullptr) {
        return fail(NotImplemented(AggregateOpName(n->op)));
      }
      if (n->expr) self(self, *n->expr);
    } else if (const auto* n = e.As<BinaryExpr>()) {
      if (IsSetOperator(n->op) || n->op == BinaryOp::kAtan2) {
        return fail(NotImplemented(BinaryOpName(n->op)));
      }
      if (n->matching.has_value()) {
        if (n->matching->card == VectorMatching::Card::kManyToOne) {
          return fail(NotImplemented("group_left"));
        }
        if (n->matching->card == VectorMatching::Card::kOneToMany) {
          return fail(NotImplemented("group_right"));
        }
      }
      if (n->lhs) self(self, *n->lhs);
      if (n->rhs) self(self, *n->rhs);
    } else if (const auto* n = e.As<UnaryExpr>()) {
      if (n->expr) self(self, *n->expr);
    } else if (const auto* n = e.As<ParenExpr>()) {
      if (n->expr) self(self, *n->expr);
    }
  };
  visit(visit, expr);
  return status;
}

ValueType StaticType(const Expr& expr) {
  if (expr.As<NumberLiteral>() != nullptr) return ValueType::kScalar;
  if (expr.As<StringLiteral>() != nullptr) return ValueType::kString;
  if (expr.As<VectorSelector>() != nullptr) return ValueType::kVector;
  if (expr.As<MatrixSelector>() != nullptr) return ValueType::kMatrix;
  if (expr.As<SubqueryExpr>() != nullptr) return ValueType::kMatrix;
  if (expr.As<Call>() != nullptr) return ValueType::kVector;
  if (expr.As<AggregateExpr>() != nullptr) return ValueType::kVector;
  if (const auto* n = expr.As<BinaryExpr>()) {
    return StaticType(*n->lhs) == ValueType::kScalar && StaticType(*n->rhs) == ValueType::kScalar
               ? ValueType::kScalar
               : ValueType::kVector;
  }
  if (const auto* n = expr.As<UnaryExpr>()) return StaticType(*n->expr);
  if (const auto* n = expr.As<ParenExpr>()) return StaticType(*n->expr);
  return ValueType::kNone;
}

absl::StatusOr<QueryResult> EvaluateInstant(const EngineOptions& options, Queryable& data,
                                            const Expr& expr, int64_t time_ms,
                                            const QueryParams& params) {
  absl::Time started = absl::Now();
  if (absl::Status st = CheckImplemented(expr); !st.ok()) return st;
  QueryResult result;
  Evaluator ev(options, params, EvalRange{time_ms, time_ms, 0}, &result.stats);
  if (absl::Status st = ev.Load(data, expr); !st.ok()) return st;
  if (absl::Status st = ev.BeginStep(); !st.ok()) return st;
  absl::StatusOr<Value> value = ev.Eval(expr, time_ms);
  if (!value.ok()) return value.status();
  if (auto* vec = std::get_if<Vector>(&*value)) {
    std::sort(vec->begin(), vec->end(),
              [](const VectorElement& a, const VectorElement& b) { return a.labels < b.labels; });
  } else if (auto* mat = std::get_if<Matrix>(&*value)) {
    std::sort(mat->begin(), mat->end(),
              [](const MatrixSeries& a, const MatrixSeries& b) { return a.labels < b.labels; });
  }
  result.value = *std::move(value);
  result.stats.eval_seconds = SecondsSince(started);
  return result;
}

absl::StatusOr<QueryResult> EvaluateRange(const EngineOptions& options, Queryable& data,
                                          const Expr& expr, int64_t start_ms, int64_t end_ms,
                                          int64_t step_ms, const QueryParams& params) {
  absl::Time started = absl::Now();
  if (step_ms <= 0) {
    return absl::InvalidArgumentError(
        "zero or negative query resolution step widths are not accepted. Try a positive integer");
  }
  if (end_ms < start_ms) {
    return absl::InvalidArgumentError("end timestamp must not be before start time");
  }
  if (absl::Status st = CheckImplemented(expr); !st.ok()) return st;
  if (absl::Status st = ValidateRootType(expr); !st.ok()) return st;
  QueryResult result;
  Evaluator ev(options, params, EvalRange{start_ms, end_ms, step_ms}, &result.stats);
  if (absl::Status st = ev.Load(data, expr); !st.ok()) return st;
  std::map<Labels, std::vector<Sample>> series;
  for (int64_t t = start_ms; t <= end_ms; t += step_ms) {
    if (absl::Status st = ev.BeginStep(); !st.ok()) return st;
    absl::StatusOr<Value> value = ev.Eval(expr, t);
    if (!value.ok()) return value.status();
    int64_t kept = 0;
    if (const auto* s = std::get_if<Scalar>(&*value)) {
      series[Labels()].push_back(Sample{t, s->v});
      kept = 1;
    } else if (const auto* vec = std::get_if<Vector>(&*value)) {
      for (const VectorElement& e : *vec) series[e.labels].push_back(Sample{t, e.v});
      kept = static_cast<int64_t>(vec->size());
    } else {
      return absl::InvalidArgumentError("range query must evaluate to a scalar or instant vector");
    }
    if (absl::Status st = ev.KeepInResult(kept); !st.ok()) return st;
    if (end_ms - t < step_ms) break;  // no overflow past end_ms
  }
  Matrix matrix;
  matrix.reserve(series.size());
  for (auto& [labels, samples] : series) {
    matrix.push_back(MatrixSeries{labels, std::move(samples)});
  }
  result.value = std::move(matrix);
  result.stats.eval_seconds = SecondsSince(started);
  return result;
}

}  // namespace tidemark::promql::internal
