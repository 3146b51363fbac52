// Tests of SLO files (OpenSLO v1, Sloth), the error-budget and burn-rate arithmetic against
// hand-computed cases, calendar windows, reports over an embedded store, renderings and rules.
#include "cli/slo.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <regex>
#include <string>

#include "cli/query_source.h"
#include "cli/slo_render.h"
#include "cli/slo_report.h"
#include "cli/slo_rules.h"
#include "cli/time_args.h"
#include "storage/db.h"

namespace tidemark::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kMin = 60000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kMar1 = 1709251200000;  // 2024-03-01T00:00:00Z

// ------------------------------------------------------------------- arithmetic

TEST(SloMath, BudgetHandComputed) {
  // 1,000,000 requests, 600 failed, objective 99.9%: budget 1000 failures, 60% spent.
  Budget b = ComputeBudget(0.999, {.bad = 600, .total = 1'000'000});
  EXPECT_DOUBLE_EQ(b.sli, 0.9994);
  EXPECT_NEAR(b.budget_fraction, 0.001, 1e-15);
  EXPECT_NEAR(b.budget_events, 1000, 1e-9);
  EXPECT_NEAR(b.consumed, 0.6, 1e-12);
  EXPECT_NEAR(b.remaining, 0.4, 1e-12);
  EXPECT_NEAR(b.remaining_events, 400, 1e-9);
  // Overspent: 2500 failures of a 1000 budget.
  b = ComputeBudget(0.999, {.bad = 2500, .total = 1'000'000});
  EXPECT_NEAR(b.consumed, 2.5, 1e-12);
  EXPECT_NEAR(b.remaining, -1.5, 1e-12);
  EXPECT_NEAR(b.remaining_events, -1500, 1e-9);
}

TEST(SloMath, BurnRates) {
  EXPECT_NEAR(*BurnRate(0.99, Events{.bad = 50, .total = 1000}), 5, 1e-12);  // 5% of 1%
  EXPECT_NEAR(*BurnRate(0.999, Events{.bad = 1, .total = 1000}), 1, 1e-9);   // exactly on pace
  EXPECT_EQ(*BurnRate(0.999, Events{.bad = 0, .total = 10}), 0);
  EXPECT_FALSE(BurnRate(0.999, std::nullopt).has_value());  // no data
  EXPECT_FALSE(BurnRate(0.999, Events{.bad = 0, .total = 0}).has_value());
}

TEST(SloMath, MultiwindowAlerts) {
  const auto& rules = MultiWindowAlerts();
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(rules[0].factor, 14.4);
  EXPECT_EQ(rules[0].long_ms, kHour);
  EXPECT_EQ(rules[0].short_ms, 5 * kMin);
  EXPECT_EQ(rules[1].factor, 6);
  EXPECT_EQ(rules[1].long_ms, 6 * kHour);
  EXPECT_EQ(rules[1].short_ms, 30 * kMin);
  EXPECT_EQ(rules[2].factor, 3);
  EXPECT_EQ(rules[2].long_ms, kDay);
  EXPECT_EQ(rules[2].short_ms, 2 * kHour);
  EXPECT_EQ(rules[3].factor, 1);
  EXPECT_EQ(rules[3].long_ms, 3 * kDay);
  EXPECT_EQ(rules[3].short_ms, 6 * kHour);
  EXPECT_TRUE(EvaluateAlert(rules[0], 15, 20).firing);
  EXPECT_FALSE(EvaluateAlert(rules[0], 15, 14).firing);    // the short window has recovered
  EXPECT_FALSE(EvaluateAlert(rules[0], 14.4, 20).firing);  // strictly above the factor
  EXPECT_FALSE(EvaluateAlert(rules[0], std::nullopt, 20).firing);
  EXPECT_TRUE(EvaluateAlert(rules[3], 1.01, 1.5).firing);
}

TEST(SloMath, Exhaustion) {
  // 400 failures of budget left, 100 failures in the last hour: 4 hours.
  ExhaustionEstimate e = EstimateExhaustion(400, Events{.bad = 100, .total = 5000});
  EXPECT_EQ(e.kind, Exhaustion::kAt);
  EXPECT_EQ(e.in_ms, 4 * kHour);
  EXPECT_EQ(EstimateExhaustion(0, Events{.bad = 1, .total = 5}).kind, Exhaustion::kExhausted);
  EXPECT_EQ(EstimateExhaustion(-3, std::nullopt).kind, Exhaustion::kExhausted);
  EXPECT_EQ(EstimateExhaustion(400, Events{.bad = 0, .total = 5}).kind, Exhaustion::kNotBurning);
  EXPECT_EQ(EstimateExhaustion(400, std::nullopt).kind, Exhaustion::kUnknown);
}

TEST(SloMath, BurnDown) {
  std::vector<BudgetPoint> p =
      BurnDown(kMar1, {kMar1 + kDay, kMar1 + 2 * kDay, kMar1 + 3 * kDay}, {100, 0, 300}, 1000);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].t_ms, kMar1);
  EXPECT_DOUBLE_EQ(p[0].remaining, 1);
  EXPECT_DOUBLE_EQ(p[1].remaining, 0.9);
  EXPECT_DOUBLE_EQ(p[2].remaining, 0.9);
  EXPECT_DOUBLE_EQ(p[3].remaining, 0.6);
  EXPECT_EQ(p[3].t_ms, kMar1 + 3 * kDay);
  EXPECT_TRUE(BurnDown(kMar1, {kMar1 + kDay}, {1}, 0).empty());
}

TEST(SloMath, CalendarAndRollingWindows) {
  SloDefinition slo;
  slo.window_ms = 28 * kDay;
  int64_t mid = *ParseTimeArg("2024-03-20T12:00:00Z", 0);
  ReportWindow w = WindowFor(slo, mid, false);
  EXPECT_EQ(w.start_ms, mid - 28 * kDay);
  EXPECT_FALSE(w.calendar);
  w = WindowFor(slo, mid, true);
  EXPECT_EQ(w.start_ms, kMar1);
  EXPECT_EQ(w.end_ms, mid);
  EXPECT_TRUE(w.calendar);
  // A leap February, from the SLO's own calendar window.
  slo.calendar_month = true;
  w = WindowFor(slo, *ParseTimeArg("2024-02-29T23:00:00Z", 0), false);
  EXPECT_EQ(w.start_ms, *ParseTimeArg("2024-02-01T00:00:00Z", 0));
  EXPECT_EQ(w.end_ms - w.start_ms, 28 * kDay + 23 * kHour);
}

// ------------------------------------------------------------------ SLO files

constexpr char kOpenSlo[] = R"yaml(apiVersion: openslo/v1
kind: SLO
metadata:
  name: web-availability
spec:
  service: web
  indicator:
    metadata:
      name: good-requests
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: sum(http_requests_total{code!~"5.."})
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(http_requests_total)
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - target: 0.995
---
apiVersion: openslo/v1
kind: SLI
metadata:
  name: fast
spec:
  ratioMetric:
    good:
      metricSource:
        type: Prometheus
        spec:
          query: sum(rate(http_request_duration_seconds_bucket{le="0.3"}[{{.window}}]))
    total:
      metricSource:
        type: Prometheus
        spec:
          query: sum(rate(http_request_duration_seconds_count[{{.window}}]))
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: web-latency
spec:
  indicatorRef: fast
  timeWindow:
    - duration: 1M
      isRolling: false
  objectives:
    - targetPercent: 99
)yaml";

TEST(SloFile, OpenSlo) {
  absl::StatusOr<std::vector<SloDefinition>> slos = ParseSloYaml(kOpenSlo, "slos.yaml");
  ASSERT_TRUE(slos.ok()) << slos.status();
  ASSERT_EQ(slos->size(), 2u);
  const SloDefinition& a = (*slos)[0];
  EXPECT_EQ(a.name, "web-availability");
  EXPECT_EQ(a.service, "web");
  EXPECT_DOUBLE_EQ(a.objective, 0.995);
  EXPECT_EQ(a.good_query, "sum(http_requests_total{code!~\"5..\"})");
  EXPECT_EQ(a.bad_query, "");
  EXPECT_EQ(a.total_query, "sum(http_requests_total)");
  EXPECT_EQ(a.window_ms, 28 * kDay);
  EXPECT_FALSE(a.calendar_month);
  EXPECT_EQ(a.origin, "slos.yaml:1");
  const SloDefinition& l = (*slos)[1];
  EXPECT_EQ(l.name, "web-latency");
  EXPECT_DOUBLE_EQ(l.objective, 0.99);
  EXPECT_TRUE(l.calendar_month);
  EXPECT_THAT(l.good_query, HasSubstr("le=\"0.3\""));
}

TEST(SloFile, SlothAndBadTotal) {
  absl::StatusOr<std::vector<SloDefinition>> slos = ParseSloYaml(R"yaml(
version: "prometheus/v1"
service: "myservice"
slos:
  - name: "requests-availability"
    objective: 99.9
    description: "Common SLO based on availability for HTTP request responses."
    sli:
      events:
        error_query: sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))
        total_query: sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))
)yaml",
                                                                 "sloth.yaml");
  ASSERT_TRUE(slos.ok()) << slos.status();
  ASSERT_EQ(slos->size(), 1u);
  EXPECT_EQ((*slos)[0].service, "myservice");
  EXPECT_NEAR((*slos)[0].objective, 0.999, 1e-12);
  EXPECT_THAT((*slos)[0].bad_query, HasSubstr("(5..|429)"));
  EXPECT_EQ((*slos)[0].window_ms, 30 * kDay);
  EXPECT_EQ((*slos)[0].origin, "sloth.yaml:5");
}

// Each bad file gives file:line: field: reason.
TEST(SloFile, ErrorsNameLineAndField) {
  struct Case {
    std::string text;
    std::string want;
  };
  std::string base = kOpenSlo;
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  std::vector<Case> cases = {
      {replace("target: 0.995", "target: high"),
       "slos.yaml:27: spec.objectives[0].target: must be a number, got \"high\""},
      {replace("target: 0.995", "target: 99.5"),
       "slos.yaml:27: spec.objectives[0].target: must be between 0 and 1"},
      {replace("indicatorRef: fast", "indicatorRef: slow"),
       "slos.yaml:51: spec.indicatorRef: no kind: SLI named \"slow\""},
      {replace("duration: 28d", "duration: 4 weeks"),
       "slos.yaml:24: spec.timeWindow[0].duration: not a duration"},
      {replace("type: Prometheus", "type: Datadog"),
       "slos.yaml:15: spec.indicator.spec.ratioMetric.good.metricSource.type: \"Datadog\" is "
       "not supported"},
      {replace("query: sum(http_requests_total)\n", "query: sum(http_requests_total\n"),
       "slos.yaml:22: spec.indicator.spec.ratioMetric.total.metricSource.spec.query: bad PromQL"},
      {replace("query: sum(http_requests_total)\n", "query: sum(rate(http_requests_total[5m]))\n"),
       "range selector"},
      {replace("apiVersion: openslo/v1\nkind: SLO", "apiVersion: openslo/v2\nkind: SLO"),
       "slos.yaml:1: apiVersion: \"openslo/v2\" is not supported"},
      {replace("  objectives:\n    - target: 0.995\n", ""),
       "spec.objectives: must be a non-empty list"},
      {"version: prometheus/v1\nservice: x\nslos:\n  - name: a\n    objective: 100\n    sli: {}\n",
       "slos.yaml:5: slos[0].objective: must be a percentage"},
      {"version: prometheus/v1\nservice: x\nslos:\n  - name: a\n    objective: 99\n    sli:\n"
       "      events: {total_query: sum(x)}\n",
       "slos.yaml:7: slos[0].sli.events.error_query: missing"},
      {"version: prometheus/v1\nservice: x\nslos:\n"
       "  - {name: a, objective: 99, sli: {events: {error_query: sum(e), total_query: sum(t)}}}\n"
       "  - {name: a, objective: 90, sli: {events: {error_query: sum(e), total_query: sum(t)}}}\n",
       "slos.yaml:5: SLO \"a\" is defined twice (first at slos.yaml:4)"},
      {"a: [1, 2\n", "slos.yaml:2: invalid YAML"},
      {"kind: Service\n", "apiVersion: missing"},
      {"", "no SLO found"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<SloDefinition>> slos = ParseSloYaml(c.text, "slos.yaml");
    ASSERT_FALSE(slos.ok()) << c.want;
    EXPECT_EQ(slos.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(slos.status().message()), HasSubstr(c.want));
  }
}

TEST(SloFile, EventsQueryRewrites) {
  EXPECT_EQ(*EventsQuery("sum(http_requests_total{code=~\"5..\"})", kHour, "increase"),
            "sum(increase(http_requests_total{code=~\"5..\"}[1h]))");
  EXPECT_EQ(*EventsQuery("sum by (job) (a_total) + b_total", 30 * kDay, "rate"),
            "sum by (job) (rate(a_total[30d])) + rate(b_total[30d])");
  EXPECT_EQ(*EventsQuery("sum(rate(x_total[{{.window}}]))", 5 * kMin, "increase"),
            "sum(increase(x_total[5m]))");
  EXPECT_EQ(*EventsQuery("sum(increase(x_total[{{ .window }}]))", 2 * kHour, "rate"),
            "sum(rate(x_total[2h]))");
  EXPECT_FALSE(EventsQuery("sum(rate(x[5m]))", kHour, "increase").ok());
  EXPECT_FALSE(EventsQuery("sum(", kHour, "increase").ok());
}

// ------------------------------------------------------- reports over a real store

class SloReportTest : public ::testing::Test {
 protected:
  // One day of minutely counters ending at kEnd: 10 requests a minute, of which 4 fail in each
  // of the last 30 minutes.
  static constexpr int64_t kEnd = kMar1 + kDay;

  void SetUp() override {
    dir_ = ::testing::TempDir() + "/tidemark_cli_slo_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    absl::StatusOr<std::unique_ptr<DB>> db =
        DB::Open({.path = dir_, .sync = SyncPolicy::kNever, .retention_ms = 0});
    ASSERT_TRUE(db.ok()) << db.status();
    auto app = (*db)->NewAppender(kDefaultTenant);
    double total = 0, bad = 0;
    for (int i = 0; i <= 1440; ++i) {
      if (i > 0) {
        total += 10;
        if (i > 1440 - 30) bad += 4;
      }
      int64_t t = kMar1 + i * kMin;
      ASSERT_TRUE(app->Append(Labels::FromUnsorted({{"__name__", "req_total"}}), t, total).ok());
      ASSERT_TRUE(app->Append(Labels::FromUnsorted({{"__name__", "err_total"}}), t, bad).ok());
      ASSERT_TRUE(
          app->Append(Labels::FromUnsorted({{"__name__", "ok_total"}}), t, total - bad).ok());
    }
    ASSERT_TRUE(app->Commit().ok());
    ASSERT_TRUE((*db)->Close().ok());
    EmbeddedSourceOptions options;
    options.path = dir_;
    absl::StatusOr<std::unique_ptr<QuerySource>> s = NewEmbeddedSource(options);
    ASSERT_TRUE(s.ok()) << s.status();
    source_ = std::move(*s);
  }
  void TearDown() override {
    source_.reset();
    std::filesystem::remove_all(dir_);
  }

  static SloDefinition Slo() {
    SloDefinition slo;
    slo.name = "api";
    slo.objective = 0.99;
    slo.bad_query = "sum(err_total)";
    slo.total_query = "sum(req_total)";
    slo.window_ms = kDay;
    return slo;
  }

  std::string dir_;
  std::unique_ptr<QuerySource> source_;
};

std::optional<double> BurnAt(const SloReport& r, int64_t window, bool whole = false) {
  for (const BurnRateAt& b : r.burn_rates) {
    if (b.whole_window == whole && (whole || b.window_ms == window)) return b.burn_rate;
  }
  return std::nullopt;
}

void ExpectHandComputed(const SloReport& r) {
  // 14400 requests, 120 failed; budget 1% = 144; consumed 120/144.
  ASSERT_TRUE(r.has_data());
  EXPECT_NEAR(r.events->total, 14400, 1e-9);
  EXPECT_NEAR(r.events->bad, 120, 1e-9);
  EXPECT_NEAR(r.budget.sli, 1 - 120.0 / 14400, 1e-12);
  EXPECT_NEAR(r.budget.budget_events, 144, 1e-9);
  EXPECT_NEAR(r.budget.consumed, 120.0 / 144, 1e-12);
  EXPECT_NEAR(r.budget.remaining, 24.0 / 144, 1e-12);
  EXPECT_NEAR(r.budget.remaining_events, 24, 1e-9);
  EXPECT_NEAR(*BurnAt(r, 5 * kMin), 40, 1e-9);   // 20 of 50 = 40% of 1%
  EXPECT_NEAR(*BurnAt(r, 30 * kMin), 40, 1e-9);  // 120 of 300
  EXPECT_NEAR(*BurnAt(r, kHour), 20, 1e-9);      // 120 of 600
  EXPECT_NEAR(*BurnAt(r, 2 * kHour), 10, 1e-9);  // 120 of 1200
  EXPECT_NEAR(*BurnAt(r, 6 * kHour), 10.0 / 3, 1e-9);
  EXPECT_NEAR(*BurnAt(r, kDay), 120.0 / 144, 1e-9);
  EXPECT_NEAR(*BurnAt(r, 3 * kDay), 120.0 / 144, 1e-9);  // only one day of data
  EXPECT_NEAR(*BurnAt(r, 0, true), 120.0 / 144, 1e-9);
  ASSERT_EQ(r.alerts.size(), 4u);
  EXPECT_TRUE(r.alerts[0].firing);   // 20x over 1h and 40x over 5m > 14.4
  EXPECT_FALSE(r.alerts[1].firing);  // 3.3x over 6h < 6
  EXPECT_FALSE(r.alerts[2].firing);
  EXPECT_FALSE(r.alerts[3].firing);
  // 24 failures left at 120 an hour: 12 minutes.
  EXPECT_EQ(r.exhaustion.kind, Exhaustion::kAt);
  EXPECT_NEAR(static_cast<double>(r.exhaustion.in_ms), 12 * kMin, 1);
  ASSERT_EQ(r.daily.size(), 2u);
  EXPECT_EQ(r.daily[1].t_ms, kMar1 + kDay);
  EXPECT_NEAR(r.daily[1].remaining, 24.0 / 144, 1e-12);
  EXPECT_EQ(r.chart.size(), 121u);  // 12-minute steps over the day, plus the start
  EXPECT_NEAR(r.chart.back().remaining, 24.0 / 144, 1e-12);
  EXPECT_NEAR(r.chart[r.chart.size() - 4].remaining, 1, 1e-12);  // before the outage
}

TEST_F(SloReportTest, BadOverTotal) {
  absl::StatusOr<SloReport> r = BuildReport(*source_, Slo(), {.eval_ms = kEnd});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHandComputed(*r);
  EXPECT_FALSE(r->exhausted());
}

TEST_F(SloReportTest, GoodOverTotalAndSlothTemplates) {
  SloDefinition slo = Slo();
  slo.bad_query.clear();
  slo.good_query = "sum(ok_total)";
  absl::StatusOr<SloReport> r = BuildReport(*source_, slo, {.eval_ms = kEnd});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHandComputed(*r);
  slo = Slo();
  slo.bad_query = "sum(rate(err_total[{{.window}}]))";
  slo.total_query = "sum(rate(req_total[{{.window}}]))";
  r = BuildReport(*source_, slo, {.eval_ms = kEnd});
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectHandComputed(*r);
}

TEST_F(SloReportTest, NoDataIsNotAHundredPercent) {
  SloDefinition slo = Slo();
  slo.total_query = "sum(missing_total)";
  absl::StatusOr<SloReport> r = BuildReport(*source_, slo, {.eval_ms = kEnd});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_data());
  EXPECT_FALSE(r->exhausted());
  EXPECT_FALSE(BurnAt(*r, kHour).has_value());
  EXPECT_TRUE(r->daily.empty());
  EXPECT_THAT(RenderReportTable({*r}), HasSubstr("NO DATA"));
  EXPECT_THAT(RenderReportJson({*r}), HasSubstr("\"sli\": null"));
  EXPECT_THAT(RenderReportJson({*r}), HasSubstr("\"status\": \"no data\""));
  EXPECT_THAT(RenderReportSvg({*r}), HasSubstr("class=\"nodata\""));
  // A missing bad series with data in total counts as no failures, with a warning.
  slo = Slo();
  slo.bad_query = "sum(no_errors_total)";
  r = BuildReport(*source_, slo, {.eval_ms = kEnd});
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_data());
  EXPECT_EQ(r->events->bad, 0);
  EXPECT_EQ(r->exhaustion.kind, Exhaustion::kNotBurning);
  EXPECT_THAT(r->warnings, ElementsAre(HasSubstr("counted as 0")));
}

// The "no data" text of an empty panel must not be drawn over the objective line: its box
// (estimated at 0.6 em per character) lies entirely below the line at every x it covers.
TEST_F(SloReportTest, NoDataSvgTextIsClearOfTheObjectiveLine) {
  SloDefinition slo = Slo();
  slo.total_query = "sum(missing_total)";
  absl::StatusOr<SloReport> r = BuildReport(*source_, slo, {.eval_ms = kEnd});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->has_data());
  std::string svg = RenderReportSvg({*r});
  std::smatch line, text;
  ASSERT_TRUE(std::regex_search(svg, line,
                                std::regex("<line class=\"objective\" x1=\"([0-9.]+)\" "
                                           "y1=\"([0-9.]+)\" x2=\"([0-9.]+)\" "
                                           "y2=\"([0-9.]+)\"")))
      << svg;
  ASSERT_TRUE(std::regex_search(svg, text,
                                std::regex("<text class=\"nodata\" x=\"([0-9.]+)\" "
                                           "y=\"([0-9.]+)\" text-anchor=\"start\" "
                                           "font-size=\"([0-9]+)\"[^>]*>([^<]*)</text>")))
      << svg;
  double x1 = std::stod(line[1]), y1 = std::stod(line[2]);
  double x2 = std::stod(line[3]), y2 = std::stod(line[4]);
  double tx = std::stod(text[1]), baseline = std::stod(text[2]), size = std::stod(text[3]);
  double width = 0.6 * size * static_cast<double>(text[4].length());
  double top = baseline - size;
  ASSERT_GT(x2, x1);
  ASSERT_LE(tx + width, x2) << "the text runs out of the plot";
  // The line's y at the text's left and right ends (it is straight, so these bound it).
  for (double x : {tx, tx + width}) {
    double ly = y1 + (y2 - y1) * (x - x1) / (x2 - x1);
    EXPECT_LT(ly, top - 4) << "objective line crosses the no-data text at x=" << x;
  }
}

TEST_F(SloReportTest, CalendarWindowAndExhaustion) {
  // Calendar month at 18:00 on the 1st: 18h of traffic, no failures yet.
  SloDefinition slo = Slo();
  absl::StatusOr<SloReport> r =
      BuildReport(*source_, slo, {.eval_ms = kMar1 + 18 * kHour, .calendar = true});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->window.start_ms, kMar1);
  ASSERT_TRUE(r->has_data());
  EXPECT_NEAR(r->events->total, 18 * 600, 1e-9);
  EXPECT_EQ(r->events->bad, 0);
  EXPECT_DOUBLE_EQ(r->budget.remaining, 1);
  ASSERT_EQ(r->daily.size(), 2u);  // one partial day of 18h
  EXPECT_EQ(r->daily[1].t_ms, kMar1 + 18 * kHour);
  // A stricter objective is overspent: 120 failures of a 14.4 budget.
  slo.objective = 0.999;
  r = BuildReport(*source_, slo, {.eval_ms = kEnd});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->exhausted());
  EXPECT_EQ(r->exhaustion.kind, Exhaustion::kExhausted);
  EXPECT_NEAR(r->budget.remaining, 1 - 120 / 14.4, 1e-9);
  EXPECT_THAT(Sparkline(r->daily), "·");
}

TEST_F(SloReportTest, Renderings) {
  absl::StatusOr<SloReport> r = BuildReport(*source_, Slo(), {.eval_ms = kEnd});
  ASSERT_TRUE(r.ok());
  std::string table = RenderReportTable({*r});
  EXPECT_THAT(table,
              HasSubstr("api  99%        1d rolling  99.1667%  16.67%       20.00x   in 12m"));
  EXPECT_THAT(table, HasSubstr("SLI achieved   99.1667%  (120 bad of 14400 events)"));
  EXPECT_THAT(table, HasSubstr("alerts firing  page 14.4x 1h&5m\n"));
  std::string md = RenderReportMarkdown({*r});
  EXPECT_THAT(md, HasSubstr("| api | 99% | 1d rolling | 99.1667% | 16.67% | 20.00x | 3.33x | "
                            "0.83x | page 14.4x 1h&5m | in 12m | `▂` |"));
  std::string json = RenderReportJson({*r});
  EXPECT_THAT(json, HasSubstr("\"time_to_exhaustion_seconds\": 720.0"));
  EXPECT_THAT(json, HasSubstr("\"status\": \"burning\""));
  std::string svg = RenderReportSvg({*r});
  EXPECT_THAT(svg, HasSubstr("<polyline class=\"remaining\""));
  EXPECT_THAT(svg, HasSubstr("class=\"objective\""));
}

TEST(SloRender, SparklineAndPercent) {
  std::vector<BudgetPoint> p{{0, 1},     {1, 1},    {2, 0.99}, {3, 0.5},
                             {4, 0.125}, {5, 0.01}, {6, 0},    {7, -0.5}};
  EXPECT_EQ(Sparkline(p), "██▄▁▁··");
  EXPECT_EQ(Percent(0.999), "99.9%");
  EXPECT_EQ(Percent(0.99), "99%");
  EXPECT_EQ(Percent(-0.8863, 2), "-88.63%");
  EXPECT_EQ(Percent(1), "100%");
}

TEST(SloRules, PrometheusRuleFile) {
  absl::StatusOr<std::vector<SloDefinition>> slos = ParseSloYaml(kOpenSlo, "slos.yaml");
  ASSERT_TRUE(slos.ok());
  absl::StatusOr<std::string> text = RenderRules(*slos);
  ASSERT_TRUE(text.ok()) << text.status();
  YAML::Node doc = YAML::Load(*text);
  ASSERT_EQ(doc["groups"].size(), 2u);
  YAML::Node g = doc["groups"][0];
  EXPECT_EQ(g["name"].as<std::string>(), "slo-web-availability");
  // 7 burn-rate windows + the 28d SLO window, then the page and ticket alerts.
  ASSERT_EQ(g["rules"].size(), 10u);
  EXPECT_EQ(g["rules"][0]["record"].as<std::string>(), "slo:sli_error:ratio_rate5m");
  EXPECT_EQ(g["rules"][0]["expr"].as<std::string>(),
            "1 - ((sum(rate(http_requests_total{code!~\"5..\"}[5m]))) / "
            "(sum(rate(http_requests_total[5m]))))");
  EXPECT_EQ(g["rules"][0]["labels"]["slo"].as<std::string>(), "web-availability");
  EXPECT_EQ(g["rules"][7]["record"].as<std::string>(), "slo:sli_error:ratio_rate4w");
  EXPECT_EQ(g["rules"][8]["alert"].as<std::string>(), "WebAvailabilityErrorBudgetBurn");
  EXPECT_EQ(g["rules"][8]["labels"]["severity"].as<std::string>(), "page");
  EXPECT_EQ(g["rules"][8]["expr"].as<std::string>(),
            "(slo:sli_error:ratio_rate1h{slo=\"web-availability\"} > (14.4 * 0.005) and "
            "slo:sli_error:ratio_rate5m{slo=\"web-availability\"} > (14.4 * 0.005)) or "
            "(slo:sli_error:ratio_rate6h{slo=\"web-availability\"} > (6 * 0.005) and "
            "slo:sli_error:ratio_rate30m{slo=\"web-availability\"} > (6 * 0.005))");
  EXPECT_EQ(g["rules"][9]["labels"]["severity"].as<std::string>(), "ticket");
  EXPECT_THAT(g["rules"][9]["expr"].as<std::string>(),
              HasSubstr("slo:sli_error:ratio_rate3d{slo=\"web-availability\"} > (1 * 0.005) and "
                        "slo:sli_error:ratio_rate6h{slo=\"web-availability\"} > (1 * 0.005)"));
  // The calendar SLO has no window rule; its Sloth-style template is rewritten to rate.
  YAML::Node latency = doc["groups"][1]["rules"];
  ASSERT_EQ(latency.size(), 9u);
  EXPECT_EQ(latency[2]["expr"].as<std::string>(),
            "1 - ((sum(rate(http_request_duration_seconds_bucket{le=\"0.3\"}[1h]))) / "
            "(sum(rate(http_request_duration_seconds_count[1h]))))");
}

}  // namespace
}  // namespace tidemark::cli
