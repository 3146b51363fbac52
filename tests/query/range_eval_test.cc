// Column-wise range evaluation (query/range_eval.h) against the step-by-step evaluator: the same
// range queries with EngineOptions::columnar_range_queries on and off must give the same
// status, the same series with bit-identical samples, and the same stats. The data has what
// makes evaluation order and errors matter: counter resets, NaN and ±Inf, stale markers, series
// that stop and start, equal values (ties in topk), histogram buckets with equal bounds written
// two ways, an info metric whose version changes, and metrics that differ only in name.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "gtest/gtest.h"
#include "query/engine.h"
#include "storage/memory_querier.h"

namespace tidemark::promql {
namespace {

constexpr int64_t kStep = 15'000;
constexpr int64_t kSpan = 2 * 3600 * 1000;

// The series of `inner`, each with a place in storage (SampleIterator::ReadOrder) unrelated to
// its place in the selection, so that a reader that follows ReadOrder reads them out of order.
class ShuffledReadOrder : public Queryable {
 public:
  explicit ShuffledReadOrder(Queryable& inner) : inner_(inner) {}

  absl::StatusOr<std::unique_ptr<Querier>> NewQuerier(int64_t mint, int64_t maxt) override {
    absl::StatusOr<std::unique_ptr<Querier>> q = inner_.NewQuerier(mint, maxt);
    if (!q.ok()) return q.status();
    return std::unique_ptr<Querier>(std::make_unique<ShuffledQuerier>(*std::move(q)));
  }

 private:
  class Shuffled : public SampleIterator {
   public:
    Shuffled(std::unique_ptr<SampleIterator> inner, uint64_t order)
        : inner_(std::move(inner)), order_(order) {}
    bool Next() override { return inner_->Next(); }
    bool Seek(int64_t t) override { return inner_->Seek(t); }
    Sample At() const override { return inner_->At(); }
    absl::Status status() const override { return inner_->status(); }
    uint64_t ReadOrder() const override { return order_; }

   private:
    std::unique_ptr<SampleIterator> inner_;
    uint64_t order_;
  };

  class ShuffledQuerier : public Querier {
   public:
    explicit ShuffledQuerier(std::unique_ptr<Querier> inner) : inner_(std::move(inner)) {}
    absl::StatusOr<std::vector<Series>> Select(const std::vector<LabelMatcher>& matchers,
                                               const SelectHints& hints) override {
      absl::StatusOr<std::vector<Series>> series = inner_->Select(matchers, hints);
      if (!series.ok()) return series;
      for (size_t i = 0; i < series->size(); ++i) {
        Series& s = (*series)[i];
        s.samples = std::make_unique<Shuffled>(std::move(s.samples), (i * 7919) % 13);
      }
      return series;
    }
    absl::StatusOr<std::vector<std::string>> LabelNames(
        const std::vector<LabelMatcher>& matchers) override {
      return inner_->LabelNames(matchers);
    }
    absl::StatusOr<std::vector<std::string>> LabelValues(
        const std::string& name, const std::vector<LabelMatcher>& matchers) override {
      return inner_->LabelValues(name, matchers);
    }

   private:
    std::unique_ptr<Querier> inner_;
  };

  Queryable& inner_;
};

// Counts the queriers opened on `inner`: one per evaluation, two when a query evaluated column
// by column is evaluated again step by step.
class CountingQueriers : public Queryable {
 public:
  explicit CountingQueriers(Queryable& inner) : inner_(inner) {}
  absl::StatusOr<std::unique_ptr<Querier>> NewQuerier(int64_t mint, int64_t maxt) override {
    ++opened;
    return inner_.NewQuerier(mint, maxt);
  }
  int opened = 0;

 private:
  Queryable& inner_;
};

class ColumnarVsStepByStep : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(7);
    auto uniform = [&rng] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
    auto add = [this](Labels l, std::vector<Sample> s) {
      ASSERT_TRUE(storage_.Add(l, std::move(s)).ok()) << l.ToString();
    };
    const char* const kLe[] = {"0.1", "0.5", "1", "1.0", "5", "+Inf"};
    for (int pod = 0; pod < 12; ++pod) {
      const std::string p = "p" + std::to_string(pod), ns = "ns" + std::to_string(pod % 3);
      const std::string inst = "i" + std::to_string(pod);
      // Pods 3 and 7 stop at 1/2 with a stale marker; pod 11 starts at 1/3; pod 5 has a gap.
      int64_t from = pod == 11 ? kSpan / 3 : 0, to = (pod == 3 || pod == 7) ? kSpan / 2 : kSpan;
      auto times = [&](std::vector<Sample>& s, auto value) {
        for (int64_t t = from + pod * 7; t < to; t += kStep) {
          if (pod == 5 && t > kSpan / 4 && t < kSpan / 4 + 20 * 60 * 1000) continue;
          s.push_back({t, value(t)});
        }
        if (to < kSpan) s.push_back({to + 1000, StaleNaN()});
      };
      for (int code = 0; code < 3; ++code) {
        std::vector<Sample> s;
        double c = 0;
        times(s, [&](int64_t) {
          if (uniform() < 0.02) c = 0;  // reset
          c += code == 2 ? 0 : std::floor(uniform() * 10);  // code 2 never moves: ties at 0
          return c;
        });
        add(Labels::FromUnsorted({{"__name__", "req_total"}, {"ns", ns}, {"pod", p},
                                  {"instance", inst}, {"code", std::to_string(200 + code)}}),
            s);
      }
      std::vector<Sample> g;
      times(g, [&](int64_t t) {
        double u = uniform();
        if (pod == 4 && u < 0.05) return std::numeric_limits<double>::quiet_NaN();
        if (pod == 6 && u < 0.03) return std::numeric_limits<double>::infinity();
        if (pod == 8 && u < 0.03) return -std::numeric_limits<double>::infinity();
        return std::round(uniform() * 4) / 2 + static_cast<double>(t % 3);
      });
      add(Labels::FromUnsorted({{"__name__", "gauge"}, {"ns", ns}, {"pod", p}, {"instance", inst}}),
          g);
      // Same labels as `gauge` but another name: `rate`/`-` of both collide.
      if (pod < 2) {
        add(Labels::FromUnsorted(
                {{"__name__", "gauge_twin"}, {"ns", ns}, {"pod", p}, {"instance", inst}}),
            g);
      }
      double h[6] = {0, 0, 0, 0, 0, 0};
      std::vector<std::vector<Sample>> buckets(6);
      for (int64_t t = from + pod * 7; t < to; t += kStep) {
        double n = std::floor(uniform() * 20);
        for (int b = 0; b < 6; ++b) {
          h[b] += std::floor(n * std::min(1.0, 0.2 * (b + 1)));
          buckets[b].push_back({t, h[b]});
        }
      }
      for (int b = 0; b < 6; ++b) {
        add(Labels::FromUnsorted({{"__name__", "lat_bucket"}, {"ns", ns}, {"pod", p},
                                  {"instance", inst}, {"le", kLe[b]}}),
            buckets[b]);
      }
      // The info metric: version changes at 1/2 (one series ends, another starts).
      std::vector<Sample> v1, v2;
      for (int64_t t = 0; t < kSpan; t += kStep) (t < kSpan / 2 ? v1 : v2).push_back({t, 1});
      v1.push_back({kSpan / 2 + 1, StaleNaN()});
      add(Labels::FromUnsorted({{"__name__", "info"}, {"instance", inst}, {"version", "a"}}), v1);
      add(Labels::FromUnsorted({{"__name__", "info"}, {"instance", inst},
                                {"version", pod % 2 == 0 ? "b" : "a"}}),
          v2);
    }
    // Two info series for one instance at once: group_left must fail over that span.
    add(Labels::FromUnsorted({{"__name__", "info_dup"}, {"instance", "i1"}, {"version", "x"}}),
        {{kSpan / 2, 1}, {kSpan / 2 + kStep, 1}});
    add(Labels::FromUnsorted({{"__name__", "info_dup"}, {"instance", "i1"}, {"version", "y"}}),
        {{kSpan / 2, 1}});
  }

  void Compare(const std::string& query, int64_t step) {
    SCOPED_TRACE(query + " step " + std::to_string(step));
    EngineOptions columnar = columnar_, stepwise;
    stepwise.columnar_range_queries = false;
    const int64_t start = 10 * 60 * 1000, end = kSpan - 60'000;
    auto a = Engine(columnar).Range(*columnar_data_, query, start, end, step);
    auto b = Engine(stepwise).Range(storage_, query, start, end, step);
    ASSERT_EQ(a.status(), b.status());
    if (!a.ok()) return;
    const auto& ma = std::get<Matrix>(a->value);
    const auto& mb = std::get<Matrix>(b->value);
    ASSERT_EQ(ma.size(), mb.size());
    for (size_t i = 0; i < ma.size(); ++i) {
      ASSERT_EQ(ma[i].labels, mb[i].labels);
      ASSERT_EQ(ma[i].samples, mb[i].samples) << ma[i].labels.ToString();  // bit for bit
    }
    EXPECT_EQ(a->stats.total_queryable_samples, b->stats.total_queryable_samples);
    EXPECT_EQ(a->stats.samples_per_step, b->stats.samples_per_step);
    EXPECT_EQ(a->stats.peak_samples, b->stats.peak_samples);
    ++compared_;
    if (!ma.empty()) ++with_data_;
    // With the peak as the limit, the same status (both fail when they read more than that);
    // one sample under it, both fail, and with the same error (the column-wise evaluation
    // gives it without evaluating step by step).
    const int64_t peak = b->stats.peak_samples;
    if (peak == 0) return;
    columnar.max_samples = stepwise.max_samples = peak;
    auto at_peak = Engine(columnar).Range(*columnar_data_, query, start, end, step);
    auto at_peak_stepwise = Engine(stepwise).Range(storage_, query, start, end, step);
    EXPECT_EQ(at_peak.status(), at_peak_stepwise.status());
    if (at_peak.ok()) {
      EXPECT_EQ(std::get<Matrix>(at_peak->value).size(), ma.size());
      ++answered_at_peak_;
    }
    columnar.max_samples = stepwise.max_samples = peak - 1;
    auto c = Engine(columnar).Range(*columnar_data_, query, start, end, step);
    auto d = Engine(stepwise).Range(storage_, query, start, end, step);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted) << d.status();
    EXPECT_EQ(c.status(), d.status());
  }

  // Reads every selection on a second thread, a few series ahead (evaluator.cc,
  // StreamReadingAhead), where the defaults do so only for large selections.
  void ReadAheadAlways() {
    columnar_.read_ahead_min_series = 1;
    columnar_.read_ahead_batch = 5;
    columnar_data_ = &shuffled_;
  }

  void SameStatusNearMaxSamples();
  void SameAnswersBitForBit();

  MemoryStorage storage_;
  ShuffledReadOrder shuffled_{storage_};
  Queryable* columnar_data_ = &storage_;  // what the columnar evaluation reads
  EngineOptions columnar_;
  int compared_ = 0;
  int with_data_ = 0;
  int answered_at_peak_ = 0;  // with max_samples at the peak, by the held samples alone
};

// Columnar evaluation reads the series while it evaluates: past max_samples it must still
// fail as the step-by-step evaluator does, and below it answer the same.
void ColumnarVsStepByStep::SameStatusNearMaxSamples() {
  const std::vector<std::string> queries = {
      "sum by (ns) (rate(req_total[5m]))",
      "gauge",
      "avg by (ns) (avg_over_time(gauge[5m])) + on (ns) sum by (ns) (rate(req_total[5m]))",
      "label_replace(sum by (ns) (gauge), \"x\", \"$1\", \"ns\", \"(.*)\")",
  };
  const int64_t start = 10 * 60 * 1000, end = kSpan - 60'000;
  int failed = 0, answered = 0;
  for (const std::string& q : queries) {
    for (int64_t max : {100, 5'000, 20'000, 50'000, 10'000'000}) {
      SCOPED_TRACE(q + " max_samples " + std::to_string(max));
      EngineOptions columnar = columnar_, stepwise;
      columnar.max_samples = stepwise.max_samples = max;
      stepwise.columnar_range_queries = false;
      auto a = Engine(columnar).Range(*columnar_data_, q, start, end, kStep);
      auto b = Engine(stepwise).Range(storage_, q, start, end, kStep);
      ASSERT_EQ(a.status(), b.status());
      if (!a.ok()) {
        ++failed;
        continue;
      }
      ++answered;
      const auto& ma = std::get<Matrix>(a->value);
      const auto& mb = std::get<Matrix>(b->value);
      ASSERT_EQ(ma.size(), mb.size());
      for (size_t i = 0; i < ma.size(); ++i) {
        ASSERT_EQ(ma[i].labels, mb[i].labels);
        ASSERT_EQ(ma[i].samples, mb[i].samples) << ma[i].labels.ToString();
      }
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(answered, 0);
}

void ColumnarVsStepByStep::SameAnswersBitForBit() {
  const std::vector<std::string> queries = {
      "req_total",
      "req_total offset 5m",
      "gauge @ 3000",
      "gauge @ end()",
      "-gauge",
      "+gauge",
      "-{__name__=~\"gauge|gauge_twin\"}",
      "rate(req_total[1m0s])",
      "rate(req_total[5m] offset 10m)",
      "rate(req_total[5m] @ start())",
      "increase(req_total[5m])",
      "delta(gauge[5m])",
      "irate(req_total[1m])",
      "idelta(gauge[2m])",
      "deriv(gauge[10m])",
      "changes(gauge[10m])",
      "resets(req_total[30m])",
      "avg_over_time(gauge[5m])",
      "sum_over_time(gauge[5m])",
      "min_over_time(gauge[5m])",
      "max_over_time(gauge[5m])",
      "count_over_time(gauge[5m])",
      "stddev_over_time(gauge[5m])",
      "stdvar_over_time(gauge[5m])",
      "last_over_time(gauge[5m])",
      "present_over_time(gauge[5m])",
      "rate({__name__=~\"gauge|gauge_twin\"}[5m])",
      "last_over_time({__name__=~\"gauge|gauge_twin\"}[5m])",
      "sum by (ns) (rate(req_total[1m0s]))",
      "sum without (code) (rate(req_total[5m]))",
      "avg by (ns) (gauge)",
      "min by (ns) (gauge)",
      "max by (ns) (gauge)",
      "count by (ns) (gauge)",
      "group by (ns) (gauge)",
      "stddev by (ns) (gauge)",
      "stdvar (gauge)",
      "quantile by (ns) (0.9, gauge)",
      "quantile (2, gauge)",
      "count_values by (ns) (\"value\", gauge)",
      "topk(3, rate(req_total[5m]))",
      "bottomk(2, rate(req_total[5m]))",
      "topk by (ns) (2, gauge)",
      "topk(10, sum by (pod) (rate(req_total[5m])))",
      "topk(1, gauge)",
      "topk(0, gauge)",
      "topk(-1e300 * 1e300, gauge)",
      "sum(sum by (pod) (rate(req_total[5m])))",
      // Aggregations that fold their input series one at a time as they are read.
      "avg without (pod) (avg_over_time(gauge[5m]))",
      "stddev by (ns) (rate(req_total[5m]))",
      "stdvar without (code, instance) (increase(req_total[5m]))",
      "count without (code) (rate(req_total[5m]))",
      "max (max_over_time(gauge[5m]))",
      "min by (pod) (min_over_time(gauge[5m]))",
      "group by (ns) (rate(req_total[5m]))",
      "avg by (ns) (gauge offset 5m)",
      "sum by (ns) (rate({__name__=~\"gauge|gauge_twin\"}[5m]))",
      "sum by (ns) (last_over_time({__name__=~\"gauge|gauge_twin\"}[5m]))",
      "sum without (pod) ({__name__=~\"gauge|gauge_twin\"})",
      "histogram_quantile(0.9, sum without (pod, instance, ns) (rate(lat_bucket[5m])))",
      "topk(2, avg by (pod) (rate(req_total[5m])))",
      "sum by (ns) (rate(req_total[5m])) + on (ns) count by (ns) (gauge)",
      "sum by (ns) (topk by (ns) (2, gauge))",
      "histogram_quantile(0.99, sum by (le) (rate(lat_bucket[5m])))",
      "histogram_quantile(0.5, rate(lat_bucket[5m]))",
      "histogram_quantile(0.9, sum by (le, ns) (rate(lat_bucket[5m])))",
      "histogram_quantile(scalar(sum(gauge)) / 100, sum by (le) (rate(lat_bucket[5m])))",
      "histogram_quantile(0.9, {__name__=~\"lat_bucket|req_total\"})",
      "rate(req_total[5m]) * on (instance) group_left (version) info",
      // Group "a" is made by a series that ends at 1/2; after that its first series comes
      // after group "b"'s, so the groups' order at those steps is not the column order (and
      // topk's choice between their equal sums follows it).
      "topk(1, sum by (version) (info))",
      "bottomk(1, count by (version) (info))",
      "info * on (instance) group_right (version) rate(req_total[5m])",
      "rate(req_total[5m]) * on (instance) group_left (version) info_dup",
      "gauge + on (instance) info",
      "gauge > on (instance) group_left info",
      "gauge > bool on (instance) group_left info",
      "gauge / ignoring (ns) gauge",
      "req_total - on (instance) gauge",
      "gauge == bool 1",
      "gauge > 1",
      "1 < gauge",
      "2 ^ gauge",
      "gauge % 2",
      "atan2(gauge, 2)",
      "gauge and on (instance) info",
      "gauge or req_total",
      "gauge unless gauge > 1",
      "1 + 2 * 3",
      "time() - 60",
      "scalar(sum(gauge))",
      "sum(gauge) / scalar(count(gauge))",
      "abs(-gauge)",
      "clamp_max(gauge, 1)",
      "label_replace(gauge, \"x\", \"$1\", \"pod\", \"p(.*)\")",
      "vector(1) + sum(gauge)",
      "absent(nonexistent)",
      "sum by (ns) (rate(req_total[5m])) / on (ns) group_left sum by (ns) (gauge)",
      "max_over_time(gauge[10m:1m])",
  };
  for (const std::string& q : queries) {
    Compare(q, 15'000);
    Compare(q, 60'000);
  }
  EXPECT_GT(with_data_, 100);  // the queries above mostly answer with data
  EXPECT_GT(answered_at_peak_, 25);
}

TEST_F(ColumnarVsStepByStep, SameStatusNearMaxSamples) { SameStatusNearMaxSamples(); }

// Past max_samples, whether by the samples read or by those held at a step, a query the columns
// evaluate fails at once: it is not loaded again step by step (up to the limit, hundreds of MB
// for a large query) only to fail the same way.
TEST_F(ColumnarVsStepByStep, TooManySamplesFailsWithoutEvaluatingAgain) {
  const std::vector<std::string> queries = {
      "histogram_quantile(0.9, sum by (le, ns) (rate(lat_bucket[5m])))",
      "sum by (ns) (rate(req_total[5m]))",
      "rate(req_total[5m])",
      "gauge",
  };
  const int64_t start = 10 * 60 * 1000, end = kSpan - 60'000;
  for (const std::string& q : queries) {
    EngineOptions stepwise;
    stepwise.columnar_range_queries = false;
    auto full = Engine(stepwise).Range(storage_, q, start, end, kStep);
    ASSERT_TRUE(full.ok()) << q << ": " << full.status();
    for (int64_t max : {int64_t{100}, full->stats.peak_samples - 1}) {
      SCOPED_TRACE(q + " max_samples " + std::to_string(max));
      EngineOptions columnar = columnar_;
      columnar.max_samples = stepwise.max_samples = max;
      CountingQueriers counted(*columnar_data_);
      auto a = Engine(columnar).Range(counted, q, start, end, kStep);
      auto b = Engine(stepwise).Range(storage_, q, start, end, kStep);
      EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted) << b.status();
      EXPECT_EQ(a.status(), b.status());
      EXPECT_EQ(counted.opened, 1);
    }
  }
}

TEST_F(ColumnarVsStepByStep, SameAnswersBitForBit) { SameAnswersBitForBit(); }

// Series read ahead on another thread, in batches of 5 read in storage order (shuffled here),
// come to the evaluation in selection order: the same answers, and max_samples trips the same
// way.
TEST_F(ColumnarVsStepByStep, ReadAheadGivesTheSameStatus) {
  ReadAheadAlways();
  SameStatusNearMaxSamples();
}

TEST_F(ColumnarVsStepByStep, ReadAheadGivesTheSameAnswers) {
  ReadAheadAlways();
  SameAnswersBitForBit();
}

}  // namespace
}  // namespace tidemark::promql
