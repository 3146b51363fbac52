#include "api/server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/errors.h"
#include "api/form.h"
#include "api/json.h"
#include "api/log.h"
#include "api/metrics.h"
#include "api/params.h"
#include "query/parser.h"

namespace tidemark::api {
namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kText = "text/plain; charset=utf-8";

// What a handler sees of a request.
struct Call {
  const httplib::Request& req;
  std::string_view body;
  Form form;
  std::string tenant;
  DB* db = nullptr;
  std::string path_param;  // <name> of /api/v1/label/<name>/values
};

enum class Methods : uint8_t { kGet, kGetPost, kPost };

struct Route {
  std::string handler;  // label value for metrics, e.g. "/api/v1/label/:name/values"
  Methods methods = Methods::kGet;
  std::optional<Permission> permission;  // none: no token needed
  bool needs_db = false;
  std::function<void(Call&, httplib::Response&)> run;
};

void WriteJsonError(httplib::Response& res, const absl::Status& status) {
  HttpError e = MapStatus(status);
  res.status = e.code;
  res.set_content(ErrorEnvelope(e.type, std::string(status.message())), kJson);
}

void WriteText(httplib::Response& res, int code, std::string_view text) {
  res.status = code;
  res.set_content(std::string(text) + (text.empty() || text.back() == '\n' ? "" : "\n"), kText);
}

absl::Status InvalidParam(std::string_view name, const absl::Status& status) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid parameter \"", std::string(name), "\": ", status.message()));
}

// A time parameter, or `fallback` when absent.
absl::StatusOr<int64_t> TimeParam(const Form& form, std::string_view name, int64_t fallback) {
  std::string text = form.Value(name);
  if (text.empty()) return fallback;
  absl::StatusOr<int64_t> t = ParseTime(text);
  if (!t.ok()) return InvalidParam(name, t.status());
  return t;
}

absl::StatusOr<promql::QueryParams> QueryParamsOf(const Form& form) {
  promql::QueryParams params;
  std::string timeout = form.Value("timeout");
  if (!timeout.empty()) {
    absl::StatusOr<absl::Duration> d = ParseDurationParam(timeout);
    if (!d.ok()) return InvalidParam("timeout", d.status());
    params.timeout = *d;
  }
  return params;
}

// The matcher sets of every `match[]`; InvalidArgument for a bad selector.
absl::StatusOr<std::vector<std::vector<LabelMatcher>>> MatchersOf(const Form& form,
                                                                  bool need_non_empty) {
  std::vector<std::vector<LabelMatcher>> sets;
  for (const std::string& selector : form.Values("match[]")) {
    absl::StatusOr<std::vector<LabelMatcher>> matchers = promql::ParseSelector(selector);
    if (!matchers.ok()) return absl::InvalidArgumentError(matchers.status().message());
    if (need_non_empty && std::all_of(matchers->begin(), matchers->end(),
                                      [](const LabelMatcher& m) { return m.MatchesEmpty(); })) {
      return absl::InvalidArgumentError("match[] must contain at least one non-empty matcher");
    }
    sets.push_back(std::move(*matchers));
  }
  return sets;
}

// Decodes a label name escaped as `U__...` (Prometheus's value-encoding escaping); returns the
// input unchanged when it is not a valid escape.
std::string UnescapeLabelName(const std::string& name) {
  if (name.rfind("U__", 0) != 0) return name;
  std::string out;
  std::string_view rest = std::string_view(name).substr(3);
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] != '_') {
      out.push_back(rest[i]);
      continue;
    }
    if (i + 1 < rest.size() && rest[i + 1] == '_') {
      out.push_back('_');
      ++i;
      continue;
    }
    size_t end = rest.find('_', i + 1);
    if (end == std::string_view::npos || end == i + 1) return name;
    uint32_t cp = 0;
    for (size_t j = i + 1; j < end; ++j) {
      char c = rest[j];
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0 || cp > 0x10FFFF) return name;
      cp = cp * 16 + static_cast<uint32_t>(d);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return name;
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    i = end;
  }
  return out;
}

// Sorted, de-duplicated, cut to `limit` (0: no limit) with Prometheus's warning.
std::vector<std::string> Finish(std::vector<std::string> items, int64_t limit,
                                std::vector<std::string>& warnings) {
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());
  if (limit > 0 && static_cast<int64_t>(items.size()) > limit) {
    items.resize(static_cast<size_t>(limit));
    warnings.push_back("results truncated due to limit");
  }
  return items;
}

void AppendStats(std::string& out, const promql::QueryStats& stats) {
  out += ",\"stats\":{\"timings\":{\"evalTotalTime\":";
  AppendValue(out, stats.eval_seconds);
  out += ",\"resultSortTime\":0,\"queryPreparationTime\":0,\"innerEvalTime\":";
  AppendValue(out, stats.eval_seconds);
  out += ",\"execQueueTime\":0,\"execTotalTime\":";
  AppendValue(out, stats.eval_seconds);
  out += "},\"samples\":{\"totalQueryableSamples\":";
  out += std::to_string(stats.total_queryable_samples);
  out += ",\"peakSamples\":";
  out += std::to_string(stats.peak_samples);
  out += "}}";
}

void WriteQueryResult(httplib::Response& res, const promql::QueryResult& result, bool stats) {
  std::string data;
  AppendQueryData(data, result.value);
  if (stats) {
    data.pop_back();  // the closing brace of data
    AppendStats(data, result.stats);
    data.push_back('}');
  }
  res.status = 200;
  res.set_content(SuccessEnvelope(data, result.warnings), kJson);
}

int RemoteWriteCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 204;
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kResourceExhausted: return 413;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

}  // namespace

struct Server::Impl {
  explicit Impl(ServerOptions opts)
      : options(std::move(opts)),
        auth(options.auth),
        engine(options.engine),
        metrics(CurrentBuild()) {
    BuildRoutes();
  }

  ServerOptions options;
  Authenticator auth;
  promql::Engine engine;
  ServerMetrics metrics;
  httplib::Server http;
  std::thread thread;
  std::atomic<DB*> db{nullptr};
  std::atomic<bool> started{false};
  std::atomic<bool> stopped{false};
  int port = 0;
  std::vector<std::pair<std::string, Route>> routes;  // exact paths
  Route label_values;                                   // /api/v1/label/<name>/values
  Route not_found;

  void BuildRoutes();
  void Dispatch(const httplib::Request& req, httplib::Response& res, std::string_view body);
  void Handle(const httplib::Request& req, httplib::Response& res, std::string_view body,
              const Route*& route);

  // Handlers.
  void Query(Call& c, httplib::Response& res);
  void QueryRange(Call& c, httplib::Response& res);
  void Labels(Call& c, httplib::Response& res);
  void LabelValues(Call& c, httplib::Response& res);
  void SeriesApi(Call& c, httplib::Response& res);
  void RemoteWrite(Call& c, httplib::Response& res);
};

void Server::Impl::BuildRoutes() {
  using std::placeholders::_1;
  using std::placeholders::_2;
  auto add = [this](std::string path, Methods methods, std::optional<Permission> permission,
                    bool needs_db, std::function<void(Call&, httplib::Response&)> run) {
    routes.emplace_back(path, Route{path, methods, permission, needs_db, std::move(run)});
  };
  auto json = [](std::string data) {
    return [data](Call&, httplib::Response& res) {
      res.set_content(SuccessEnvelope(data), kJson);
    };
  };
  add("/api/v1/query", Methods::kGetPost, Permission::kRead, true,
      std::bind(&Impl::Query, this, _1, _2));
  add("/api/v1/query_range", Methods::kGetPost, Permission::kRead, true,
      std::bind(&Impl::QueryRange, this, _1, _2));
  add("/api/v1/labels", Methods::kGetPost, Permission::kRead, true,
      std::bind(&Impl::Labels, this, _1, _2));
  add("/api/v1/series", Methods::kGetPost, Permission::kRead, true,
      std::bind(&Impl::SeriesApi, this, _1, _2));
  add("/api/v1/write", Methods::kPost, Permission::kWrite, true,
      std::bind(&Impl::RemoteWrite, this, _1, _2));
  add("/api/v1/query_exemplars", Methods::kGetPost, Permission::kRead, false, json("[]"));
  add("/api/v1/metadata", Methods::kGet, Permission::kRead, false, json("{}"));
  add("/api/v1/rules", Methods::kGet, Permission::kRead, false, json("{\"groups\":[]}"));
  add("/api/v1/alerts", Methods::kGet, Permission::kRead, false, json("{\"alerts\":[]}"));
  add("/api/v1/status/flags", Methods::kGet, Permission::kRead, false, json("{}"));
  add("/api/v1/status/buildinfo", Methods::kGet, Permission::kRead, false,
      [](Call&, httplib::Response& res) {
        const BuildInfo& b = CurrentBuild();
        std::string data = "{\"version\":";
        AppendJsonString(data, b.version);
        data += ",\"revision\":";
        AppendJsonString(data, b.revision);
        data += ",\"branch\":";
        AppendJsonString(data, b.branch);
        data += ",\"buildUser\":";
        AppendJsonString(data, b.build_user);
        data += ",\"buildDate\":";
        AppendJsonString(data, b.build_date);
        data += ",\"goVersion\":";
        AppendJsonString(data, absl::StrCat("gcc ", __VERSION__));
        data += "}";
        res.set_content(SuccessEnvelope(data), kJson);
      });
  add("/-/healthy", Methods::kGet, std::nullopt, false,
      [](Call&, httplib::Response& res) { WriteText(res, 200, "Tidemark is Healthy."); });
  add("/-/ready", Methods::kGet, std::nullopt, false, [this](Call&, httplib::Response& res) {
    if (db.load() != nullptr) {
      WriteText(res, 200, "Tidemark is Ready.");
    } else {
      WriteText(res, 503, "Service Unavailable");
    }
  });
  add("/metrics", Methods::kGet, std::nullopt, false, [this](Call&, httplib::Response& res) {
    DB* d = db.load();
    std::string text;
    if (d != nullptr) {
      Stats stats = d->GetStats();
      text = metrics.Render(&stats);
    } else {
      text = metrics.Render(nullptr);
    }
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
  });
  label_values = Route{"/api/v1/label/:name/values", Methods::kGet, Permission::kRead, true,
                       std::bind(&Impl::LabelValues, this, _1, _2)};
  not_found = Route{"other", Methods::kGetPost, std::nullopt, false,
                    [](Call&, httplib::Response& res) { WriteText(res, 404, "404 page not found"); }};
}

void Server::Impl::Dispatch(const httplib::Request& req, httplib::Response& res,
                            std::string_view body) {
  auto start = std::chrono::steady_clock::now();
  const Route* route = &not_found;
  Handle(req, res, body, route);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  metrics.ObserveRequest(route->handler, res.status, seconds);
}

void Server::Impl::Handle(const httplib::Request& req, httplib::Response& res,
                          std::string_view body, const Route*& route) {
  const std::string& path = req.path;
  std::string param;
  for (const auto& [p, r] : routes) {
    if (p == path) route = &r;
  }
  constexpr std::string_view kLabelPrefix = "/api/v1/label/";
  constexpr std::string_view kValuesSuffix = "/values";
  if (route == &not_found && path.size() > kLabelPrefix.size() + kValuesSuffix.size() &&
      path.compare(0, kLabelPrefix.size(), kLabelPrefix) == 0 &&
      path.compare(path.size() - kValuesSuffix.size(), kValuesSuffix.size(), kValuesSuffix) == 0) {
    param = path.substr(kLabelPrefix.size(),
                        path.size() - kLabelPrefix.size() - kValuesSuffix.size());
    if (param.find('/') == std::string::npos) route = &label_values;
  }
  if (route == &not_found) {
    WriteText(res, 404, "404 page not found");
    return;
  }

  bool is_get = req.method == "GET" || req.method == "HEAD";
  bool is_post = req.method == "POST";
  bool allowed = (route->methods == Methods::kGet && is_get) ||
                 (route->methods == Methods::kPost && is_post) ||
                 (route->methods == Methods::kGetPost && (is_get || is_post));
  if (!allowed) {
    res.set_header("Allow", route->methods == Methods::kGet    ? "GET, HEAD"
                            : route->methods == Methods::kPost ? "POST"
                                                               : "GET, HEAD, POST");
    WriteText(res, 405, "Method Not Allowed");
    return;
  }

  std::string tenant(kDefaultTenant);
  if (req.has_header("X-Scope-OrgID")) {
    tenant = req.get_header_value("X-Scope-OrgID");
    if (absl::Status s = ValidateTenant(tenant); !s.ok()) {
      WriteText(res, 400, absl::StrCat("invalid X-Scope-OrgID: ", s.message()));
      return;
    }
  }
  if (route->permission.has_value()) {
    AuthDecision decision =
        auth.Check(req.get_header_value("Authorization"), *route->permission, tenant);
    if (decision.code != 0) {
      if (decision.code == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"tidemark\"");
      WriteText(res, decision.code, decision.message);
      return;
    }
  }

  DB* d = db.load();
  if (route->needs_db && d == nullptr) {
    if (route->methods == Methods::kPost) {
      WriteText(res, 503, "not ready: the database is still opening");
    } else {
      WriteJsonError(res, absl::UnavailableError("not ready: the database is still opening"));
    }
    return;
  }

  bool form_body = is_post && IsFormContentType(req.get_header_value("Content-Type"));
  size_t q = req.target.find('?');
  std::string_view url_query =
      q == std::string::npos ? std::string_view() : std::string_view(req.target).substr(q + 1);
  Call call{req, body, Form::Parse(url_query, form_body ? body : std::string_view()), tenant, d,
            param};
  res.status = 200;
  route->run(call, res);
}

void Server::Impl::Query(Call& c, httplib::Response& res) {
  int64_t now_ms = absl::ToUnixMillis(absl::Now());
  absl::StatusOr<int64_t> t = TimeParam(c.form, "time", now_ms);
  if (!t.ok()) return WriteJsonError(res, t.status());
  absl::StatusOr<promql::QueryParams> params = QueryParamsOf(c.form);
  if (!params.ok()) return WriteJsonError(res, params.status());
  std::unique_ptr<Queryable> data = c.db->ForTenant(c.tenant);
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<promql::QueryResult> result =
      engine.Instant(*data, c.form.Value("query"), *t, *params);
  metrics.ObserveQuery("query",
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (!result.ok()) {
    if (absl::IsInvalidArgument(result.status())) {
      return WriteJsonError(res, InvalidParam("query", result.status()));
    }
    return WriteJsonError(res, result.status());
  }
  WriteQueryResult(res, *result, !c.form.Value("stats").empty());
}

void Server::Impl::QueryRange(Call& c, httplib::Response& res) {
  absl::StatusOr<int64_t> start = ParseTime(c.form.Value("start"));
  if (!start.ok()) return WriteJsonError(res, InvalidParam("start", start.status()));
  absl::StatusOr<int64_t> end = ParseTime(c.form.Value("end"));
  if (!end.ok()) return WriteJsonError(res, InvalidParam("end", end.status()));
  if (*end < *start) {
    return WriteJsonError(
        res, InvalidParam("end", absl::InvalidArgumentError(
                                     "end timestamp must not be before start time")));
  }
  absl::StatusOr<absl::Duration> step = ParseDurationParam(c.form.Value("step"));
  if (!step.ok()) return WriteJsonError(res, InvalidParam("step", step.status()));
  if (*step <= absl::ZeroDuration()) {
    return WriteJsonError(
        res, InvalidParam("step", absl::InvalidArgumentError(
                                      "zero or negative query resolution step widths are not "
                                      "accepted. Try a positive integer")));
  }
  absl::Duration remainder;
  if (absl::IDivDuration(absl::Milliseconds(*end - *start), *step, &remainder) > 11000) {
    return WriteJsonError(res, absl::InvalidArgumentError(
                                   "exceeded maximum resolution of 11,000 points per timeseries. "
                                   "Try decreasing the query resolution (?step=XX)"));
  }
  absl::StatusOr<promql::QueryParams> params = QueryParamsOf(c.form);
  if (!params.ok()) return WriteJsonError(res, params.status());
  int64_t step_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(*step));
  std::unique_ptr<Queryable> data = c.db->ForTenant(c.tenant);
  auto began = std::chrono::steady_clock::now();
  absl::StatusOr<promql::QueryResult> result =
      engine.Range(*data, c.form.Value("query"), *start, *end, step_ms, *params);
  metrics.ObserveQuery("query_range",
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
  if (!result.ok()) {
    if (absl::IsInvalidArgument(result.status())) {
      return WriteJsonError(res, InvalidParam("query", result.status()));
    }
    return WriteJsonError(res, result.status());
  }
  WriteQueryResult(res, *result, !c.form.Value("stats").empty());
}

void Server::Impl::Labels(Call& c, httplib::Response& res) {
  absl::StatusOr<int64_t> start = TimeParam(c.form, "start", kMinTimeMs);
  if (!start.ok()) return WriteJsonError(res, start.status());
  absl::StatusOr<int64_t> end = TimeParam(c.form, "end", kMaxTimeMs);
  if (!end.ok()) return WriteJsonError(res, end.status());
  absl::StatusOr<std::vector<std::vector<LabelMatcher>>> sets = MatchersOf(c.form, false);
  if (!sets.ok()) return WriteJsonError(res, sets.status());
  absl::StatusOr<int64_t> limit = ParseLimit(c.form.Value("limit"));
  if (!limit.ok()) return WriteJsonError(res, InvalidParam("limit", limit.status()));
  absl::StatusOr<std::unique_ptr<Querier>> querier = c.db->NewQuerier(c.tenant, *start, *end);
  if (!querier.ok()) return WriteJsonError(res, querier.status());
  if (sets->empty()) sets->emplace_back();
  std::vector<std::string> names;
  for (const auto& matchers : *sets) {
    absl::StatusOr<std::vector<std::string>> got = (*querier)->LabelNames(matchers);
    if (!got.ok()) return WriteJsonError(res, got.status());
    names.insert(names.end(), got->begin(), got->end());
  }
  std::vector<std::string> warnings;
  names = Finish(std::move(names), *limit, warnings);
  res.set_content(SuccessEnvelope(StringArray(names), warnings), kJson);
}

void Server::Impl::LabelValues(Call& c, httplib::Response& res) {
  std::string name = UnescapeLabelName(c.path_param);
  if (!IsValidLabelName(name)) {
    std::string quoted;
    AppendJsonString(quoted, name);
    return WriteJsonError(res, absl::InvalidArgumentError(absl::StrCat("invalid label name: ", quoted)));
  }
  absl::StatusOr<int64_t> start = TimeParam(c.form, "start", kMinTimeMs);
  if (!start.ok()) return WriteJsonError(res, start.status());
  absl::StatusOr<int64_t> end = TimeParam(c.form, "end", kMaxTimeMs);
  if (!end.ok()) return WriteJsonError(res, end.status());
  absl::StatusOr<std::vector<std::vector<LabelMatcher>>> sets = MatchersOf(c.form, false);
  if (!sets.ok()) return WriteJsonError(res, sets.status());
  absl::StatusOr<int64_t> limit = ParseLimit(c.form.Value("limit"));
  if (!limit.ok()) return WriteJsonError(res, InvalidParam("limit", limit.status()));
  absl::StatusOr<std::unique_ptr<Querier>> querier = c.db->NewQuerier(c.tenant, *start, *end);
  if (!querier.ok()) return WriteJsonError(res, querier.status());
  if (sets->empty()) sets->emplace_back();
  std::vector<std::string> values;
  for (const auto& matchers : *sets) {
    absl::StatusOr<std::vector<std::string>> got = (*querier)->LabelValues(name, matchers);
    if (!got.ok()) return WriteJsonError(res, got.status());
    values.insert(values.end(), got->begin(), got->end());
  }
  std::vector<std::string> warnings;
  values = Finish(std::move(values), *limit, warnings);
  res.set_content(SuccessEnvelope(StringArray(values), warnings), kJson);
}

void Server::Impl::SeriesApi(Call& c, httplib::Response& res) {
  if (!c.form.Has("match[]")) {
    return WriteJsonError(res, absl::InvalidArgumentError("no match[] parameter provided"));
  }
  absl::StatusOr<int64_t> start = TimeParam(c.form, "start", kMinTimeMs);
  if (!start.ok()) return WriteJsonError(res, start.status());
  absl::StatusOr<int64_t> end = TimeParam(c.form, "end", kMaxTimeMs);
  if (!end.ok()) return WriteJsonError(res, end.status());
  absl::StatusOr<std::vector<std::vector<LabelMatcher>>> sets = MatchersOf(c.form, true);
  if (!sets.ok()) return WriteJsonError(res, sets.status());
  absl::StatusOr<int64_t> limit = ParseLimit(c.form.Value("limit"));
  if (!limit.ok()) return WriteJsonError(res, InvalidParam("limit", limit.status()));
  absl::StatusOr<std::unique_ptr<Querier>> querier = c.db->NewQuerier(c.tenant, *start, *end);
  if (!querier.ok()) return WriteJsonError(res, querier.status());
  std::set<tidemark::Labels> found;
  for (const auto& matchers : *sets) {
    absl::StatusOr<std::vector<Series>> got =
        (*querier)->Select(matchers, SelectHints{*start, *end});
    if (!got.ok()) return WriteJsonError(res, got.status());
    for (Series& s : *got) found.insert(std::move(s.labels));
  }
  std::vector<std::string> warnings;
  std::string data = "[";
  int64_t n = 0;
  for (const tidemark::Labels& labels : found) {
    if (*limit > 0 && n == *limit) {
      warnings.push_back("results truncated due to limit");
      break;
    }
    if (n++ > 0) data.push_back(',');
    AppendLabels(data, labels);
  }
  data.push_back(']');
  res.set_content(SuccessEnvelope(data, warnings), kJson);
}

void Server::Impl::RemoteWrite(Call& c, httplib::Response& res) {
  int code = 0;
  std::string content_type = c.req.get_header_value("Content-Type");
  if (!ingest::IsRemoteWrite1ContentType(content_type)) {
    code = 415;
    WriteText(res, code, absl::StrCat("unsupported content type \"", content_type,
                                      "\": want application/x-protobuf (remote write 1.0)"));
  } else {
    std::unique_ptr<Appender> appender = c.db->NewAppender(c.tenant);
    ingest::WriteResult result = ingest::HandleRemoteWrite(
        c.body, c.req.get_header_value("Content-Encoding"), options.write_limits, *appender);
    code = RemoteWriteCode(result.status);
    if (result.samples_accepted > 0 && result.status.ok()) {
      metrics.AddAppended(c.tenant, result.samples_accepted);
    }
    if (result.samples_rejected > 0) {
      metrics.AddRejected(RejectReasonName(result.reject_reason), result.samples_rejected);
    }
    if (code == 204) {
      res.status = 204;
    } else {
      WriteText(res, code, std::string(result.status.message()));
      if (code >= 500) LogWarn(absl::StrCat("remote write failed: ", result.status.ToString()));
    }
  }
  metrics.CountRemoteWrite(code);
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl* impl = impl_.get();
  auto plain = [impl](const httplib::Request& req, httplib::Response& res) {
    impl->Dispatch(req, res, req.body);
  };
  auto with_body = [impl](const httplib::Request& req, httplib::Response& res,
                          const httplib::ContentReader& reader) {
    // HTTP/1.1: a request with neither Content-Length nor Transfer-Encoding has no body (a POST
    // that carries every parameter in the URL). Reading on would wait for the peer to close.
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      impl->Dispatch(req, res, std::string());
      return;
    }
    std::string body;
    size_t limit = static_cast<size_t>(impl->options.max_request_bytes);
    bool too_large = false;
    bool ok = reader([&](const char* data, size_t len) {
      if (body.size() + len > limit) {
        too_large = true;
        return false;
      }
      body.append(data, len);
      return true;
    });
    if (!ok || too_large) {
      res.set_header("Connection", "close");
      int code = too_large || res.status == 413 ? 413 : 400;
      WriteText(res, code,
                code == 413 ? absl::StrCat("request body too large (limit ", limit, " bytes)")
                            : std::string("cannot read the request body"));
      impl->metrics.ObserveRequest("other", code, 0);
      return;
    }
    impl->Dispatch(req, res, body);
  };
  auto& http = impl->http;
  http.Get(".*", plain);
  http.Delete(".*", plain);
  http.Options(".*", plain);
  http.Post(".*", with_body);
  http.Put(".*", with_body);
  http.Patch(".*", with_body);
  // Keep-alive connections hold a worker each (Grafana, remote-write shards): more than the
  // library's default of 8.
  http.new_task_queue = [] { return new httplib::ThreadPool(32); };
  http.set_payload_max_length(static_cast<size_t>(impl->options.max_request_bytes));
  http.set_keep_alive_timeout(2);
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);
  http.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LogError(absl::StrCat("BUG: exception in handler for ", req.path, ": ", what));
        res.status = 500;
        res.set_content(ErrorEnvelope("internal", what), kJson);
      });
}

Server::~Server() { Shutdown(); }

absl::Status Server::Start(const std::string& host, int port) {
  if (impl_->started.exchange(true)) return absl::FailedPreconditionError("server already started");
  int bound = port;
  if (port == 0) {
    bound = impl_->http.bind_to_any_port(host);
    if (bound <= 0) bound = -1;
  } else if (!impl_->http.bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound < 0) {
    impl_->started = false;
    return absl::UnavailableError(absl::StrCat("cannot listen on ", host, ":", port));
  }
  impl_->port = bound;
  impl_->thread = std::thread([impl = impl_.get()] { impl->http.listen_after_bind(); });
  // Stop() is a no-op until the accept loop runs, so wait for it before returning.
  for (int i = 0; i < 5000 && !impl_->http.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::OkStatus();
}

int Server::port() const { return impl_->port; }

void Server::SetDB(DB* db) { impl_->db.store(db); }

void Server::Shutdown() {
  if (!impl_->started.load() || impl_->stopped.exchange(true)) return;
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace tidemark::api
