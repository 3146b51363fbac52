#include "cli/slo_render.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/query_output.h"
#include "cli/time_args.h"
#include "query/parser.h"

namespace tidemark::cli {
namespace {

using nlohmann::json;

std::string WindowName(const SloReport& r) {
  if (r.window.calendar) return "calendar month";
  return absl::StrCat(promql::FormatDuration(r.slo.window_ms), " rolling");
}

std::string Count(double v) {
  if (std::fabs(v - std::round(v)) < 1e-9 && std::fabs(v) < 1e15) {
    return absl::StrFormat("%.0f", v);
  }
  return absl::StrFormat("%.1f", v);
}

std::string Burn(const std::optional<double>& b) {
  return b.has_value() ? absl::StrFormat("%.2fx", *b) : "no data";
}

std::string BurnLabel(const BurnRateAt& b) {
  return b.whole_window ? "window" : promql::FormatDuration(b.window_ms);
}

std::string ExhaustionText(const SloReport& r) {
  switch (r.exhaustion.kind) {
    case Exhaustion::kExhausted:
      return "exhausted";
    case Exhaustion::kNotBurning:
      return "not burning";
    case Exhaustion::kAt:
      return absl::StrCat("in ", FormatHumanDuration(r.exhaustion.in_ms));
    case Exhaustion::kUnknown:
      break;
  }
  return "no data";
}

std::string Status(const SloReport& r) {
  if (!r.has_data()) return "NO DATA";
  if (r.exhausted()) return "EXHAUSTED";
  for (const AlertState& a : r.alerts) {
    if (a.firing) return "BURNING";
  }
  return "OK";
}

std::string FiringAlerts(const SloReport& r) {
  std::vector<std::string> names;
  for (const AlertState& a : r.alerts) {
    if (a.firing) {
      names.push_back(absl::StrFormat("%s %gx %s&%s", a.rule.severity, a.rule.factor,
                                      promql::FormatDuration(a.rule.long_ms),
                                      promql::FormatDuration(a.rule.short_ms)));
    }
  }
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

json Nullable(const std::optional<double>& v) {
  return v.has_value() && std::isfinite(*v) ? json(*v) : json(nullptr);
}

std::string DateOf(int64_t ms) { return FormatTimeRfc3339(ms).substr(0, 10); }

}  // namespace

std::string Percent(double fraction, int decimals) {
  std::string s = absl::StrFormat("%.*f", decimals, fraction * 100);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s + "%";
}

std::string Sparkline(const std::vector<BudgetPoint>& points) {
  static const char* kBlocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::string out;
  // The first point is the window start (always 1): one character per day after it.
  for (size_t i = points.size() > 1 ? 1 : 0; i < points.size(); ++i) {
    double r = points[i].remaining;
    if (!(r > 0)) {
      out += "·";
      continue;
    }
    int level = static_cast<int>(std::ceil(std::min(r, 1.0) * 8)) - 1;
    out += kBlocks[std::clamp(level, 0, 7)];
  }
  return out;
}

std::string RenderReportTable(const std::vector<SloReport>& reports) {
  std::vector<std::vector<std::string>> rows{
      {"SLO", "OBJECTIVE", "WINDOW", "SLI", "BUDGET LEFT", "BURN 1h", "EXHAUSTION", "STATUS"}};
  for (const SloReport& r : reports) {
    std::optional<double> burn1h;
    for (const BurnRateAt& b : r.burn_rates) {
      if (!b.whole_window && b.window_ms == 3600 * 1000) burn1h = b.burn_rate;
    }
    rows.push_back({r.slo.name, Percent(r.slo.objective), WindowName(r),
                    r.has_data() ? Percent(r.budget.sli) : "no data",
                    r.has_data() ? Percent(r.budget.remaining, 2) : "no data", Burn(burn1h),
                    ExhaustionText(r), Status(r)});
  }
  std::string out = AlignTable(rows);
  for (const SloReport& r : reports) {
    out += "\n";
    out += absl::StrCat(r.slo.name, r.slo.service.empty() ? "" : " (service " + r.slo.service + ")",
                        ": objective ", Percent(r.slo.objective), " over ", WindowName(r), ", ",
                        FormatTimeRfc3339(r.window.start_ms), " .. ",
                        FormatTimeRfc3339(r.window.end_ms), "\n");
    if (!r.has_data()) {
      out += "  no data: the total-events query returned nothing over the window\n";
    } else {
      out += absl::StrCat("  SLI achieved   ", Percent(r.budget.sli), "  (", Count(r.events->bad),
                          " bad of ", Count(r.events->total), " events)\n");
      out += absl::StrCat("  error budget   ", Percent(r.budget.budget_fraction), " = ",
                          Count(r.budget.budget_events), " bad events; consumed ",
                          Percent(r.budget.consumed, 2), ", remaining ",
                          Percent(r.budget.remaining, 2), " (", Count(r.budget.remaining_events),
                          " events)\n");
    }
    std::vector<std::string> burns;
    for (const BurnRateAt& b : r.burn_rates) {
      burns.push_back(absl::StrCat(BurnLabel(b), " ", Burn(b.burn_rate)));
    }
    out += absl::StrCat("  burn rate      ", absl::StrJoin(burns, "  "), "\n");
    out += absl::StrCat("  alerts firing  ", FiringAlerts(r), "\n");
    out += absl::StrCat("  exhaustion     ", ExhaustionText(r),
                        r.exhaustion.kind == Exhaustion::kAt ? " at the last hour's burn rate" : "",
                        "\n");
    if (!r.daily.empty()) {
      out +=
          absl::StrCat("  budget by day  ", Sparkline(r.daily), "  ", DateOf(r.window.start_ms),
                       " .. ", DateOf(r.window.end_ms), ", ", Percent(r.daily.front().remaining, 0),
                       " -> ", Percent(r.daily.back().remaining, 1), "\n");
    }
    for (const std::string& w : r.warnings) out += absl::StrCat("  warning: ", w, "\n");
  }
  return out;
}

std::string RenderReportMarkdown(const std::vector<SloReport>& reports) {
  std::string out =
      "| SLO | Objective | Window | SLI | Budget remaining | Burn 1h | Burn 6h | Burn window | "
      "Alerts firing | Exhaustion | Budget by day |\n"
      "|---|---:|---|---:|---:|---:|---:|---:|---|---|---|\n";
  for (const SloReport& r : reports) {
    std::optional<double> b1h, b6h, bw;
    for (const BurnRateAt& b : r.burn_rates) {
      if (b.whole_window)
        bw = b.burn_rate;
      else if (b.window_ms == 3600 * 1000)
        b1h = b.burn_rate;
      else if (b.window_ms == 6 * 3600 * 1000)
        b6h = b.burn_rate;
    }
    std::string status = Status(r);
    out +=
        absl::StrCat("| ", r.slo.name, " | ", Percent(r.slo.objective), " | ", WindowName(r), " | ",
                     r.has_data() ? Percent(r.budget.sli) : "no data", " | ",
                     r.has_data() ? Percent(r.budget.remaining, 2) : "no data",
                     status == "EXHAUSTED" ? " **exhausted**" : "", " | ", Burn(b1h), " | ",
                     Burn(b6h), " | ", Burn(bw), " | ", FiringAlerts(r), " | ", ExhaustionText(r),
                     " | `", r.daily.empty() ? "" : Sparkline(r.daily), "` |\n");
  }
  for (const SloReport& r : reports) {
    for (const std::string& w : r.warnings) out += absl::StrCat("\n> ", r.slo.name, ": ", w, "\n");
  }
  return out;
}

std::string RenderReportJson(const std::vector<SloReport>& reports) {
  json slos = json::array();
  for (const SloReport& r : reports) {
    json j;
    j["name"] = r.slo.name;
    j["service"] = r.slo.service;
    j["objective"] = r.slo.objective;
    j["window"] = {{"start", FormatTimeRfc3339(r.window.start_ms)},
                   {"end", FormatTimeRfc3339(r.window.end_ms)},
                   {"seconds", (r.window.end_ms - r.window.start_ms) / 1000},
                   {"calendar", r.window.calendar}};
    j["status"] = Status(r) == "NO DATA" ? "no data" : absl::AsciiStrToLower(Status(r));
    j["has_data"] = r.has_data();
    if (r.has_data()) {
      j["total_events"] = r.events->total;
      j["bad_events"] = r.events->bad;
      j["sli"] = r.budget.sli;
      j["error_budget"] = {{"fraction", r.budget.budget_fraction},
                           {"events", r.budget.budget_events},
                           {"consumed", r.budget.consumed},
                           {"remaining", r.budget.remaining},
                           {"remaining_events", r.budget.remaining_events}};
    } else {
      j["total_events"] = nullptr;
      j["bad_events"] = nullptr;
      j["sli"] = nullptr;
      j["error_budget"] = nullptr;
    }
    json burns = json::object();
    for (const BurnRateAt& b : r.burn_rates) burns[BurnLabel(b)] = Nullable(b.burn_rate);
    j["burn_rates"] = burns;
    json alerts = json::array();
    for (const AlertState& a : r.alerts) {
      alerts.push_back({{"name", a.rule.name},
                        {"severity", a.rule.severity},
                        {"factor", a.rule.factor},
                        {"long_window", promql::FormatDuration(a.rule.long_ms)},
                        {"short_window", promql::FormatDuration(a.rule.short_ms)},
                        {"long_burn_rate", Nullable(a.long_burn)},
                        {"short_burn_rate", Nullable(a.short_burn)},
                        {"firing", a.firing}});
    }
    j["alerts"] = alerts;
    j["exhaustion"] = ExhaustionText(r);
    j["time_to_exhaustion_seconds"] = r.exhaustion.kind == Exhaustion::kAt
                                          ? json(r.exhaustion.in_ms / 1000.0)
                                      : r.exhaustion.kind == Exhaustion::kExhausted ? json(0)
                                                                                    : json(nullptr);
    json daily = json::array();
    for (const BudgetPoint& p : r.daily) {
      daily.push_back({{"time", FormatTimeRfc3339(p.t_ms)}, {"remaining", p.remaining}});
    }
    j["daily_remaining"] = daily;
    j["warnings"] = r.warnings;
    slos.push_back(j);
  }
  return json{{"slos", slos}}.dump(2) + "\n";
}

std::string RenderReportSvg(const std::vector<SloReport>& reports) {
  constexpr double kWidth = 800, kPanel = 320, kLeft = 70, kRight = 20, kTop = 40, kBottom = 50;
  double height = kPanel * std::max<size_t>(reports.size(), 1);
  std::string out = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 "
      "%.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      kWidth, height, kWidth, height);
  for (size_t i = 0; i < reports.size(); ++i) {
    const SloReport& r = reports[i];
    double y0 = kPanel * i;
    double plot_w = kWidth - kLeft - kRight, plot_h = kPanel - kTop - kBottom;
    double lo = 0, hi = 1;
    for (const BudgetPoint& p : r.chart) lo = std::min(lo, p.remaining);
    lo = std::floor(lo * 4) / 4;  // quarter steps
    int64_t t0 = r.window.start_ms, t1 = r.window.end_ms;
    auto x = [&](int64_t t) {
      return kLeft + plot_w * static_cast<double>(t - t0) /
                         static_cast<double>(std::max<int64_t>(t1 - t0, 1));
    };
    auto y = [&](double v) { return y0 + kTop + plot_h * (hi - v) / (hi - lo); };
    out +=
        absl::StrFormat("<g class=\"slo\" id=\"slo-%d\" data-slo=\"%s\">\n", i, Escape(r.slo.name));
    out += absl::StrFormat(
        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\">%s: error budget "
        "remaining (objective %s, %s)</text>\n",
        kLeft, y0 + 24, Escape(r.slo.name), Percent(r.slo.objective), Escape(WindowName(r)));
    // Grid and y ticks every 25%.
    for (double v = lo; v <= hi + 1e-9; v += 0.25) {
      out += absl::StrFormat(
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
          kLeft, y(v), kLeft + plot_w, y(v), kLeft - 6, y(v) + 4, Percent(v, 0));
    }
    // X ticks: start, quarters, end dates.
    for (int k = 0; k <= 4; ++k) {
      int64_t t = t0 + (t1 - t0) * k / 4;
      out += absl::StrFormat("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">%s</text>\n", x(t),
                             y0 + kTop + plot_h + 18,
                             k == 0   ? "start"
                             : k == 4 ? "end"
                                      : "middle",
                             DateOf(t));
    }
    out += absl::StrFormat(
        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
        "stroke=\"#888\"/>\n",
        kLeft, y0 + kTop, plot_w, plot_h);
    out += absl::StrFormat(
        "<line class=\"zero\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" "
        "stroke-width=\"1\"/>\n",
        kLeft, y(0), kLeft + plot_w, y(0));
    // The objective's pace: burning at exactly 1x spends the whole budget by the window end.
    out += absl::StrFormat(
        "<line class=\"objective\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
        "stroke=\"#888\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
        x(t0), y(1), x(t1), y(0));
    if (r.chart.empty()) {
      // In the lower-left corner: the objective line runs from the top-left to the bottom-right
      // corner (lo is 0 without data), so it passes above text there that is shorter than about
      // 80% of the plot's width (this is ~60%).
      out += absl::StrFormat(
          "<text class=\"nodata\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"start\" font-size=\"14\" "
          "fill=\"#c00\">no data: the total-events query returned nothing</text>\n",
          kLeft + 12, y0 + kTop + plot_h - 14);
    } else {
      std::string points;
      for (const BudgetPoint& p : r.chart) {
        absl::StrAppend(&points, absl::StrFormat("%.1f,%.1f ", x(p.t_ms), y(p.remaining)));
      }
      points.pop_back();
      out += absl::StrFormat(
          "<polyline class=\"remaining\" points=\"%s\" fill=\"none\" stroke=\"#1f77b4\" "
          "stroke-width=\"2\"/>\n",
          points);
    }
    // Legend.
    double ly = y0 + kPanel - 12;
    out += absl::StrFormat(
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" "
        "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\">budget remaining</text>\n"
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" "
        "stroke-dasharray=\"6 4\" stroke-width=\"1.5\"/><text x=\"%.1f\" y=\"%.1f\">objective "
        "pace (1x burn)</text>\n",
        kLeft, ly - 4, kLeft + 24, ly - 4, kLeft + 30, ly, kLeft + 170, ly - 4, kLeft + 194, ly - 4,
        kLeft + 200, ly);
    out += "</g>\n";
  }
  out += "</svg>\n";
  return out;
}

}  // namespace tidemark::cli
