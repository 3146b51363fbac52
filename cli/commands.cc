#include "cli/commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/query_output.h"
#include "cli/query_source.h"
#include "cli/slo.h"
#include "cli/slo_render.h"
#include "cli/slo_report.h"
#include "cli/slo_rules.h"
#include "cli/time_args.h"

namespace tidemark::cli {

struct SourceFlags {
  std::string server;
  std::string token;
  std::string token_file;
  std::string tenant;
  std::string storage_path;
  int timeout_seconds = 120;
};

struct Commands::Flags {
  SourceFlags source;
  std::string format = "table";
  std::string time, start, end, step;
  std::string expr;
  std::string match;
  std::string name;
  std::string slo_file;
  std::string chart;
  bool calendar = false;
  bool fail_on_exhausted = false;

  CLI::App* query = nullptr;
  CLI::App* labels = nullptr;
  CLI::App* label_values = nullptr;
  CLI::App* series = nullptr;
  CLI::App* slo = nullptr;
  CLI::App* slo_report = nullptr;
  CLI::App* slo_rules = nullptr;
};

namespace {

int Fail(const std::string& command, const absl::Status& s) {
  std::fprintf(stderr, "tidemark %s: %s\n", command.c_str(), std::string(s.message()).c_str());
  return 1;
}

void AddSourceFlags(CLI::App* cmd, SourceFlags* f) {
  cmd->add_option("--server", f->server,
                  "Prometheus-compatible HTTP API to query, e.g. http://127.0.0.1:9201");
  cmd->add_option("--token", f->token, "Bearer token for --server");
  cmd->add_option("--token-file", f->token_file, "File holding the bearer token for --server");
  cmd->add_option("--tenant", f->tenant, "Tenant (sent as X-Scope-OrgID; embedded: the tenant)");
  cmd->add_option("--storage.path", f->storage_path,
                  "Tidemark data directory to read directly (read-only; a server may be running)");
  cmd->add_option("--timeout", f->timeout_seconds, "HTTP timeout in seconds (default 120)");
}

absl::StatusOr<std::unique_ptr<QuerySource>> OpenSource(const SourceFlags& f) {
  if (f.server.empty() == f.storage_path.empty()) {
    return absl::InvalidArgumentError("give exactly one of --server URL and --storage.path DIR");
  }
  if (!f.storage_path.empty()) {
    return NewEmbeddedSource({.path = f.storage_path, .tenant = f.tenant});
  }
  HttpSourceOptions o;
  o.url = f.server;
  o.tenant = f.tenant;
  o.timeout_seconds = f.timeout_seconds;
  o.token = f.token;
  if (!f.token_file.empty()) {
    if (!f.token.empty())
      return absl::InvalidArgumentError("give --token or --token-file, not both");
    std::ifstream in(f.token_file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read --token-file ", f.token_file));
    std::stringstream ss;
    ss << in.rdbuf();
    o.token = ss.str();
    absl::StripAsciiWhitespace(&o.token);
  }
  return NewHttpSource(o);
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

absl::StatusOr<int64_t> TimeOr(const std::string& text, int64_t fallback, int64_t now) {
  if (text.empty()) return fallback;
  return ParseTimeArg(text, now);
}

int RunQuery(const Commands::Flags& f) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(f.format);
  if (!format.ok()) return Fail("query", format.status());
  int64_t now = NowMs();
  bool range = !f.start.empty() || !f.end.empty() || !f.step.empty();
  if (range && !f.time.empty()) {
    return Fail("query", absl::InvalidArgumentError("--time is for instant queries; a range "
                                                    "query takes --start, --end and --step"));
  }
  absl::StatusOr<std::unique_ptr<QuerySource>> source = OpenSource(f.source);
  if (!source.ok()) return Fail("query", source.status());
  if (!range) {
    absl::StatusOr<int64_t> t = TimeOr(f.time, now, now);
    if (!t.ok()) return Fail("query", t.status());
    absl::StatusOr<promql::Value> v = (*source)->Instant(f.expr, *t);
    if (!v.ok()) return Fail("query", v.status());
    std::cout << RenderValue(*v, *format);
    return 0;
  }
  absl::StatusOr<int64_t> end = TimeOr(f.end, now, now);
  if (!end.ok()) return Fail("query", end.status());
  absl::StatusOr<int64_t> start = TimeOr(f.start, *end - 3600 * 1000, now);
  if (!start.ok()) return Fail("query", start.status());
  int64_t default_step = std::max<int64_t>(1000, (*end - *start) / 250 / 1000 * 1000);
  absl::StatusOr<int64_t> step =
      f.step.empty() ? absl::StatusOr<int64_t>(default_step) : ParseDurationArg(f.step);
  if (!step.ok()) return Fail("query", step.status());
  if (*end < *start) return Fail("query", absl::InvalidArgumentError("--end is before --start"));
  absl::StatusOr<promql::Matrix> m = (*source)->Range(f.expr, *start, *end, *step);
  if (!m.ok()) return Fail("query", m.status());
  std::cout << RenderValue(promql::Value(std::move(*m)), *format);
  return 0;
}

int RunMetadata(const Commands::Flags& f, const std::string& command) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(f.format);
  if (!format.ok()) return Fail(command, format.status());
  int64_t now = NowMs();
  absl::StatusOr<int64_t> end = TimeOr(f.end, now, now);
  if (!end.ok()) return Fail(command, end.status());
  absl::StatusOr<int64_t> start = TimeOr(f.start, 0, now);
  if (!start.ok()) return Fail(command, start.status());
  absl::StatusOr<std::unique_ptr<QuerySource>> source = OpenSource(f.source);
  if (!source.ok()) return Fail(command, source.status());
  if (command == "series") {
    absl::StatusOr<std::vector<Labels>> series = (*source)->Series(f.match, *start, *end);
    if (!series.ok()) return Fail(command, series.status());
    std::cout << RenderSeries(*series, *format);
    return 0;
  }
  absl::StatusOr<std::vector<std::string>> items =
      command == "labels" ? (*source)->LabelNames(f.match, *start, *end)
                          : (*source)->LabelValues(f.name, f.match, *start, *end);
  if (!items.ok()) return Fail(command, items.status());
  std::cout << RenderStrings(*items, *format);
  return 0;
}

int RunSloReport(const Commands::Flags& f) {
  const std::string cmd = "slo report";
  const std::string format = f.format == "md" ? "markdown" : f.format;
  if (format != "table" && format != "markdown" && format != "json") {
    return Fail(cmd, absl::InvalidArgumentError(absl::StrCat(
                         "--format ", f.format, ": expected table, markdown (md) or json")));
  }
  absl::StatusOr<std::vector<SloDefinition>> slos = LoadSloFile(f.slo_file);
  if (!slos.ok()) return Fail(cmd, slos.status());
  int64_t now = NowMs();
  absl::StatusOr<int64_t> t = TimeOr(f.time, now, now);
  if (!t.ok()) return Fail(cmd, t.status());
  absl::StatusOr<std::unique_ptr<QuerySource>> source = OpenSource(f.source);
  if (!source.ok()) return Fail(cmd, source.status());
  ReportOptions options;
  options.eval_ms = *t;
  options.calendar = f.calendar;
  std::vector<SloReport> reports;
  for (const SloDefinition& slo : *slos) {
    absl::StatusOr<SloReport> r = BuildReport(**source, slo, options);
    if (!r.ok()) {
      return Fail(cmd,
                  absl::Status(r.status().code(),
                               absl::StrCat("SLO ", slo.name, " (", slo.origin, ") from ",
                                            (*source)->Describe(), ": ", r.status().message())));
    }
    reports.push_back(std::move(*r));
  }
  if (format == "json")
    std::cout << RenderReportJson(reports);
  else if (format == "markdown")
    std::cout << RenderReportMarkdown(reports);
  else
    std::cout << RenderReportTable(reports);
  std::cout.flush();
  if (!f.chart.empty()) {
    std::ofstream out(f.chart, std::ios::binary | std::ios::trunc);
    out << RenderReportSvg(reports);
    out.close();
    if (!out) return Fail(cmd, absl::InternalError(absl::StrCat("cannot write --chart ", f.chart)));
  }
  if (f.fail_on_exhausted) {
    for (const SloReport& r : reports) {
      if (r.exhausted()) {
        std::fprintf(stderr, "tidemark slo report: error budget of %s is exhausted\n",
                     r.slo.name.c_str());
        return kExitExhausted;
      }
    }
  }
  return 0;
}

int RunSloRules(const Commands::Flags& f) {
  absl::StatusOr<std::vector<SloDefinition>> slos = LoadSloFile(f.slo_file);
  if (!slos.ok()) return Fail("slo rules", slos.status());
  absl::StatusOr<std::string> rules = RenderRules(*slos);
  if (!rules.ok()) return Fail("slo rules", rules.status());
  std::cout << *rules;
  return 0;
}

}  // namespace

Commands::Commands(CLI::App& app) : flags_(std::make_unique<Flags>()) {
  Flags& f = *flags_;
  const char* kFormatHelp = "Output: table | json | csv (default table)";

  f.query = app.add_subcommand("query",
                               "Run a PromQL query (instant, or range with --start/--end/--step).");
  f.query->add_option("expr", f.expr, "PromQL expression")->required();
  f.query->add_option("--time", f.time, "Instant query time: RFC3339, Unix seconds, now, now-1h");
  f.query->add_option("--start", f.start, "Range query start (default end - 1h)");
  f.query->add_option("--end", f.end, "Range query end (default now)");
  f.query->add_option("--step", f.step, "Range query step, e.g. 15s, 1m (default range/250)");
  f.query->add_option("--format", f.format, kFormatHelp);
  AddSourceFlags(f.query, &f.source);

  f.labels = app.add_subcommand("labels", "List label names.");
  f.labels->add_option("--match", f.match, "Only series matching this selector");
  f.labels->add_option("--start", f.start, "From (default: all time)");
  f.labels->add_option("--end", f.end, "To (default now)");
  f.labels->add_option("--format", f.format, kFormatHelp);
  AddSourceFlags(f.labels, &f.source);

  f.label_values = app.add_subcommand("label-values", "List the values of a label.");
  f.label_values->add_option("name", f.name, "Label name")->required();
  f.label_values->add_option("--match", f.match, "Only series matching this selector");
  f.label_values->add_option("--start", f.start, "From (default: all time)");
  f.label_values->add_option("--end", f.end, "To (default now)");
  f.label_values->add_option("--format", f.format, kFormatHelp);
  AddSourceFlags(f.label_values, &f.source);

  f.series = app.add_subcommand("series", "List the series matching a selector.");
  f.series->add_option("selector", f.match, "Series selector, e.g. up{job=\"api\"}")->required();
  f.series->add_option("--start", f.start, "From (default: all time)");
  f.series->add_option("--end", f.end, "To (default now)");
  f.series->add_option("--format", f.format, kFormatHelp);
  AddSourceFlags(f.series, &f.source);

  f.slo = app.add_subcommand("slo", "Service level objectives: reports and rules.");
  f.slo->require_subcommand(1);
  f.slo_report = f.slo->add_subcommand(
      "report", "Error budgets, burn rates and alerts of the SLOs of an OpenSLO or Sloth file.");
  f.slo_report->add_option("--file", f.slo_file, "SLO file (OpenSLO v1 or Sloth prometheus/v1)")
      ->required();
  f.slo_report->add_option("--time", f.time, "Report time (default now)");
  f.slo_report->add_flag("--calendar", f.calendar,
                         "Use the calendar month so far (UTC) instead of the rolling window");
  f.slo_report->add_option("--format", f.format,
                           "Output: table | markdown (md) | json (default table)");
  f.slo_report->add_option("--chart", f.chart, "Also write an SVG burn-down chart to this file");
  f.slo_report->add_flag("--fail-on-exhausted", f.fail_on_exhausted,
                         "Exit with status 3 when an SLO has no error budget left");
  AddSourceFlags(f.slo_report, &f.source);
  f.slo_rules = f.slo->add_subcommand(
      "rules", "Print Prometheus recording and multiwindow burn-rate alerting rules.");
  f.slo_rules->add_option("--file", f.slo_file, "SLO file (OpenSLO v1 or Sloth prometheus/v1)")
      ->required();
}

Commands::~Commands() = default;

std::optional<int> Commands::Run() {
  const Flags& f = *flags_;
  if (f.query->parsed()) return RunQuery(f);
  if (f.labels->parsed()) return RunMetadata(f, "labels");
  if (f.label_values->parsed()) return RunMetadata(f, "label-values");
  if (f.series->parsed()) return RunMetadata(f, "series");
  if (f.slo_report->parsed()) return RunSloReport(f);
  if (f.slo_rules->parsed()) return RunSloRules(f);
  return std::nullopt;
}

}  // namespace tidemark::cli
