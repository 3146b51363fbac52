#include "cli/slo_report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/time_args.h"
#include "query/parser.h"

namespace tidemark::cli {
namespace {

constexpr int64_t kMinute = 60 * 1000;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;

// The sum of an instant result; nullopt when it holds no sample.
std::optional<double> SumOf(const promql::Value& v) {
  if (const auto* s = std::get_if<promql::Scalar>(&v)) return s->v;
  if (const auto* vec = std::get_if<promql::Vector>(&v)) {
    if (vec->empty()) return std::nullopt;
    double sum = 0;
    for (const auto& e : *vec) sum += e.v;
    return sum;
  }
  return std::nullopt;
}

class Fetcher {
 public:
  Fetcher(QuerySource& source, const SloDefinition& slo, std::vector<std::string>* warnings)
      : source_(source), slo_(slo), warnings_(warnings) {}

  // Events of the window of `window_ms` ending at `t`.
  absl::StatusOr<std::optional<Events>> At(int64_t window_ms, int64_t t) {
    absl::StatusOr<std::optional<double>> total = Query(slo_.total_query, window_ms, t);
    if (!total.ok()) return total.status();
    if (!total->has_value() || std::isnan(**total) || **total <= 0) return std::nullopt;
    Events e;
    e.total = **total;
    bool good = !slo_.good_query.empty();
    absl::StatusOr<std::optional<double>> part =
        Query(good ? slo_.good_query : slo_.bad_query, window_ms, t);
    if (!part.ok()) return part.status();
    if (!part->has_value() || std::isnan(**part)) {
      if (good) {
        Warn("the good-events query returned no data while the total did: no data reported");
        return std::nullopt;
      }
      Warn("the bad-events query returned no series: counted as 0 bad events");
      e.bad = 0;
    } else {
      e.bad = good ? e.total - **part : **part;
    }
    e.bad = std::clamp(e.bad, 0.0, e.total);
    return e;
  }

  // Bad events per step ending at each of `ends` (ends[0] may close a shorter first step of
  // `first_ms`); totals likewise.
  absl::Status Steps(int64_t start_ms, int64_t end_ms, int64_t step_ms, std::vector<int64_t>* ends,
                     std::vector<double>* bad) {
    int64_t span = end_ms - start_ms;
    int64_t n = span / step_ms;
    int64_t partial = span - n * step_ms;
    ends->clear();
    bad->clear();
    if (partial > 0) {
      absl::StatusOr<std::optional<Events>> first = At(partial, start_ms + partial);
      if (!first.ok()) return first.status();
      ends->push_back(start_ms + partial);
      bad->push_back(first->has_value() ? (*first)->bad : 0);
    }
    if (n == 0) return absl::OkStatus();
    int64_t first_end = start_ms + partial + step_ms;
    absl::StatusOr<std::map<int64_t, double>> total =
        Range(slo_.total_query, step_ms, first_end, end_ms);
    if (!total.ok()) return total.status();
    bool good = !slo_.good_query.empty();
    absl::StatusOr<std::map<int64_t, double>> part =
        Range(good ? slo_.good_query : slo_.bad_query, step_ms, first_end, end_ms);
    if (!part.ok()) return part.status();
    for (int64_t t = first_end; t <= end_ms; t += step_ms) {
      ends->push_back(t);
      auto tot = total->find(t);
      auto p = part->find(t);
      double b = 0;
      if (tot != total->end()) {
        double pv = p != part->end() ? p->second : 0;
        b = good ? tot->second - pv : pv;
        b = std::clamp(b, 0.0, tot->second);
      }
      bad->push_back(b);
    }
    return absl::OkStatus();
  }

 private:
  void Warn(const std::string& w) {
    if (std::find(warnings_->begin(), warnings_->end(), w) == warnings_->end()) {
      warnings_->push_back(w);
    }
  }

  absl::StatusOr<std::optional<double>> Query(const std::string& tmpl, int64_t window_ms,
                                              int64_t t) {
    absl::StatusOr<std::string> q = EventsQuery(tmpl, window_ms, "increase");
    if (!q.ok()) return q.status();
    absl::StatusOr<promql::Value> v = source_.Instant(*q, t);
    if (!v.ok()) return v.status();
    return SumOf(*v);
  }

  absl::StatusOr<std::map<int64_t, double>> Range(const std::string& tmpl, int64_t window_ms,
                                                  int64_t start, int64_t end) {
    absl::StatusOr<std::string> q = EventsQuery(tmpl, window_ms, "increase");
    if (!q.ok()) return q.status();
    absl::StatusOr<promql::Matrix> m = source_.Range(*q, start, end, window_ms);
    if (!m.ok()) return m.status();
    std::map<int64_t, double> sums;
    for (const auto& series : *m) {
      for (const Sample& s : series.samples) {
        if (!std::isnan(s.v)) sums[s.t] += s.v;
      }
    }
    return sums;
  }

  QuerySource& source_;
  const SloDefinition& slo_;
  std::vector<std::string>* warnings_;
};

}  // namespace

Budget ComputeBudget(double objective, const Events& events) {
  Budget b;
  b.sli = 1 - events.bad / events.total;
  b.budget_fraction = 1 - objective;
  b.budget_events = b.budget_fraction * events.total;
  b.consumed = events.bad / b.budget_events;
  b.remaining = 1 - b.consumed;
  b.remaining_events = b.budget_events - events.bad;
  return b;
}

std::optional<double> BurnRate(double objective, const std::optional<Events>& events) {
  if (!events.has_value() || events->total <= 0) return std::nullopt;
  return (events->bad / events->total) / (1 - objective);
}

const std::vector<AlertRule>& MultiWindowAlerts() {
  static const std::vector<AlertRule> kRules = {
      {"page-1h", "page", 14.4, kHour, 5 * kMinute},
      {"page-6h", "page", 6, 6 * kHour, 30 * kMinute},
      {"ticket-1d", "ticket", 3, kDay, 2 * kHour},
      {"ticket-3d", "ticket", 1, 3 * kDay, 6 * kHour},
  };
  return kRules;
}

const std::vector<int64_t>& BurnRateWindows() {
  static const std::vector<int64_t> kWindows = {5 * kMinute, 30 * kMinute, kHour,   2 * kHour,
                                                6 * kHour,   kDay,         3 * kDay};
  return kWindows;
}

AlertState EvaluateAlert(const AlertRule& rule, std::optional<double> long_burn,
                         std::optional<double> short_burn) {
  AlertState s{rule, long_burn, short_burn, false};
  s.firing = long_burn.has_value() && short_burn.has_value() && *long_burn > rule.factor &&
             *short_burn > rule.factor;
  return s;
}

ExhaustionEstimate EstimateExhaustion(double remaining_events,
                                      const std::optional<Events>& last_hour) {
  if (remaining_events <= 0) return {Exhaustion::kExhausted, 0};
  if (!last_hour.has_value()) return {Exhaustion::kUnknown, 0};
  if (last_hour->bad <= 0) return {Exhaustion::kNotBurning, 0};
  double per_ms = last_hour->bad / static_cast<double>(kHour);
  double ms = remaining_events / per_ms;
  if (ms > 1e15) return {Exhaustion::kNotBurning, 0};
  return {Exhaustion::kAt, static_cast<int64_t>(std::llround(ms))};
}

std::vector<BudgetPoint> BurnDown(int64_t start_ms, const std::vector<int64_t>& step_ends,
                                  const std::vector<double>& bad_per_step, double budget_events) {
  std::vector<BudgetPoint> out;
  if (budget_events <= 0) return out;
  out.push_back({start_ms, 1.0});
  double cumulative = 0;
  for (size_t i = 0; i < step_ends.size() && i < bad_per_step.size(); ++i) {
    cumulative += bad_per_step[i];
    out.push_back({step_ends[i], 1 - cumulative / budget_events});
  }
  return out;
}

ReportWindow WindowFor(const SloDefinition& slo, int64_t eval_ms, bool calendar) {
  ReportWindow w;
  w.end_ms = eval_ms;
  w.calendar = calendar || slo.calendar_month;
  w.start_ms = w.calendar ? StartOfMonthUtc(eval_ms) : eval_ms - slo.window_ms;
  if (w.start_ms >= w.end_ms) w.start_ms = w.end_ms - kMinute;  // first instant of a month
  return w;
}

absl::StatusOr<SloReport> BuildReport(QuerySource& source, const SloDefinition& slo,
                                      const ReportOptions& options) {
  SloReport r;
  r.slo = slo;
  r.window = WindowFor(slo, options.eval_ms, options.calendar);
  int64_t window_ms = r.window.end_ms - r.window.start_ms;
  Fetcher fetch(source, slo, &r.warnings);

  absl::StatusOr<std::optional<Events>> whole = fetch.At(window_ms, r.window.end_ms);
  if (!whole.ok()) return whole.status();
  r.events = *whole;
  if (r.events.has_value()) r.budget = ComputeBudget(slo.objective, *r.events);

  std::map<int64_t, std::optional<double>> burn;
  std::optional<Events> last_hour;
  for (int64_t w : BurnRateWindows()) {
    absl::StatusOr<std::optional<Events>> e = fetch.At(w, r.window.end_ms);
    if (!e.ok()) return e.status();
    if (w == kHour) last_hour = *e;
    burn[w] = BurnRate(slo.objective, *e);
    r.burn_rates.push_back({w, false, burn[w]});
  }
  r.burn_rates.push_back({window_ms, true, BurnRate(slo.objective, r.events)});
  for (const AlertRule& rule : MultiWindowAlerts()) {
    r.alerts.push_back(EvaluateAlert(rule, burn[rule.long_ms], burn[rule.short_ms]));
  }
  if (!r.events.has_value()) {
    r.exhaustion = {Exhaustion::kUnknown, 0};
    return r;
  }
  r.exhaustion = EstimateExhaustion(r.budget.remaining_events, last_hour);

  std::vector<int64_t> ends;
  std::vector<double> bad;
  if (absl::Status s = fetch.Steps(r.window.start_ms, r.window.end_ms, kDay, &ends, &bad);
      !s.ok()) {
    return s;
  }
  r.daily = BurnDown(r.window.start_ms, ends, bad, r.budget.budget_events);
  int points = std::max(options.chart_points, 2);
  int64_t step = std::max<int64_t>(kMinute, (window_ms / points + kMinute - 1) / kMinute * kMinute);
  if (absl::Status s = fetch.Steps(r.window.start_ms, r.window.end_ms, step, &ends, &bad);
      !s.ok()) {
    return s;
  }
  r.chart = BurnDown(r.window.start_ms, ends, bad, r.budget.budget_events);
  return r;
}

}  // namespace tidemark::cli
