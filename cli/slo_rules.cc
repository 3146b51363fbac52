#include "cli/slo_rules.h"

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/slo_report.h"
#include "query/parser.h"

namespace tidemark::cli {
namespace {

// Prometheus metric names cannot hold '-' or '/': the SLO name goes into a label instead, and
// the alert name is CamelCased from it.
std::string AlertName(const std::string& slo) {
  std::string out;
  bool upper = true;
  for (char c : slo) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out += upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
      upper = false;
    } else {
      upper = true;
    }
  }
  return out + "ErrorBudgetBurn";
}

std::string Quote(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string RecordName(int64_t window_ms) {
  return absl::StrCat("slo:sli_error:ratio_rate", promql::FormatDuration(window_ms));
}

absl::StatusOr<std::string> ErrorRatio(const SloDefinition& slo, int64_t window_ms) {
  absl::StatusOr<std::string> total = EventsQuery(slo.total_query, window_ms, "rate");
  if (!total.ok()) return total.status();
  if (!slo.bad_query.empty()) {
    absl::StatusOr<std::string> bad = EventsQuery(slo.bad_query, window_ms, "rate");
    if (!bad.ok()) return bad.status();
    return absl::StrCat("(", *bad, ") / (", *total, ")");
  }
  absl::StatusOr<std::string> good = EventsQuery(slo.good_query, window_ms, "rate");
  if (!good.ok()) return good.status();
  return absl::StrCat("1 - ((", *good, ") / (", *total, "))");
}

}  // namespace

absl::StatusOr<std::string> RenderRules(const std::vector<SloDefinition>& slos) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "groups" << YAML::Value << YAML::BeginSeq;
  for (const SloDefinition& slo : slos) {
    std::string selector = absl::StrCat("{slo=", Quote(slo.name), "}");
    std::string budget = absl::StrFormat("%.10g", 1 - slo.objective);
    std::vector<int64_t> windows = BurnRateWindows();
    if (!slo.calendar_month) windows.push_back(slo.window_ms);

    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << absl::StrCat("slo-", slo.name);
    out << YAML::Key << "rules" << YAML::Value << YAML::BeginSeq;
    for (int64_t w : windows) {
      absl::StatusOr<std::string> expr = ErrorRatio(slo, w);
      if (!expr.ok()) return expr.status();
      out << YAML::BeginMap;
      out << YAML::Key << "record" << YAML::Value << RecordName(w);
      out << YAML::Key << "expr" << YAML::Value << *expr;
      out << YAML::Key << "labels" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "slo" << YAML::Value << slo.name;
      if (!slo.service.empty()) out << YAML::Key << "service" << YAML::Value << slo.service;
      out << YAML::EndMap << YAML::EndMap;
    }
    for (const char* severity : {"page", "ticket"}) {
      std::vector<std::string> clauses;
      for (const AlertRule& rule : MultiWindowAlerts()) {
        if (rule.severity != severity) continue;
        std::string threshold = absl::StrFormat("(%g * %s)", rule.factor, budget);
        clauses.push_back(absl::StrCat("(", RecordName(rule.long_ms), selector, " > ", threshold,
                                       " and ", RecordName(rule.short_ms), selector, " > ",
                                       threshold, ")"));
      }
      std::string expr;
      for (size_t i = 0; i < clauses.size(); ++i) {
        if (i > 0) expr += " or ";
        expr += clauses[i];
      }
      out << YAML::BeginMap;
      out << YAML::Key << "alert" << YAML::Value << AlertName(slo.name);
      out << YAML::Key << "expr" << YAML::Value << expr;
      out << YAML::Key << "labels" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "severity" << YAML::Value << severity;
      out << YAML::Key << "slo" << YAML::Value << slo.name;
      if (!slo.service.empty()) out << YAML::Key << "service" << YAML::Value << slo.service;
      out << YAML::EndMap;
      out << YAML::Key << "annotations" << YAML::Value << YAML::BeginMap;
      out << YAML::Key << "summary" << YAML::Value
          << absl::StrCat("SLO ", slo.name, " is burning its error budget too fast (",
                          std::string(severity) == "page" ? "14.4x over 1h or 6x over 6h"
                                                          : "3x over 1d or 1x over 3d",
                          ")");
      out << YAML::EndMap << YAML::EndMap;
    }
    out << YAML::EndSeq << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  if (!out.good()) return absl::InternalError(absl::StrCat("YAML emitter: ", out.GetLastError()));
  return std::string(out.c_str()) + "\n";
}

}  // namespace tidemark::cli
