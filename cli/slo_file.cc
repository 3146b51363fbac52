// SLO files: OpenSLO v1 and Sloth prometheus/v1 into SloDefinition; event-query templates.
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/slo.h"
#include "query/ast.h"
#include "query/parser.h"

namespace tidemark::cli {
namespace {

// Errors name the file, the line (from yaml-cpp's Mark) and the field path.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  absl::Status Error(const YAML::Node& at, const std::string& path, const std::string& msg) const {
    int line = at.IsDefined() && at.Mark().line >= 0 ? at.Mark().line + 1 : 0;
    return absl::InvalidArgumentError(
        absl::StrCat(file_, line > 0 ? absl::StrCat(":", line) : "", ": ", path, ": ", msg));
  }

  std::string Origin(const YAML::Node& at) const {
    return absl::StrCat(file_, ":", at.Mark().line + 1);
  }

  // A required map child.
  absl::StatusOr<YAML::Node> Map(const YAML::Node& parent, const std::string& key,
                                 const std::string& path) const {
    YAML::Node n = parent[key];
    if (!n.IsDefined() || n.IsNull()) return Error(parent, path, "missing");
    if (!n.IsMap()) return Error(n, path, "must be a mapping");
    return n;
  }

  absl::StatusOr<std::string> String(const YAML::Node& parent, const std::string& key,
                                     const std::string& path, bool required = true) const {
    YAML::Node n = parent[key];
    if (!n.IsDefined() || n.IsNull()) {
      if (required) return Error(parent, path, "missing");
      return std::string();
    }
    if (!n.IsScalar()) return Error(n, path, "must be a string");
    return n.Scalar();
  }

  absl::StatusOr<double> Number(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) return Error(n, path, "must be a number");
    try {
      return n.as<double>();
    } catch (const YAML::Exception&) {
      return Error(n, path, absl::StrCat("must be a number, got \"", n.Scalar(), "\""));
    }
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

std::string Lower(std::string s) {
  absl::AsciiStrToLower(&s);
  return s;
}

// A query of an OpenSLO metric: `<path>.metricSource.spec.query`, type Prometheus.
absl::StatusOr<std::string> OpenSloQuery(const Reader& r, const YAML::Node& metric,
                                         const std::string& path) {
  absl::StatusOr<YAML::Node> source = r.Map(metric, "metricSource", path + ".metricSource");
  if (!source.ok()) return source.status();
  absl::StatusOr<std::string> type = r.String(*source, "type", path + ".metricSource.type", false);
  if (!type.ok()) return type.status();
  if (!type->empty() && Lower(*type) != "prometheus") {
    return r.Error((*source)["type"], path + ".metricSource.type",
                   absl::StrCat("\"", *type, "\" is not supported (only Prometheus)"));
  }
  absl::StatusOr<YAML::Node> spec = r.Map(*source, "spec", path + ".metricSource.spec");
  if (!spec.ok()) return spec.status();
  absl::StatusOr<std::string> query = r.String(*spec, "query", path + ".metricSource.spec.query");
  if (!query.ok()) return query.status();
  if (absl::StatusOr<std::string> checked = EventsQuery(*query, 3600000, "increase");
      !checked.ok()) {
    return r.Error((*spec)["query"], path + ".metricSource.spec.query",
                   std::string(checked.status().message()));
  }
  return *query;
}

// Fills good/bad/total from an SLI spec (`ratioMetric`).
absl::Status OpenSloRatio(const Reader& r, const YAML::Node& sli_spec, const std::string& path,
                          SloDefinition* slo) {
  if (sli_spec["thresholdMetric"].IsDefined()) {
    return r.Error(sli_spec["thresholdMetric"], path + ".thresholdMetric",
                   "threshold indicators are not supported; use a ratioMetric (for latency: good "
                   "= a _bucket{le=\"...\"} counter, total = the _count counter)");
  }
  absl::StatusOr<YAML::Node> ratio = r.Map(sli_spec, "ratioMetric", path + ".ratioMetric");
  if (!ratio.ok()) return ratio.status();
  std::string rpath = path + ".ratioMetric";
  if ((*ratio)["counter"].IsDefined() && (*ratio)["counter"].IsScalar() &&
      Lower((*ratio)["counter"].Scalar()) == "false") {
    return r.Error((*ratio)["counter"], rpath + ".counter",
                   "only counters (counter: true) are supported");
  }
  if ((*ratio)["rawType"].IsDefined() || (*ratio)["raw"].IsDefined()) {
    return r.Error(*ratio, rpath, "raw ratios are not supported; give good or bad and total");
  }
  bool has_good = (*ratio)["good"].IsDefined(), has_bad = (*ratio)["bad"].IsDefined();
  if (has_good == has_bad) {
    return r.Error(*ratio, rpath, "needs exactly one of good and bad, and total");
  }
  const char* which = has_good ? "good" : "bad";
  absl::StatusOr<YAML::Node> m = r.Map(*ratio, which, rpath + "." + which);
  if (!m.ok()) return m.status();
  absl::StatusOr<std::string> q = OpenSloQuery(r, *m, rpath + "." + which);
  if (!q.ok()) return q.status();
  (has_good ? slo->good_query : slo->bad_query) = *q;
  absl::StatusOr<YAML::Node> total = r.Map(*ratio, "total", rpath + ".total");
  if (!total.ok()) return total.status();
  absl::StatusOr<std::string> tq = OpenSloQuery(r, *total, rpath + ".total");
  if (!tq.ok()) return tq.status();
  slo->total_query = *tq;
  return absl::OkStatus();
}

absl::Status OpenSloWindow(const Reader& r, const YAML::Node& spec, SloDefinition* slo) {
  YAML::Node windows = spec["timeWindow"];
  if (!windows.IsDefined() || windows.IsNull()) return absl::OkStatus();  // default 30d rolling
  if (!windows.IsSequence() || windows.size() != 1) {
    return r.Error(windows, "spec.timeWindow", "must be a list of exactly one window");
  }
  YAML::Node w = windows[0];
  if (!w.IsMap()) return r.Error(w, "spec.timeWindow[0]", "must be a mapping");
  absl::StatusOr<std::string> duration = r.String(w, "duration", "spec.timeWindow[0].duration");
  if (!duration.ok()) return duration.status();
  bool rolling = true;
  if (w["isRolling"].IsDefined()) {
    std::string v = Lower(w["isRolling"].Scalar());
    if (v != "true" && v != "false") {
      return r.Error(w["isRolling"], "spec.timeWindow[0].isRolling", "must be true or false");
    }
    rolling = v == "true";
  }
  if (!rolling) {
    if (*duration != "1M") {
      return r.Error(
          w["duration"], "spec.timeWindow[0].duration",
          absl::StrCat("calendar windows must be one month (1M), got \"", *duration, "\""));
    }
    slo->calendar_month = true;
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> ms = promql::ParseDuration(*duration);
  if (!ms.ok() || *ms <= 0) {
    return r.Error(w["duration"], "spec.timeWindow[0].duration",
                   absl::StrCat("not a duration: \"", *duration, "\" (use 28d, 4w, 30d, 1h)"));
  }
  slo->window_ms = *ms;
  return absl::OkStatus();
}

absl::Status OpenSloDocument(const Reader& r, const YAML::Node& doc,
                             const std::map<std::string, YAML::Node>& slis,
                             std::vector<SloDefinition>* out) {
  absl::StatusOr<YAML::Node> metadata = r.Map(doc, "metadata", "metadata");
  if (!metadata.ok()) return metadata.status();
  absl::StatusOr<std::string> name = r.String(*metadata, "name", "metadata.name");
  if (!name.ok()) return name.status();
  absl::StatusOr<YAML::Node> spec = r.Map(doc, "spec", "spec");
  if (!spec.ok()) return spec.status();
  SloDefinition base;
  base.name = *name;
  base.origin = r.Origin(doc);
  absl::StatusOr<std::string> service = r.String(*spec, "service", "spec.service", false);
  if (!service.ok()) return service.status();
  base.service = *service;
  absl::StatusOr<std::string> description =
      r.String(*spec, "description", "spec.description", false);
  if (!description.ok()) return description.status();
  base.description = *description;
  absl::StatusOr<std::string> method =
      r.String(*spec, "budgetingMethod", "spec.budgetingMethod", false);
  if (!method.ok()) return method.status();
  if (!method->empty() && *method != "Occurrences") {
    return r.Error((*spec)["budgetingMethod"], "spec.budgetingMethod",
                   absl::StrCat("\"", *method, "\" is not supported (only Occurrences)"));
  }
  if (absl::Status s = OpenSloWindow(r, *spec, &base); !s.ok()) return s;

  if ((*spec)["indicator"].IsDefined()) {
    absl::StatusOr<YAML::Node> indicator = r.Map(*spec, "indicator", "spec.indicator");
    if (!indicator.ok()) return indicator.status();
    // Inline indicator: its own metadata and spec, or (leniently) the ratio directly.
    if ((*indicator)["spec"].IsDefined()) {
      absl::StatusOr<YAML::Node> ispec = r.Map(*indicator, "spec", "spec.indicator.spec");
      if (!ispec.ok()) return ispec.status();
      if (absl::Status s = OpenSloRatio(r, *ispec, "spec.indicator.spec", &base); !s.ok()) return s;
    } else if (absl::Status s = OpenSloRatio(r, *indicator, "spec.indicator", &base); !s.ok()) {
      return s;
    }
  } else if ((*spec)["indicatorRef"].IsDefined()) {
    absl::StatusOr<std::string> ref = r.String(*spec, "indicatorRef", "spec.indicatorRef");
    if (!ref.ok()) return ref.status();
    auto it = slis.find(*ref);
    if (it == slis.end()) {
      return r.Error((*spec)["indicatorRef"], "spec.indicatorRef",
                     absl::StrCat("no kind: SLI named \"", *ref, "\" in this file"));
    }
    absl::StatusOr<YAML::Node> ispec = r.Map(it->second, "spec", "spec");
    if (!ispec.ok()) return ispec.status();
    if (absl::Status s = OpenSloRatio(r, *ispec, absl::StrCat("SLI ", *ref, ": spec"), &base);
        !s.ok()) {
      return s;
    }
  } else {
    return r.Error(*spec, "spec", "needs indicator or indicatorRef");
  }

  YAML::Node objectives = (*spec)["objectives"];
  if (!objectives.IsDefined() || !objectives.IsSequence() || objectives.size() == 0) {
    return r.Error(objectives.IsDefined() ? objectives : *spec, "spec.objectives",
                   "must be a non-empty list");
  }
  for (size_t i = 0; i < objectives.size(); ++i) {
    std::string path = absl::StrCat("spec.objectives[", i, "]");
    YAML::Node o = objectives[i];
    if (!o.IsMap()) return r.Error(o, path, "must be a mapping");
    SloDefinition slo = base;
    if (o["target"].IsDefined()) {
      absl::StatusOr<double> t = r.Number(o["target"], path + ".target");
      if (!t.ok()) return t.status();
      slo.objective = *t;
    } else if (o["targetPercent"].IsDefined()) {
      absl::StatusOr<double> t = r.Number(o["targetPercent"], path + ".targetPercent");
      if (!t.ok()) return t.status();
      slo.objective = *t / 100;
    } else {
      return r.Error(o, path + ".target", "missing");
    }
    if (!(slo.objective > 0 && slo.objective < 1)) {
      return r.Error(
          o["target"].IsDefined() ? o["target"] : o["targetPercent"], path + ".target",
          absl::StrCat("must be between 0 and 1 exclusive (e.g. 0.999), got ", slo.objective));
    }
    if (objectives.size() > 1) {
      std::string label = o["displayName"].IsDefined() && o["displayName"].IsScalar()
                              ? o["displayName"].Scalar()
                              : absl::StrCat(i);
      slo.name = absl::StrCat(base.name, "/", label);
    }
    out->push_back(std::move(slo));
  }
  return absl::OkStatus();
}

absl::Status SlothDocument(const Reader& r, const YAML::Node& doc,
                           std::vector<SloDefinition>* out) {
  absl::StatusOr<std::string> service = r.String(doc, "service", "service");
  if (!service.ok()) return service.status();
  YAML::Node slos = doc["slos"];
  if (!slos.IsDefined() || !slos.IsSequence() || slos.size() == 0) {
    return r.Error(slos.IsDefined() ? slos : doc, "slos", "must be a non-empty list");
  }
  for (size_t i = 0; i < slos.size(); ++i) {
    std::string path = absl::StrCat("slos[", i, "]");
    YAML::Node s = slos[i];
    if (!s.IsMap()) return r.Error(s, path, "must be a mapping");
    SloDefinition slo;
    slo.service = *service;
    slo.origin = r.Origin(s);
    absl::StatusOr<std::string> name = r.String(s, "name", path + ".name");
    if (!name.ok()) return name.status();
    slo.name = *name;
    absl::StatusOr<std::string> description =
        r.String(s, "description", path + ".description", false);
    if (!description.ok()) return description.status();
    slo.description = *description;
    if (!s["objective"].IsDefined()) return r.Error(s, path + ".objective", "missing");
    absl::StatusOr<double> objective = r.Number(s["objective"], path + ".objective");
    if (!objective.ok()) return objective.status();
    if (!(*objective > 0 && *objective < 100)) {
      return r.Error(s["objective"], path + ".objective",
                     absl::StrCat("must be a percentage between 0 and 100 exclusive (e.g. 99.9), "
                                  "got ",
                                  *objective));
    }
    slo.objective = *objective / 100;
    absl::StatusOr<YAML::Node> sli = r.Map(s, "sli", path + ".sli");
    if (!sli.ok()) return sli.status();
    if ((*sli)["raw"].IsDefined() || (*sli)["plugin"].IsDefined()) {
      return r.Error(*sli, path + ".sli", "only sli.events is supported (not raw or plugin)");
    }
    absl::StatusOr<YAML::Node> events = r.Map(*sli, "events", path + ".sli.events");
    if (!events.ok()) return events.status();
    for (auto [key, target] :
         {std::pair{"error_query", &slo.bad_query}, std::pair{"total_query", &slo.total_query}}) {
      std::string qpath = absl::StrCat(path, ".sli.events.", key);
      absl::StatusOr<std::string> q = r.String(*events, key, qpath);
      if (!q.ok()) return q.status();
      if (absl::StatusOr<std::string> checked = EventsQuery(*q, 3600000, "increase");
          !checked.ok()) {
        return r.Error((*events)[key], qpath, std::string(checked.status().message()));
      }
      *target = *q;
    }
    out->push_back(std::move(slo));
  }
  return absl::OkStatus();
}

// Replaces every `{{.window}}` (spaces allowed inside the braces); true when there was one.
bool SubstituteWindow(std::string* q, const std::string& window) {
  bool found = false;
  size_t pos = 0;
  while ((pos = q->find("{{", pos)) != std::string::npos) {
    size_t end = q->find("}}", pos);
    if (end == std::string::npos) break;
    std::string inner(q->substr(pos + 2, end - pos - 2));
    absl::StripAsciiWhitespace(&inner);
    if (inner == ".window") {
      q->replace(pos, end + 2 - pos, window);
      pos += window.size();
      found = true;
    } else {
      pos = end + 2;
    }
  }
  return found;
}

// Rewrites the tree: with `templated`, range functions become `func`; otherwise each instant
// selector becomes func(selector[window]). Fails on a range selector in a non-templated query.
absl::Status Rewrite(promql::Expr& e, bool templated, int64_t window_ms, const std::string& func) {
  using namespace promql;  // NOLINT: the node types
  auto recurse = [&](ExprPtr& child) -> absl::Status {
    return child ? Rewrite(*child, templated, window_ms, func) : absl::OkStatus();
  };
  if (auto* vs = e.As<VectorSelector>()) {
    if (templated) return absl::OkStatus();
    auto inner = std::make_unique<Expr>();
    inner->node = std::move(*vs);
    auto matrix = std::make_unique<Expr>();
    matrix->node = MatrixSelector{std::move(inner), window_ms};
    Call call;
    call.func = func;
    call.args.push_back(std::move(matrix));
    e.node = std::move(call);
    return absl::OkStatus();
  }
  if (e.As<MatrixSelector>() != nullptr || e.As<SubqueryExpr>() != nullptr) {
    if (templated) return absl::OkStatus();
    return absl::InvalidArgumentError(
        "the query has a range selector: give counters (sum(http_requests_total{...})) or write "
        "the range as [{{.window}}]");
  }
  if (auto* c = e.As<Call>()) {
    if (templated && (c->func == "rate" || c->func == "increase")) {
      c->func = func;
      return absl::OkStatus();
    }
    for (ExprPtr& a : c->args) {
      if (absl::Status s = recurse(a); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (auto* a = e.As<AggregateExpr>()) return recurse(a->expr);
  if (auto* b = e.As<BinaryExpr>()) {
    if (absl::Status s = recurse(b->lhs); !s.ok()) return s;
    return recurse(b->rhs);
  }
  if (auto* u = e.As<UnaryExpr>()) return recurse(u->expr);
  if (auto* p = e.As<ParenExpr>()) return recurse(p->expr);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> EventsQuery(std::string_view query_template, int64_t window_ms,
                                        std::string_view func) {
  std::string q(query_template);
  bool templated = SubstituteWindow(&q, promql::FormatDuration(window_ms));
  absl::StatusOr<promql::ExprPtr> expr = promql::Parse(q);
  if (!expr.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad PromQL: ", expr.status().message()));
  }
  if (absl::Status s = Rewrite(**expr, templated, window_ms, std::string(func)); !s.ok()) return s;
  if (promql::TypeOf(**expr) != promql::ValueType::kVector &&
      promql::TypeOf(**expr) != promql::ValueType::kScalar) {
    return absl::InvalidArgumentError("the query must give an instant vector");
  }
  return promql::Print(**expr);
}

absl::StatusOr<std::vector<SloDefinition>> ParseSloYaml(std::string_view text,
                                                        std::string_view file_name) {
  Reader r{std::string(file_name)};
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(file_name), ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  std::vector<SloDefinition> out;
  try {
    std::map<std::string, YAML::Node> slis;
    for (const YAML::Node& doc : docs) {
      if (doc.IsMap() && doc["kind"].IsDefined() && doc["kind"].Scalar() == "SLI" &&
          doc["metadata"].IsMap() && doc["metadata"]["name"].IsScalar()) {
        slis[doc["metadata"]["name"].Scalar()] = doc;
      }
    }
    for (const YAML::Node& doc : docs) {
      if (doc.IsNull()) continue;
      if (!doc.IsMap()) return r.Error(doc, "document", "must be a mapping");
      if (doc["apiVersion"].IsDefined()) {
        std::string api = doc["apiVersion"].Scalar();
        if (api != "openslo/v1") {
          return r.Error(doc["apiVersion"], "apiVersion",
                         absl::StrCat("\"", api,
                                      "\" is not supported (openslo/v1, or Sloth's "
                                      "version: prometheus/v1)"));
        }
        absl::StatusOr<std::string> kind = r.String(doc, "kind", "kind");
        if (!kind.ok()) return kind.status();
        if (*kind != "SLO") continue;  // SLI, Service, DataSource, AlertPolicy, ...
        if (absl::Status s = OpenSloDocument(r, doc, slis, &out); !s.ok()) return s;
      } else if (doc["version"].IsDefined()) {
        std::string version = doc["version"].Scalar();
        if (version != "prometheus/v1") {
          return r.Error(doc["version"], "version",
                         absl::StrCat("\"", version, "\" is not supported (prometheus/v1)"));
        }
        if (absl::Status s = SlothDocument(r, doc, &out); !s.ok()) return s;
      } else {
        return r.Error(doc, "apiVersion",
                       "missing: expected an OpenSLO document (apiVersion: openslo/v1) or a Sloth "
                       "one (version: prometheus/v1)");
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(file_name), ":", e.mark.line + 1, ": ", e.msg));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(file_name), ": no SLO found (kind: SLO or slos:)"));
  }
  // Names key the reports and the rule groups (which Prometheus requires to be unique).
  std::map<std::string, std::string> seen;  // name -> origin
  for (const SloDefinition& slo : out) {
    auto [it, added] = seen.emplace(slo.name, slo.origin);
    if (!added) {
      return absl::InvalidArgumentError(absl::StrCat(
          slo.origin, ": SLO \"", slo.name, "\" is defined twice (first at ", it->second, ")"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<SloDefinition>> LoadSloFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read SLO file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseSloYaml(ss.str(), path);
}

}  // namespace tidemark::cli
