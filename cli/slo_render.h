// Renderings of SLO reports: a terminal table with a per-day sparkline of the remaining budget,
// Markdown, JSON (the stable machine format, documented in docs/cli.md), and an SVG burn-down
// chart. Pure functions; thread-safe.
#ifndef TIDEMARK_CLI_SLO_RENDER_H_
#define TIDEMARK_CLI_SLO_RENDER_H_

#include <string>
#include <vector>

#include "cli/slo_report.h"

namespace tidemark::cli {

// One block character per point: ▁..█ for a remaining budget in (0, 1] (eighths), `·` once the
// budget is gone (<= 0).
std::string Sparkline(const std::vector<BudgetPoint>& points);

std::string RenderReportTable(const std::vector<SloReport>& reports);
std::string RenderReportMarkdown(const std::vector<SloReport>& reports);
std::string RenderReportJson(const std::vector<SloReport>& reports);
// A self-contained SVG: one panel per SLO with the remaining budget over the window (polyline
// class "remaining"), the objective's pace (a 1x burn, line class "objective") and zero.
std::string RenderReportSvg(const std::vector<SloReport>& reports);

// "99.9%", "-88.6%": a fraction as a percentage with up to `decimals` decimals, trailing zeros
// removed.
std::string Percent(double fraction, int decimals = 4);

}  // namespace tidemark::cli

#endif  // TIDEMARK_CLI_SLO_RENDER_H_
