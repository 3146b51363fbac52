// SLO reports: the error-budget arithmetic (pure functions, unit-tested against hand-computed
// cases) and BuildReport, which fetches the events it needs from a QuerySource.
//
// Definitions, for an objective o over a window W with `total` events of which `bad` are bad:
//   SLI achieved        1 - bad/total
//   error budget        1 - o (a fraction), (1 - o) * total (in bad events)
//   budget consumed     bad / ((1 - o) * total)  (= the burn rate over the whole window)
//   budget remaining    1 - consumed (negative once exceeded)
//   burn rate over w    (bad_w / total_w) / (1 - o): 1 spends the budget exactly over W
//   time to exhaustion  remaining bad events / the bad events per second of the last hour
// A window with no total events has no data: its figures are absent, never 100%.
// The burn-down series give, at the end of each step, the budget remaining counting the bad
// events from the window start: 1 - bad[start, t] / ((1 - o) * total[start, end]).
#ifndef TIDEMARK_CLI_SLO_REPORT_H_
#define TIDEMARK_CLI_SLO_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/query_source.h"
#include "cli/slo.h"

namespace tidemark::cli {

// Event counts of one window; absent when the total query returned nothing or zero.
struct Events {
  double bad = 0;
  double total = 0;
};

struct Budget {
  double sli = 0;
  double budget_fraction = 0;  // 1 - objective
  double budget_events = 0;
  double consumed = 0;         // fraction of the budget
  double remaining = 0;        // 1 - consumed
  double remaining_events = 0;
};

Budget ComputeBudget(double objective, const Events& events);

// (bad/total)/(1-objective); nullopt without data.
std::optional<double> BurnRate(double objective, const std::optional<Events>& events);

// A multiwindow multi-burn-rate alert of the Google SRE workbook: fires when the burn rate over
// both windows exceeds `factor`.
struct AlertRule {
  std::string name;      // "page-1h" ...
  std::string severity;  // "page" or "ticket"
  double factor = 0;
  int64_t long_ms = 0;
  int64_t short_ms = 0;
};
const std::vector<AlertRule>& MultiWindowAlerts();  // 14.4x 1h&5m, 6x 6h&30m, 3x 1d&2h, 1x 3d&6h

// The burn-rate windows reported besides the whole window: 5m 30m 1h 2h 6h 1d 3d.
const std::vector<int64_t>& BurnRateWindows();

struct AlertState {
  AlertRule rule;
  std::optional<double> long_burn;
  std::optional<double> short_burn;
  bool firing = false;
};
AlertState EvaluateAlert(const AlertRule& rule, std::optional<double> long_burn,
                         std::optional<double> short_burn);

enum class Exhaustion { kUnknown, kExhausted, kNotBurning, kAt };
struct ExhaustionEstimate {
  Exhaustion kind = Exhaustion::kUnknown;
  int64_t in_ms = 0;  // for kAt
};
// From the remaining budget in events and the events of the last hour (absent: unknown).
ExhaustionEstimate EstimateExhaustion(double remaining_events,
                                      const std::optional<Events>& last_hour);

struct BudgetPoint {
  int64_t t_ms = 0;
  double remaining = 0;
};
// Burn-down: `bad_per_step[k]` bad events in the step ending at `step_ends[k]`; starts with
// (start_ms, 1). budget_events <= 0 gives an empty series.
std::vector<BudgetPoint> BurnDown(int64_t start_ms, const std::vector<int64_t>& step_ends,
                                  const std::vector<double>& bad_per_step, double budget_events);

// The window of a report evaluated at `eval_ms`: [eval - W, eval] rolling, or from the start of
// the calendar month (UTC) when `calendar` (or the SLO says so).
struct ReportWindow {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  bool calendar = false;
};
ReportWindow WindowFor(const SloDefinition& slo, int64_t eval_ms, bool calendar);

struct BurnRateAt {
  int64_t window_ms = 0;        // the whole report window for the last entry
  bool whole_window = false;
  std::optional<double> burn_rate;
};

struct SloReport {
  SloDefinition slo;
  ReportWindow window;
  std::optional<Events> events;  // over the whole window; absent: no data
  Budget budget;                 // valid when events
  std::vector<BurnRateAt> burn_rates;
  std::vector<AlertState> alerts;
  ExhaustionEstimate exhaustion;
  std::vector<BudgetPoint> daily;  // burn-down at the end of each day of the window
  std::vector<BudgetPoint> chart;  // burn-down at finer steps, for --chart
  std::vector<std::string> warnings;

  bool has_data() const { return events.has_value(); }
  bool exhausted() const { return events.has_value() && budget.remaining <= 0; }
};

struct ReportOptions {
  int64_t eval_ms = 0;
  bool calendar = false;
  int chart_points = 120;
};

// Queries `source` for everything one SLO's report needs. Errors of the source (unreachable
// server, rejected query) come back as they are; an SLO without data is a report with
// has_data() false.
absl::StatusOr<SloReport> BuildReport(QuerySource& source, const SloDefinition& slo,
                                      const ReportOptions& options);

}  // namespace tidemark::cli

#endif  // TIDEMARK_CLI_SLO_REPORT_H_
