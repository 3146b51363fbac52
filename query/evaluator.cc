#include "query/evaluator.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "query/aggregation.h"
#include "query/binary_ops.h"
#include "query/functions_eval.h"
#include "query/range_eval.h"

namespace tidemark::promql::internal {
namespace {

absl::Status NotImplemented(std::string_view name) {
  return absl::UnimplementedError(absl::StrCat("not implemented yet: ", std::string(name)));
}

bool IsImplementedFunction(std::string_view name) { return IsEvaluableFunction(name); }

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

absl::Status TooManySamples() {
  return absl::ResourceExhaustedError(
      "query processing would load too many samples into memory in query execution");
}

struct EvalRange {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  int64_t step_ms = 0;  // 0 for an instant query
};

class Evaluator final : public ColumnSource {
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
    std::vector<Need> needs;
    CollectNeeds(root, range_.start_ms, range_.end_ms, needs);
    if (needs.empty()) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<Querier>> querier = OpenQuerier(data, needs);
    if (!querier.ok()) return querier.status();
    int64_t loaded = 0;
    LoadedSeries read;
    for (const Need& n : needs) {
      absl::StatusOr<std::vector<Series>> series = SelectNeed(**querier, n);
      if (!series.ok()) return series.status();
      std::vector<LoadedSeries>& out = data_[n.selector];
      for (Series& s : *series) {
        if (absl::Status st = ReadSeries(n, s, read, loaded); !st.ok()) return st;
        s.samples.reset();  // whatever the storage held for it
        if (!read.samples.empty()) out.push_back(Keep(read));
      }
    }
    return absl::OkStatus();
  }

  // As Load, but only selects the series: ForEachLoaded reads each when its turn comes (and
  // EvalStep the selectors it needs). Any error here or later while reading means: Unload, then
  // Load, which reports it as it always has.
  absl::Status SelectOnly(Queryable& data, const Expr& root) {
    std::vector<Need> needs;
    CollectNeeds(root, range_.start_ms, range_.end_ms, needs);
    if (needs.empty()) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<Querier>> querier = OpenQuerier(data, needs);
    if (!querier.ok()) return querier.status();
    querier_ = *std::move(querier);
    for (const Need& n : needs) {
      absl::StatusOr<std::vector<Series>> series = SelectNeed(*querier_, n);
      if (!series.ok()) return series.status();
      pending_[n.selector] = Pending{n, *std::move(series)};
    }
    return absl::OkStatus();
  }

  // Reads what SelectOnly selected and nothing has read (counting it as Load would): fails
  // where Load would.
  absl::Status ReadRest() {
    LoadedSeries read;
    for (auto& [vs, pending] : pending_) {
      for (Series& s : pending.series) {
        if (absl::Status st = ReadSeries(pending.need, s, read, loaded_); !st.ok()) return st;
        s.samples.reset();
      }
    }
    pending_.clear();
    return absl::OkStatus();
  }

  // Forgets the selected and loaded series.
  void Unload() {
    data_.clear();
    pending_.clear();
    streamed_.clear();
    querier_.reset();
    loaded_ = 0;
    load_limit_reached_ = false;
  }

  // True when the series read so far (by any path) hold more samples than max_samples: Load
  // would fail with too many samples before evaluating anything, since it reads them all.
  bool LoadLimitReached() {
    absl::MutexLock lock(&read_mu_);
    return load_limit_reached_;
  }

  // ColumnSource.
  absl::Status ForEachLoaded(
      const VectorSelector& vs,
      const std::function<absl::Status(const LoadedSeries&)>& fn) override {
    if (auto it = data_.find(&vs); it != data_.end()) {
      for (const LoadedSeries& s : it->second) {
        if (absl::Status st = fn(s); !st.ok()) return st;
      }
      return absl::OkStatus();
    }
    if (streamed_.contains(&vs)) return absl::FailedPreconditionError("selector read twice");
    auto it = pending_.find(&vs);
    if (it == pending_.end()) return absl::OkStatus();
    Pending pending = std::move(it->second);
    pending_.erase(it);
    streamed_.insert(&vs);
    if (options_.read_ahead_min_series > 0 && options_.read_ahead_batch > 0 &&
        pending.series.size() >= options_.read_ahead_min_series) {
      return StreamReadingAhead(pending, fn);
    }
    LoadedSeries read;
    for (Series& s : pending.series) {
      if (absl::Status st = ReadSeries(pending.need, s, read, loaded_); !st.ok()) return st;
      s.samples.reset();  // whatever the storage held for it
      if (read.samples.empty()) continue;
      if (absl::Status st = fn(read); !st.ok()) return st;
    }
    return absl::OkStatus();
  }
  int64_t RefTime(const VectorSelector& vs, int64_t t) const override {
    return SelectorTime(vs, t);
  }
  absl::Status CheckInterrupted() const override { return Interrupted(); }
  absl::StatusOr<Value> EvalStep(const Expr& expr, int64_t t, int64_t* held,
                                 int64_t* queried) override {
    if (absl::Status st = LoadSelected(expr); !st.ok()) return st;
    const int64_t saved_step = step_samples_, saved_result = result_samples_;
    const int64_t queried_before = stats_->total_queryable_samples;
    step_samples_ = 0;
    result_samples_ = 0;
    absl::StatusOr<Value> v = Eval(expr, t);
    *held += step_samples_;
    *queried += stats_->total_queryable_samples - queried_before;
    step_samples_ = saved_step;
    result_samples_ = saved_result;
    return v;
  }

  // Forgets what an evaluation did (stats, per-step state), keeping the loaded series, so that
  // the query can be evaluated again.
  void Reset() {
    *stats_ = QueryStats();
    subquery_cache_.clear();
    step_samples_ = 0;
    result_samples_ = 0;
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
    if (const auto* n = expr.As<SubqueryExpr>()) {
      absl::StatusOr<Matrix> m = EvalSubquery(*n, t);
      if (!m.ok()) return m.status();
      return Value(*std::move(m));
    }
    return absl::InternalError("BUG: unknown expression node");
  }

 private:
  absl::Status Interrupted() const {
    if (params_.cancelled != nullptr && params_.cancelled->load(std::memory_order_relaxed)) {
      return absl::CancelledError("query was canceled in expression evaluation");
    }
    if (absl::Now() > deadline_) {
      return absl::DeadlineExceededError("query timed out in expression evaluation");
    }
    return absl::OkStatus();
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
  int64_t SelectorTime(const VectorSelector& vs, int64_t t) const {
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

  // The non-stale samples of each series in [ref - range, ref] (the loaded samples of a range
  // selector hold no stale markers), read in place; series without any are left out.
  absl::StatusOr<std::vector<WindowSeries>> SelectWindows(const MatrixSelector& ms, int64_t t) {
    if (absl::Status st = CheckInterrupted(); !st.ok()) return st;
    const auto& vs = *ms.selector->As<VectorSelector>();
    int64_t ref = RefTime(vs, t);
    int64_t lo = ref - ms.range_ms;
    std::vector<WindowSeries> out;
    int64_t points = 0;
    for (const LoadedSeries& s : data_[&vs]) {
      auto begin = std::lower_bound(s.samples.begin(), s.samples.end(), lo,
                                    [](const Sample& smp, int64_t x) { return smp.t < x; });
      auto end = std::upper_bound(begin, s.samples.end(), ref,
                                  [](int64_t x, const Sample& smp) { return x < smp.t; });
      if (begin == end) continue;
      points += end - begin;
      out.push_back(WindowSeries{&s.labels, std::span<const Sample>(&*begin, end - begin)});
    }
    stats_->total_queryable_samples += points;
    if (absl::Status st = Account(points); !st.ok()) return st;
    return out;
  }

  absl::StatusOr<Value> EvalMatrixSelector(const MatrixSelector& ms, int64_t t) {
    if (ms.selector == nullptr || ms.selector->As<VectorSelector>() == nullptr) {
      return absl::InvalidArgumentError("range selector without an instant vector selector");
    }
    absl::StatusOr<std::vector<WindowSeries>> windows = SelectWindows(ms, t);
    if (!windows.ok()) return windows.status();
    Matrix m;
    m.reserve(windows->size());
    for (const WindowSeries& w : *windows) {
      m.push_back(MatrixSeries{*w.labels, std::vector<Sample>(w.samples.begin(), w.samples.end())});
    }
    return Value(std::move(m));
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
    if (absl::Status st = CheckUniqueLabels(*vec); !st.ok()) return st;
    return v;
  }

  // Function calls are evaluated by query/functions_eval.h through this adapter.
  class CallContext final : public FunctionContext {
   public:
    explicit CallContext(Evaluator& ev) : ev_(ev) {}
    absl::StatusOr<Value> Eval(const Expr& expr, int64_t t) override { return ev_.Eval(expr, t); }
    absl::StatusOr<RangeArgument> EvalRange(const Expr& expr, int64_t t) override {
      return ev_.EvalRangeArg(expr, t);
    }
    // As EvalVectorSelector, with each element at its sample's time (for timestamp()).
    absl::StatusOr<Vector> SelectWithSampleTimes(const VectorSelector& vs, int64_t t) override {
      if (absl::Status st = ev_.CheckInterrupted(); !st.ok()) return st;
      int64_t ref = ev_.RefTime(vs, t);
      Vector out;
      for (const LoadedSeries& s : ev_.data_[&vs]) {
        auto it = std::upper_bound(s.samples.begin(), s.samples.end(), ref,
                                   [](int64_t x, const Sample& smp) { return x < smp.t; });
        if (it == s.samples.begin()) continue;
        --it;
        if (it->t < ref - ev_.options_.lookback_delta_ms || IsStaleNaN(it->v)) continue;
        out.push_back(VectorElement{s.labels, it->t, it->v});
      }
      ev_.stats_->total_queryable_samples += static_cast<int64_t>(out.size());
      if (absl::Status st = ev_.Account(static_cast<int64_t>(out.size())); !st.ok()) return st;
      return out;
    }

   private:
    Evaluator& ev_;
  };

  absl::StatusOr<Value> EvalCall(const Call& call, int64_t t) {
    if (absl::Status st = CheckInterrupted(); !st.ok()) return st;
    CallContext ctx(*this);
    absl::StatusOr<Value> v = EvalFunction(call, t, ctx);
    if (!v.ok()) return v.status();
    if (const auto* vec = std::get_if<Vector>(&*v)) {
      if (absl::Status st = Account(static_cast<int64_t>(vec->size())); !st.ok()) return st;
    }
    return v;
  }


  // The samples range one selector needs, for Load.
  struct Need {
    const VectorSelector* selector;
    int64_t mint, maxt;
    bool in_range = false;  // under a matrix selector: only non-stale samples are ever read
  };

  // Series selected for a selector and not read yet.
  struct Pending {
    Need need;
    std::vector<Series> series;
  };

  absl::StatusOr<std::unique_ptr<Querier>> OpenQuerier(Queryable& data,
                                                       const std::vector<Need>& needs) {
    int64_t mint = needs[0].mint, maxt = needs[0].maxt;
    for (const Need& n : needs) {
      mint = std::min(mint, n.mint);
      maxt = std::max(maxt, n.maxt);
    }
    return data.NewQuerier(mint, maxt);
  }

  static absl::StatusOr<std::vector<Series>> SelectNeed(Querier& querier, const Need& n) {
    bool has_non_empty = std::any_of(n.selector->matchers.begin(), n.selector->matchers.end(),
                                     [](const LabelMatcher& m) { return !m.MatchesEmpty(); });
    if (!has_non_empty) {
      return absl::InvalidArgumentError(
          "vector selector must contain at least one non-empty matcher");
    }
    // Series are read one at a time, each released once read (Load, ReadRest, ForEachLoaded).
    SelectHints hints{n.mint, n.maxt};
    hints.lazy = true;
    return querier.Select(n.selector->matchers, hints);
  }

  // ForEachLoaded for a large selection: a second thread reads the series (chunk decoding, head
  // copies, labels) a batch ahead while this one runs `fn` on the batch before, so that a
  // query's reads and its arithmetic share two cores. Batches are an eighth of the selection
  // (overlap from the second batch on), at most a few hundred series (the threads meet a few
  // thousand times for 500 k series, not once per series). Within a batch the series are read in
  // storage order (neighbours share blocks), and `fn` sees them in selection order, as when one
  // thread does both, so the answer is the same bit for bit. A read error comes after the
  // batches before its own, and an error of `fn` stops the reads.
  absl::Status StreamReadingAhead(Pending& pending,
                                  const std::function<absl::Status(const LoadedSeries&)>& fn) {
    struct Batch {
      std::vector<LoadedSeries> series;  // buffers reused from batch to batch
      size_t size = 0;
      absl::Status status;  // the read error that ended the batch
      bool last = false;
      bool full = false;    // guarded by mu: the reader has filled it, `fn` has not used it yet
    };
    Batch batches[2];
    const size_t batch_size =
        std::min(options_.read_ahead_batch, std::max<size_t>(pending.series.size() / 8, 32));
    absl::Mutex mu;
    bool stop = false;  // guarded by mu: `fn` failed, the reader gives up
    std::thread reader([&] {
      size_t next = 0;
      std::vector<size_t> order;
      for (size_t b = 0;; ++b) {
        Batch& batch = batches[b % 2];
        {
          absl::MutexLock lock(&mu);
          auto free = [&] { return !batch.full || stop; };
          mu.Await(absl::Condition(&free));
          if (stop) return;
        }
        // Read in storage order (Series::ReadOrder), kept in selection order.
        const size_t n = std::min(batch_size, pending.series.size() - next);
        order.resize(n);
        for (size_t k = 0; k < n; ++k) order[k] = k;
        std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
          return pending.series[next + x].ReadOrder() < pending.series[next + y].ReadOrder();
        });
        batch.series.resize(n);
        for (size_t k : order) {
          Series& s = pending.series[next + k];
          batch.status = ReadSeries(pending.need, s, batch.series[k], loaded_);
          s.samples.reset();
          if (!batch.status.ok()) break;
        }
        next += n;
        // The series with samples, moved (their buffers swapped) to the front, in order. After
        // a read error none: the error comes first.
        batch.size = 0;
        for (size_t k = 0; k < n && batch.status.ok(); ++k) {
          if (batch.series[k].samples.empty()) continue;
          if (k != batch.size) std::swap(batch.series[k], batch.series[batch.size]);
          ++batch.size;
        }
        batch.last = !batch.status.ok() || next == pending.series.size();
        absl::MutexLock lock(&mu);
        batch.full = true;
        if (batch.last) return;
      }
    });
    absl::Status result;
    for (size_t b = 0;; ++b) {
      Batch& batch = batches[b % 2];
      {
        absl::MutexLock lock(&mu);
        auto full = [&] { return batch.full; };
        mu.Await(absl::Condition(&full));
      }
      for (size_t i = 0; i < batch.size && result.ok(); ++i) result = fn(batch.series[i]);
      if (result.ok()) result = batch.status;
      const bool last = batch.last;
      absl::MutexLock lock(&mu);
      batch.full = false;
      if (!result.ok() || last) {
        stop = true;
        break;
      }
    }
    reader.join();
    return result;
  }

  // Reads the samples of `s` that `n` needs into `out` (its buffers reused) and adds their
  // number to `loaded`, failing past max_samples. Range selectors never read stale markers:
  // they are dropped here, so that a window is a span of the loaded samples. Serialised by
  // read_mu_: the querier and the counts are used by one thread at a time, whichever reads.
  absl::Status ReadSeries(const Need& n, Series& s, LoadedSeries& out, int64_t& loaded) {
    absl::MutexLock lock(&read_mu_);
    if (absl::Status st = CheckInterrupted(); !st.ok()) return st;
    absl::StatusOr<Labels> labels = s.TakeLabels();
    if (!labels.ok()) return labels.status();
    out.labels = *std::move(labels);
    out.samples.clear();
    SampleIterator& it = s.Samples();
    for (bool ok = it.Seek(n.mint); ok && it.At().t <= n.maxt; ok = it.Next()) {
      out.samples.push_back(it.At());
    }
    if (absl::Status st = it.status(); !st.ok()) return st;
    loaded += static_cast<int64_t>(out.samples.size());
    if (loaded > options_.max_samples) {
      load_limit_reached_ = true;
      return TooManySamples();
    }
    if (n.in_range) {
      std::erase_if(out.samples, [](const Sample& smp) { return IsStaleNaN(smp.v); });
    }
    return absl::OkStatus();
  }

  // A copy of `read` to keep, its samples in a buffer of their exact size.
  static LoadedSeries Keep(const LoadedSeries& read) {
    return LoadedSeries{read.labels, std::vector<Sample>(read.samples.begin(), read.samples.end())};
  }

  // Loads the selected series of the selectors in `expr` that no evaluation has read yet.
  absl::Status LoadSelected(const Expr& expr) {
    absl::Status status;
    ForEachSelector(expr, [&](const VectorSelector& vs, const MatrixSelector*) {
      if (!status.ok()) return;
      if (streamed_.contains(&vs)) {
        status = absl::FailedPreconditionError("selector read twice");
        return;
      }
      auto it = pending_.find(&vs);
      if (it == pending_.end()) return;
      Pending pending = std::move(it->second);
      pending_.erase(it);
      std::vector<LoadedSeries>& out = data_[&vs];
      LoadedSeries read;
      for (Series& s : pending.series) {
        status = ReadSeries(pending.need, s, read, loaded_);
        if (!status.ok()) return;
        s.samples.reset();
        if (!read.samples.empty()) out.push_back(Keep(read));
      }
    });
    return status;
  }

  absl::StatusOr<Value> EvalAggregate(const AggregateExpr& agg, int64_t t) {
    AggregationParam param;
    std::string label;
    if (agg.param != nullptr) {
      absl::StatusOr<Value> p = Eval(*agg.param, t);
      if (!p.ok()) return p.status();
      if (const auto* s = std::get_if<Scalar>(&*p)) {
        param.scalar = s->v;
      } else if (auto* str = std::get_if<String>(&*p)) {
        label = std::move(str->v);
        param.label = label;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("expected a scalar or string parameter in aggregation \"",
                         std::string(AggregateOpName(agg.op)), "\""));
      }
    }
    absl::StatusOr<Vector> in = EvalVector(*agg.expr, t);
    if (!in.ok()) return in.status();
    if (absl::Status st = CheckInterrupted(); !st.ok()) return st;
    absl::StatusOr<Vector> out = Aggregate(agg, *in, param, t);
    if (!out.ok()) return out.status();
    if (absl::Status st = Account(static_cast<int64_t>(out->size())); !st.ok()) return st;
    return Value(*std::move(out));
  }

  absl::StatusOr<Value> EvalBinary(const BinaryExpr& b, int64_t t) {
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
      return Value(Scalar{t, ScalarBinary(b.op, ls->v, rs->v)});
    }
    absl::StatusOr<Vector> out;
    if (lv != nullptr && rs != nullptr) {
      out = VectorScalarBinary(b.op, b.return_bool, std::move(*lv), rs->v, /*scalar_left=*/false);
    } else if (ls != nullptr && rv != nullptr) {
      out = VectorScalarBinary(b.op, b.return_bool, std::move(*rv), ls->v, /*scalar_left=*/true);
    } else if (lv != nullptr && rv != nullptr) {
      out = VectorVectorBinary(b, *lv, *rv);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "binary expression must contain only scalar and instant vector types, got ",
          std::string(ValueTypeName(TypeOfValue(*lhs)))));
    }
    if (!out.ok()) return out.status();
    if (absl::Status st = CheckUniqueLabels(*out); !st.ok()) return st;
    if (absl::Status st = Account(static_cast<int64_t>(out->size())); !st.ok()) return st;
    return Value(*std::move(out));
  }

  // The time `at` evaluates at when the query is evaluated at `t`: t itself without @.
  int64_t AtTime(const AtModifier& at, int64_t t) const {
    switch (at.kind) {
      case AtModifier::Kind::kNone: break;
      case AtModifier::Kind::kTimestamp: return at.timestamp_ms;
      case AtModifier::Kind::kStart: return range_.start_ms;
      case AtModifier::Kind::kEnd: return range_.end_ms;
    }
    return t;
  }

  // Adds to `out` the sample range each selector under `e` reads when `e` is evaluated at times
  // in [lo, hi]: @ pins the time, offsets move it back, ranges, the lookback delta and
  // subqueries widen it.
  void CollectNeeds(const Expr& e, int64_t lo, int64_t hi, std::vector<Need>& out) const {
    if (const auto* n = e.As<VectorSelector>()) {
      if (n->at.kind != AtModifier::Kind::kNone) lo = hi = AtTime(n->at, lo);
      out.push_back({n, lo - n->offset_ms - options_.lookback_delta_ms, hi - n->offset_ms});
    } else if (const auto* n = e.As<MatrixSelector>()) {
      const auto* vs = n->selector != nullptr ? n->selector->As<VectorSelector>() : nullptr;
      if (vs == nullptr) return;
      if (vs->at.kind != AtModifier::Kind::kNone) lo = hi = AtTime(vs->at, lo);
      out.push_back({vs, lo - vs->offset_ms - n->range_ms, hi - vs->offset_ms, true});
    } else if (const auto* n = e.As<SubqueryExpr>()) {
      if (n->at.kind != AtModifier::Kind::kNone) lo = hi = AtTime(n->at, lo);
      if (n->expr) CollectNeeds(*n->expr, lo - n->offset_ms - n->range_ms, hi - n->offset_ms, out);
    } else if (const auto* n = e.As<Call>()) {
      for (const ExprPtr& a : n->args) {
        if (a) CollectNeeds(*a, lo, hi, out);
      }
    } else if (const auto* n = e.As<AggregateExpr>()) {
      if (n->param) CollectNeeds(*n->param, lo, hi, out);
      if (n->expr) CollectNeeds(*n->expr, lo, hi, out);
    } else if (const auto* n = e.As<BinaryExpr>()) {
      if (n->lhs) CollectNeeds(*n->lhs, lo, hi, out);
      if (n->rhs) CollectNeeds(*n->rhs, lo, hi, out);
    } else if (const auto* n = e.As<UnaryExpr>()) {
      if (n->expr) CollectNeeds(*n->expr, lo, hi, out);
    } else if (const auto* n = e.As<ParenExpr>()) {
      if (n->expr) CollectNeeds(*n->expr, lo, hi, out);
    }
  }

  // A subquery at `t`: the inner expression evaluated at every multiple of the step in
  // [ref - range, ref], ref being t (or the @ time) less the offset, as Prometheus aligns
  // subquery steps. One series per label set, in order of first appearance. Inner results are
  // kept per step time, so the overlapping windows of consecutive steps evaluate each inner
  // time once.
  absl::StatusOr<Matrix> EvalSubquery(const SubqueryExpr& sq, int64_t t) {
    if (sq.expr == nullptr) return absl::InvalidArgumentError("subquery without an expression");
    int64_t step = sq.step_ms > 0 ? sq.step_ms : options_.default_subquery_step_ms;
    if (step <= 0) return absl::InvalidArgumentError("subquery step must be positive");
    int64_t ref = AtTime(sq.at, t) - sq.offset_ms;
    int64_t lo = ref - sq.range_ms;
    // The first multiple of step at or after lo (division truncates towards zero).
    int64_t first = (lo / step) * step;
    if (first < lo) first += step;
    std::map<int64_t, Vector>& cache = subquery_cache_[&sq];
    cache.erase(cache.begin(), cache.lower_bound(first));
    Matrix out;
    std::map<Labels, size_t> index;
    for (int64_t ti = first; ti <= ref; ti += step) {
      if (absl::Status st = CheckInterrupted(); !st.ok()) return st;
      auto it = cache.find(ti);
      if (it == cache.end()) {
        // What the inner evaluation holds is released after it; only its result is kept.
        int64_t held = step_samples_;
        absl::StatusOr<Vector> v = EvalVector(*sq.expr, ti);
        if (!v.ok()) return v.status();
        step_samples_ = held;
        it = cache.emplace(ti, *std::move(v)).first;
      }
      for (const VectorElement& e : it->second) {
        auto [pos, inserted] = index.try_emplace(e.labels, out.size());
        if (inserted) out.push_back(MatrixSeries{e.labels, {}});
        out[pos->second].samples.push_back(Sample{ti, e.v});
      }
      if (absl::Status st = Account(static_cast<int64_t>(it->second.size())); !st.ok()) {
        return st;
      }
      if (ref - ti < step) break;  // no overflow past ref
    }
    return out;
  }

  // The argument of a range-vector function at `t`: the windows of a range selector or the
  // points of a subquery (parentheses allowed around either), with the range [start_ms, end_ms]
  // the function sees (for extrapolation).
  absl::StatusOr<RangeArgument> EvalRangeArg(const Expr& arg, int64_t t) {
    const Expr* e = &arg;
    while (const auto* p = e->As<ParenExpr>()) {
      if (p->expr == nullptr) break;
      e = p->expr.get();
    }
    if (const auto* ms = e->As<MatrixSelector>()) {
      if (ms->selector == nullptr || ms->selector->As<VectorSelector>() == nullptr) {
        return absl::InvalidArgumentError("range selector without an instant vector selector");
      }
      absl::StatusOr<std::vector<WindowSeries>> w = SelectWindows(*ms, t);
      if (!w.ok()) return w.status();
      int64_t ref = RefTime(*ms->selector->As<VectorSelector>(), t);
      return RangeArgument{*std::move(w), {}, ref - ms->range_ms, ref};
    }
    if (const auto* sq = e->As<SubqueryExpr>()) {
      absl::StatusOr<Matrix> m = EvalSubquery(*sq, t);
      if (!m.ok()) return m.status();
      int64_t ref = AtTime(sq->at, t) - sq->offset_ms;
      RangeArgument r{{}, *std::move(m), ref - sq->range_ms, ref};
      r.series.reserve(r.owned.size());
      for (const MatrixSeries& s : r.owned) {
        r.series.push_back(WindowSeries{&s.labels, std::span<const Sample>(s.samples)});
      }
      return r;
    }
    return absl::InvalidArgumentError("expected a range vector argument");
  }

  const EngineOptions& options_;
  const QueryParams& params_;
  EvalRange range_;
  QueryStats* stats_;
  absl::Time deadline_;
  absl::flat_hash_map<const VectorSelector*, std::vector<LoadedSeries>> data_;
  // SelectOnly's querier (the pending series may read through it), its series not read yet,
  // the selectors ForEachLoaded has read (and released) and the samples read so far.
  std::unique_ptr<Querier> querier_;
  absl::flat_hash_map<const VectorSelector*, Pending> pending_;
  absl::flat_hash_set<const VectorSelector*> streamed_;
  absl::Mutex read_mu_;
  int64_t loaded_ = 0;  // guarded by read_mu_ while a read-ahead thread runs
  bool load_limit_reached_ = false;  // guarded by read_mu_
  // Node-based on purpose: EvalSubquery holds a reference to its own cache while the inner
  // expression's subqueries add theirs, so the table must keep its elements in place when it
  // grows (absl::flat_hash_map does not).
  std::unordered_map<const SubqueryExpr*, std::map<int64_t, Vector>> subquery_cache_;
  int64_t step_samples_ = 0;
  int64_t result_samples_ = 0;
};

// True when Prometheus returns the instant vector of `expr` in an order of its own (topk,
// bottomk, sort, sort_desc at the root) rather than one a client must not rely on.
bool ResultIsOrdered(const Expr& expr) {
  const Expr* e = &expr;
  while (const auto* p = e->As<ParenExpr>()) {
    if (p->expr == nullptr) return false;
    e = p->expr.get();
  }
  if (const auto* a = e->As<AggregateExpr>()) {
    return a->op == AggregateOp::kTopk || a->op == AggregateOp::kBottomk;
  }
  if (const auto* c = e->As<Call>()) return c->func == "sort" || c->func == "sort_desc";
  return false;
}

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
    } else if (const auto* n = e.As<SubqueryExpr>()) {
      if (n->expr) self(self, *n->expr);
    } else if (const auto* n = e.As<Call>()) {
      if (!IsImplementedFunction(n->func)) return fail(NotImplemented(n->func));
      for (const ExprPtr& a : n->args) {
        if (a) self(self, *a);
      }
    } else if (const auto* n = e.As<AggregateExpr>()) {
      if (n->param) self(self, *n->param);
      if (n->expr) self(self, *n->expr);
    } else if (const auto* n = e.As<BinaryExpr>()) {
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
  result.stats.prepare_seconds = SecondsSince(started);
  if (absl::Status st = ev.BeginStep(); !st.ok()) return st;
  absl::StatusOr<Value> value = ev.Eval(expr, time_ms);
  if (!value.ok()) return value.status();
  result.stats.samples_per_step.emplace_back(time_ms, result.stats.total_queryable_samples);
  absl::Time sort_started = absl::Now();
  if (auto* vec = std::get_if<Vector>(&*value); vec != nullptr && !ResultIsOrdered(expr)) {
    std::sort(vec->begin(), vec->end(),
              [](const VectorElement& a, const VectorElement& b) { return a.labels < b.labels; });
  } else if (auto* mat = std::get_if<Matrix>(&*value)) {
    std::sort(mat->begin(), mat->end(),
              [](const MatrixSeries& a, const MatrixSeries& b) { return a.labels < b.labels; });
  }
  result.stats.sort_seconds = SecondsSince(sort_started);
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
  // Column by column when it can give the answer, reading the series one at a time as it goes;
  // any other error sends the query step by step over freshly loaded series, which reports the
  // error as Prometheus does. Past max_samples that evaluation is sure to fail the same way, so
  // the error comes at once, without loading up to the limit again (hundreds of MB for a large
  // query): when the reads went past it, Load fails before evaluating anything (it reads all
  // these series and more); when the held samples did, evaluation fails at that step or
  // before, at the latest (the columns hold what the step-by-step evaluation holds at the end
  // of each step, and no step gives another error, or the columns would have failed).
  if (options.columnar_range_queries && ColumnarApplicable(expr)) {
    if (ev.SelectOnly(data, expr).ok()) {
      result.stats.prepare_seconds = SecondsSince(started);
      absl::StatusOr<ColumnarResult> columnar =
          EvaluateColumnar(expr, start_ms, end_ms, step_ms, options.lookback_delta_ms,
                           options.max_samples, ev);
      if (columnar.ok() && !columnar->over_max_samples && ev.ReadRest().ok()) {
        const double prepare = result.stats.prepare_seconds;
        ev.Reset();
        result.stats.prepare_seconds = prepare;
        result.stats.total_queryable_samples = columnar->total_queried;
        result.stats.peak_samples = columnar->peak_samples;
        result.stats.samples_per_step = std::move(columnar->queried_per_step);
        result.value = std::move(columnar->matrix);
        result.stats.eval_seconds = SecondsSince(started);
        return result;
      }
      if (ev.LoadLimitReached() || (columnar.ok() && columnar->over_max_samples)) {
        return TooManySamples();
      }
    }
    ev.Reset();
    ev.Unload();
  }
  if (absl::Status st = ev.Load(data, expr); !st.ok()) return st;
  result.stats.prepare_seconds = SecondsSince(started);
  std::map<Labels, std::vector<Sample>> series;
  for (int64_t t = start_ms; t <= end_ms; t += step_ms) {
    if (absl::Status st = ev.BeginStep(); !st.ok()) return st;
    int64_t samples_before = result.stats.total_queryable_samples;
    absl::StatusOr<Value> value = ev.Eval(expr, t);
    if (!value.ok()) return value.status();
    result.stats.samples_per_step.emplace_back(
        t, result.stats.total_queryable_samples - samples_before);
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
