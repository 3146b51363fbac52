// Unit tests of the evaluation engine's parts that .test scripts cannot reach: the in-memory
// storage, the rate arithmetic on hand-computed windows, query limits, and the refusal of
// unimplemented constructs on hand-built trees.
#include <atomic>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "query/engine.h"
#include "query/evaluator.h"
#include "query/rate_functions.h"
#include "storage/memory_querier.h"

namespace tidemark::promql {
namespace {

LabelMatcher Eq(const char* name, const char* value) {
  return *LabelMatcher::Create(MatchType::kEqual, name, value);
}

std::vector<Sample> Counter(int n, int64_t interval_ms, double inc) {
  std::vector<Sample> out;
  for (int i = 0; i < n; ++i) out.push_back(Sample{i * interval_ms, i * inc});
  return out;
}

TEST(MemoryStorage, SelectsByMatchersAndTimeRangeSortedByLabels) {
  MemoryStorage storage;
  ASSERT_TRUE(storage.Add(Labels::FromUnsorted({{"__name__", "m"}, {"a", "2"}}),
                          {{0, 1}, {10, 2}}).ok());
  ASSERT_TRUE(storage.Add(Labels::FromUnsorted({{"__name__", "m"}, {"a", "1"}}),
                          {{20, 3}}).ok());
  ASSERT_TRUE(storage.Add(Labels::FromUnsorted({{"__name__", "other"}}), {{0, 5}}).ok());
  auto q = storage.NewQuerier(5, 100);
  ASSERT_TRUE(q.ok());
  auto series = (*q)->Select({Eq("__name__", "m")}, {});
  ASSERT_TRUE(series.ok());
  ASSERT_EQ(series->size(), 2u);
  EXPECT_EQ((*series)[0].labels.Get("a"), "1");
  EXPECT_EQ((*series)[1].labels.Get("a"), "2");
  SampleIterator& it = *(*series)[1].samples;
  ASSERT_TRUE(it.Next());
  EXPECT_EQ(it.At(), (Sample{10, 2}));  // the sample at 0 is outside [5, 100]
  EXPECT_FALSE(it.Next());
  EXPECT_TRUE(it.status().ok());

  auto names = (*q)->LabelNames({});
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"__name__", "a"}));  // `other` has no sample >= 5
  auto values = (*q)->LabelValues("a", {Eq("__name__", "m")});
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(*values, (std::vector<std::string>{"1", "2"}));

  auto empty = (*q)->Select({*LabelMatcher::Create(MatchType::kRegexMatch, "a", ".*")}, {});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MemoryStorage, KeepsStaleMarkersBitExactAndMergesLoads) {
  MemoryStorage storage;
  Labels l = Labels::FromUnsorted({{"__name__", "m"}});
  ASSERT_TRUE(storage.Add(l, {{0, 1}, {20, StaleNaN()}}).ok());
  ASSERT_TRUE(storage.Add(l, {{10, 2}, {20, 3}}).ok());  // 20 replaced by the later load
  auto q = storage.NewQuerier(0, 100);
  auto series = (*q)->Select({Eq("__name__", "m")}, {});
  ASSERT_EQ(series->size(), 1u);
  std::vector<Sample> got;
  for (SampleIterator& it = *(*series)[0].samples; it.Next();) got.push_back(it.At());
  EXPECT_EQ(got, (std::vector<Sample>{{0, 1}, {10, 2}, {20, 3}}));

  ASSERT_TRUE(storage.Add(l, {{30, StaleNaN()}}).ok());
  q = storage.NewQuerier(30, 30);
  series = (*q)->Select({Eq("__name__", "m")}, {});
  ASSERT_EQ(series->size(), 1u);
  ASSERT_TRUE((*series)[0].samples->Seek(25));
  EXPECT_TRUE(IsStaleNaN((*series)[0].samples->At().v));
}

TEST(RateFunctions, ExtrapolatesToTheRangeBoundaries) {
  // Samples every 60s from t=0, +10 each; window [0, 300s] holds 6 samples.
  std::vector<Sample> w = Counter(6, 60'000, 10);
  // Covers the whole range: increase 50 over 300s, no extrapolation needed.
  EXPECT_DOUBLE_EQ(*internal::ExtrapolatedRate(w, 0, 300'000, true, false), 50);
  EXPECT_DOUBLE_EQ(*internal::ExtrapolatedRate(w, 0, 300'000, true, true), 50.0 / 300);
  // Window (30s, 330s]: samples 60..300 (5 samples, 40 over 240s); 30s to each boundary, under
  // the 66s threshold, but the counter hits zero 60s before the first sample... 240*(10/40)=60s
  // > 30s, so 30s is used: 40 * (240+30+30)/240 = 50.
  std::vector<Sample> w2(w.begin() + 1, w.end());
  EXPECT_DOUBLE_EQ(*internal::ExtrapolatedRate(w2, 30'000, 330'000, true, false), 50);
  // Range [0s, 600s] with the series ending at 300s: the end is extrapolated by half an interval.
  EXPECT_DOUBLE_EQ(*internal::ExtrapolatedRate(w, 0, 600'000, false, false), 50 * 330.0 / 300);
}

TEST(RateFunctions, CounterResetsAndZeroPoint) {
  // 5, 10, 2 (reset), 7: increase = 7 - 5 + 10 = 12 over 180s sampled, range [0, 180s].
  std::vector<Sample> w = {{0, 5}, {60'000, 10}, {120'000, 2}, {180'000, 7}};
  EXPECT_DOUBLE_EQ(*internal::ExtrapolatedRate(w, 0, 180'000, true, false), 12);
  // delta ignores resets.
  EXPECT_DOUBLE_EQ(*internal::ExtrapolatedRate(w, 0, 180'000, false, false), 2);
  // A counter starting at 1 with +10/min, range starts 60s before the first sample: the zero
  // point is 6s before it, so extrapolation stops there: 30 * (180+6)/180.
  std::vector<Sample> z = {{60'000, 1}, {120'000, 11}, {180'000, 21}, {240'000, 31}};
  EXPECT_DOUBLE_EQ(*internal::ExtrapolatedRate(z, 0, 240'000, true, false), 30 * 186.0 / 180);
  EXPECT_FALSE(internal::ExtrapolatedRate({w.data(), 1}, 0, 60'000, true, true).has_value());
}

TEST(RateFunctions, InstantRate) {
  std::vector<Sample> w = {{0, 5}, {60'000, 10}, {90'000, 4}};
  EXPECT_DOUBLE_EQ(*internal::InstantRate(w, true), 4.0 / 30);  // reset: the last value
  EXPECT_FALSE(internal::InstantRate({w.data(), 1}, true).has_value());
}

ExprPtr Selector(const char* name) {
  auto e = std::make_unique<Expr>();
  VectorSelector vs;
  vs.name = name;
  vs.matchers.push_back(Eq("__name__", name));
  e->node = std::move(vs);
  return e;
}

TEST(Evaluator, RefusesUnimplementedConstructsOnHandBuiltTrees) {
  auto call = std::make_unique<Expr>();
  call->node = Call{"no_such_function", {}};
  std::get<Call>(call->node).args.push_back(Selector("m"));
  EXPECT_EQ(internal::CheckImplemented(*call).message(), "not implemented yet: no_such_function");

  auto agg = std::make_unique<Expr>();
  AggregateExpr a;
  a.op = AggregateOp::kStddev;
  a.expr = Selector("m");
  agg->node = std::move(a);
  EXPECT_TRUE(internal::CheckImplemented(*agg).ok());  // every aggregation is implemented

  auto bin = std::make_unique<Expr>();
  BinaryExpr b;
  b.op = BinaryOp::kAdd;
  b.lhs = Selector("a");
  b.rhs = Selector("b");
  b.matching = VectorMatching{};
  b.matching->card = VectorMatching::Card::kManyToOne;
  bin->node = std::move(b);
  EXPECT_TRUE(internal::CheckImplemented(*bin).ok());  // group_left is implemented

  MemoryStorage storage;
  ASSERT_TRUE(storage.Add(Labels::FromUnsorted({{"__name__", "m"}}), {{0, 1}}).ok());
  auto sum = std::make_unique<Expr>();
  AggregateExpr s;
  s.op = AggregateOp::kSum;
  s.expr = Selector("m");
  sum->node = std::move(s);
  EXPECT_TRUE(internal::CheckImplemented(*sum).ok());
  auto r = internal::EvaluateInstant(EngineOptions{}, storage, *sum, 1000, QueryParams{});
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& v = std::get<Vector>(r->value);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].v, 1);
  EXPECT_TRUE(v[0].labels.empty());
  EXPECT_EQ(r->stats.total_queryable_samples, 1);
}

class EngineLimits : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(storage_
                      .Add(Labels::FromUnsorted({{"__name__", "m"}, {"i", std::to_string(i)}}),
                           Counter(100, 15'000, 1))
                      .ok());
    }
  }
  MemoryStorage storage_;
};

TEST_F(EngineLimits, MaxSamples) {
  EngineOptions options;
  options.max_samples = 50;
  Engine engine(options);
  auto r = engine.Instant(storage_, "sum(rate(m[5m]))", 1'050'000);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(r.status().message(),
            "query processing would load too many samples into memory in query execution");
  options.max_samples = 100'000;
  auto ok = Engine(options).Instant(storage_, "sum(rate(m[5m]))", 1'050'000);
  ASSERT_TRUE(ok.ok()) << ok.status();
  // 10 series x 21 samples in [750s, 1050s] (15s apart, both ends included).
  EXPECT_EQ(ok->stats.total_queryable_samples, 210);
}

TEST_F(EngineLimits, CancelledAndTimeout) {
  Engine engine;
  std::atomic<bool> cancelled{true};
  QueryParams params;
  params.cancelled = &cancelled;
  EXPECT_EQ(engine.Instant(storage_, "m", 1000, params).status().code(),
            absl::StatusCode::kCancelled);
  QueryParams slow;
  slow.timeout = absl::Nanoseconds(1);
  EXPECT_EQ(engine.Range(storage_, "m", 0, 1'000'000, 1000, slow).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(EngineLimits, RangeQueryShapes) {
  Engine engine;
  auto r = engine.Range(storage_, "1 + 1", 0, 60'000, 30'000);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& m = std::get<Matrix>(r->value);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_TRUE(m[0].labels.empty());
  EXPECT_EQ(m[0].samples, (std::vector<Sample>{{0, 2}, {30'000, 2}, {60'000, 2}}));
  EXPECT_EQ(engine.Range(storage_, "m[5m]", 0, 60'000, 30'000).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine.Range(storage_, "m", 0, 60'000, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto s = engine.Instant(storage_, "\"hello\"", 5000);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(std::get<String>(s->value).v, "hello");
}

TEST_F(EngineLimits, MaxSamplesCountsSubqueryPoints) {
  EngineOptions options;
  options.max_samples = 1000;
  // The query loads 10 series x 41 samples, but its subquery holds 10 series x 601 points
  // (every second from 0s to 600s).
  auto r = Engine(options).Instant(storage_, "max_over_time(m[10m:1s])", 600'000);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(r.status().message(),
            "query processing would load too many samples into memory in query execution");
  // What an inner step holds is released after it: 6010 points plus one step's selection fit.
  options.max_samples = 6100;
  auto ok = Engine(options).Instant(storage_, "max_over_time(m[10m:1s])", 600'000);
  ASSERT_TRUE(ok.ok()) << ok.status();
  const auto& v = std::get<Vector>(ok->value);
  ASSERT_EQ(v.size(), 10u);
  EXPECT_EQ(v[0].v, 40);  // the sample at 600s
  EXPECT_GE(ok->stats.peak_samples, 6010);
  EXPECT_LE(ok->stats.peak_samples, 6100);
}

TEST_F(EngineLimits, TimeoutFiresInsideASubquery) {
  Engine engine;
  QueryParams params;
  params.timeout = absl::Milliseconds(50);
  absl::Time start = absl::Now();
  // 604800 inner steps: far longer than 50ms unless the subquery loop checks the deadline.
  auto r = engine.Instant(storage_, "max_over_time(sum(m)[7d:1s])", 1'000'000, params);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(EngineLimits, CancellationStopsARunningRangeQuery) {
  Engine engine;
  std::atomic<bool> cancelled{false};
  QueryParams params;
  params.cancelled = &cancelled;
  std::thread canceller([&cancelled] {
    absl::SleepFor(absl::Milliseconds(50));
    cancelled.store(true);
  });
  absl::Time start = absl::Now();
  auto r = engine.Range(storage_, "topk(3, max_over_time(sum by (i) (m)[7d:1s]))", 0,
                        3'600'000, 60'000, params);
  canceller.join();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ(r.status().message(), "query was canceled in expression evaluation");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(Subqueries, StepsAreMultiplesOfTheStep) {
  MemoryStorage storage;
  ASSERT_TRUE(storage.Add(Labels::FromUnsorted({{"__name__", "m"}}), Counter(100, 10'000, 1)).ok());
  Engine engine;
  auto r = engine.Instant(storage, "m[1m:20s]", 65'000);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& m = std::get<Matrix>(r->value);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].samples, (std::vector<Sample>{{20'000, 2}, {40'000, 4}, {60'000, 6}}));

  r = engine.Instant(storage, "m[1m:20s] offset 15s", 65'000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<Matrix>(r->value)[0].samples,
            (std::vector<Sample>{{0, 0}, {20'000, 2}, {40'000, 4}}));

  // Both ends are included; @ replaces the evaluation time.
  r = engine.Instant(storage, "m[40s:20s] @ 100", 5'000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<Matrix>(r->value)[0].samples,
            (std::vector<Sample>{{60'000, 6}, {80'000, 8}, {100'000, 10}}));

  // Without a step, the engine's default evaluation interval.
  EngineOptions options;
  options.default_subquery_step_ms = 30'000;
  r = Engine(options).Instant(storage, "m[1m:]", 70'000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(std::get<Matrix>(r->value)[0].samples,
            (std::vector<Sample>{{30'000, 3}, {60'000, 6}}));
}

}  // namespace
}  // namespace tidemark::promql
