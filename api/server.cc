#include "api/server.h"

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/connection_watch.h"
#include "api/errors.h"
#include "api/form.h"
#include "api/json.h"
#include "api/log.h"
#include "api/metrics.h"
#include "api/params.h"
#include "api/query_gate.h"
#include "query/parser.h"

namespace tidemark::api {
namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kText = "text/plain; charset=utf-8";

// The OTLP/HTTP metrics routes (the Collector's and Prometheus's paths).
bool IsOtlpPath(std::string_view path) {
  return path == "/v1/metrics" || path == "/api/v1/otlp/v1/metrics";
}

// What a handler sees of a request.
struct Call {
  const httplib::Request& req;
  std::string_view body;
  Form form;
  std::string tenant;
  DB* db = nullptr;
  std::string path_param;  // <name> of /api/v1/label/<name>/values
};

enum class Methods : uint8_t { kGet, kGetPost, kPost, kPostPut };

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

// The query parameters; the `timeout` parameter can shorten the server's default timeout, not
// lengthen it (Prometheus applies both its own limit and the request's).
absl::StatusOr<promql::QueryParams> QueryParamsOf(const Form& form,
                                                  absl::Duration default_timeout) {
  promql::QueryParams params;
  params.timeout = default_timeout;
  std::string timeout = form.Value("timeout");
  if (!timeout.empty()) {
    absl::StatusOr<absl::Duration> d = ParseDurationParam(timeout);
    if (!d.ok()) return InvalidParam("timeout", d.status());
    if (*d <= absl::ZeroDuration()) {
      return InvalidParam("timeout", absl::InvalidArgumentError("timeout must be positive"));
    }
    if (default_timeout <= absl::ZeroDuration() || *d < default_timeout) params.timeout = *d;
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

// What the server measures around the engine, in seconds.
struct ExecTimings {
  double queue = 0;       // waiting for a query slot
  double eval_total = 0;  // the engine's work (parsing, preparation, evaluation, sorting)
  double exec_total = 0;  // queue and engine together
};

// Prometheus's `data.stats` (util/stats.QueryStats): timings in seconds, and samples. The
// per-step breakdown is present with `stats=all`, as Prometheus with per-step stats enabled.
void AppendStats(std::string& out, const promql::QueryStats& stats, const ExecTimings& exec,
                 bool per_step) {
  double inner = std::max(0.0, stats.eval_seconds - stats.prepare_seconds - stats.sort_seconds);
  out += ",\"stats\":{\"timings\":{\"evalTotalTime\":";
  AppendValue(out, exec.eval_total);
  out += ",\"resultSortTime\":";
  AppendValue(out, stats.sort_seconds);
  out += ",\"queryPreparationTime\":";
  AppendValue(out, stats.prepare_seconds);
  out += ",\"innerEvalTime\":";
  AppendValue(out, inner);
  out += ",\"execQueueTime\":";
  AppendValue(out, exec.queue);
  out += ",\"execTotalTime\":";
  AppendValue(out, exec.exec_total);
  out += "},\"samples\":{";
  if (per_step) {
    out += "\"totalQueryableSamplesPerStep\":[";
    bool first = true;
    for (const auto& [t, n] : stats.samples_per_step) {
      if (!first) out.push_back(',');
      first = false;
      out.push_back('[');
      AppendTimestamp(out, t);
      out.push_back(',');
      out += std::to_string(n);
      out.push_back(']');
    }
    out += "],";
  }
  out += "\"totalQueryableSamples\":";
  out += std::to_string(stats.total_queryable_samples);
  out += ",\"peakSamples\":";
  out += std::to_string(stats.peak_samples);
  out += "}}";
}

// `stats` is the request's stats parameter: empty for none, "all" for the per-step breakdown.
void WriteQueryResult(httplib::Response& res, const promql::QueryResult& result,
                      const std::string& stats, const ExecTimings& exec) {
  std::string data;
  AppendQueryData(data, result.value);
  if (!stats.empty()) {
    data.pop_back();  // the closing brace of data
    AppendStats(data, result.stats, exec, stats == "all");
    data.push_back('}');
  }
  res.status = 200;
  res.set_content(SuccessEnvelope(data, result.warnings), kJson);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Top `limit` (name, count) pairs by count, ties by name: the entries of /api/v1/status/tsdb.
std::string TopStats(const std::map<std::string, int64_t>& counts, size_t limit) {
  std::vector<std::pair<std::string, int64_t>> items(counts.begin(), counts.end());
  std::stable_sort(items.begin(), items.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (items.size() > limit) items.resize(limit);
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += "{\"name\":";
    AppendJsonString(out, items[i].first);
    out += ",\"value\":";
    out += std::to_string(items[i].second);
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

// RFC3339 with nanoseconds and the local offset, as Go prints a time.Time in JSON.
std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E9S%Ez", t, absl::LocalTimeZone());
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
        metrics(CurrentBuild()),
        gate(options.max_concurrent_queries, options.max_queued_queries) {
    BuildRoutes();
  }

  ServerOptions options;
  ingest::OtlpReceiver otlp{options.otlp};
  std::atomic<int64_t> otlp_inflight{0};
  absl::Mutex otlp_store_mu;
  DB* otlp_store_db ABSL_GUARDED_BY(otlp_store_mu) = nullptr;
  std::shared_ptr<ingest::DeltaStateStore> otlp_store ABSL_GUARDED_BY(otlp_store_mu);
  // The delta running-total store of `d` (made anew when the DB changes).
  std::shared_ptr<ingest::DeltaStateStore> OtlpStore(DB* d) {
    absl::MutexLock lock(&otlp_store_mu);
    if (otlp_store == nullptr || otlp_store_db != d) {
      otlp_store = ingest::NewDbDeltaStateStore(d);
      otlp_store_db = d;
    }
    return otlp_store;
  }
  Authenticator auth;
  promql::Engine engine;
  ServerMetrics metrics;
  QueryGate gate;               // the concurrent-query limit
  ConnectionWatch watch;        // cancels queries whose client went away
  absl::Time start_time = absl::Now();
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
  // The parameters labels, label values and series share (start, end, match[], limit) and a
  // querier over [start, end]. With `series_api`, every selector needs a non-empty matcher;
  // otherwise no match[] means one selector that every series matches.
  struct SeriesRequest {
    int64_t start = 0;
    int64_t end = 0;
    int64_t limit = 0;
    std::vector<std::vector<LabelMatcher>> selectors;
    std::unique_ptr<Querier> querier;
  };
  absl::StatusOr<SeriesRequest> ParseSeriesRequest(Call& c, bool series_api);
  // Answers labels and label values: `list` runs once per selector; the union is sorted,
  // de-duplicated and cut to the limit.
  using ListStrings = std::function<absl::StatusOr<std::vector<std::string>>(
      Querier&, const std::vector<LabelMatcher>&)>;
  void AnswerStrings(Call& c, httplib::Response& res, const ListStrings& list);
  void RemoteWrite(Call& c, httplib::Response& res);
  void OtlpMetrics(Call& c, httplib::Response& res);
  void Metadata(Call& c, httplib::Response& res);
  void QueryExemplars(Call& c, httplib::Response& res);
  void Flags(Call& c, httplib::Response& res);
  void RuntimeInfo(Call& c, httplib::Response& res);
  void TsdbStatus(Call& c, httplib::Response& res);
  void FormatQuery(Call& c, httplib::Response& res);
  void DeleteSeries(Call& c, httplib::Response& res);

  // Runs `evaluate` in a query slot, with `params` cancelled when the client goes away and its
  // timeout covering the wait for the slot. Fills `exec`.
  absl::StatusOr<promql::QueryResult> Execute(
      Call& c, promql::QueryParams params, ExecTimings& exec,
      const std::function<absl::StatusOr<promql::QueryResult>(const promql::QueryParams&)>&
          evaluate);
  // Writes the result of a query or query_range call. As Prometheus, /query reports a bad query
  // as `invalid parameter "query": ...` and /query_range reports the parser's message bare.
  enum class Endpoint { kQuery, kQueryRange };
  void Answer(Call& c, httplib::Response& res, Endpoint endpoint,
              const absl::StatusOr<promql::QueryResult>& result, const ExecTimings& exec);
  // Calls options.after_large_query when the query's evaluation took long enough.
  void AfterQuery(const ExecTimings& exec);
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
  // OTLP/HTTP: the Collector's otlphttp exporter posts to /v1/metrics, Prometheus serves this
  // under /api/v1/otlp.
  add("/v1/metrics", Methods::kPost, Permission::kWrite, true,
      std::bind(&Impl::OtlpMetrics, this, _1, _2));
  add("/api/v1/otlp/v1/metrics", Methods::kPost, Permission::kWrite, true,
      std::bind(&Impl::OtlpMetrics, this, _1, _2));
  add("/api/v1/query_exemplars", Methods::kGetPost, Permission::kRead, true,
      std::bind(&Impl::QueryExemplars, this, _1, _2));
  add("/api/v1/metadata", Methods::kGet, Permission::kRead, true,
      std::bind(&Impl::Metadata, this, _1, _2));
  add("/api/v1/rules", Methods::kGet, Permission::kRead, false, json("{\"groups\":[]}"));
  add("/api/v1/alerts", Methods::kGet, Permission::kRead, false, json("{\"alerts\":[]}"));
  add("/api/v1/status/flags", Methods::kGet, Permission::kRead, false,
      std::bind(&Impl::Flags, this, _1, _2));
  add("/api/v1/status/runtimeinfo", Methods::kGet, Permission::kRead, false,
      std::bind(&Impl::RuntimeInfo, this, _1, _2));
  add("/api/v1/status/tsdb", Methods::kGet, Permission::kRead, true,
      std::bind(&Impl::TsdbStatus, this, _1, _2));
  add("/api/v1/format_query", Methods::kGetPost, Permission::kRead, false,
      std::bind(&Impl::FormatQuery, this, _1, _2));
  add("/api/v1/admin/tsdb/delete_series", Methods::kPostPut, Permission::kAdmin, true,
      std::bind(&Impl::DeleteSeries, this, _1, _2));
  add("/api/v1/admin/tsdb/clean_tombstones", Methods::kPostPut, Permission::kAdmin, false,
      [](Call&, httplib::Response& res) { res.status = 204; });
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
  bool is_put = req.method == "PUT";
  bool allowed = (route->methods == Methods::kGet && is_get) ||
                 (route->methods == Methods::kPost && is_post) ||
                 (route->methods == Methods::kPostPut && (is_post || is_put)) ||
                 (route->methods == Methods::kGetPost && (is_get || is_post));
  if (!allowed) {
    res.set_header("Allow", route->methods == Methods::kGet       ? "GET, HEAD"
                            : route->methods == Methods::kPost    ? "POST"
                            : route->methods == Methods::kPostPut ? "POST, PUT"
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

  bool form_body = (is_post || is_put) && IsFormContentType(req.get_header_value("Content-Type"));
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
  absl::StatusOr<promql::QueryParams> params =
      QueryParamsOf(c.form, options.engine.default_timeout);
  if (!params.ok()) return WriteJsonError(res, params.status());
  std::unique_ptr<Queryable> data = c.db->ForTenant(c.tenant);
  auto start = std::chrono::steady_clock::now();
  ExecTimings exec;
  std::string query = c.form.Value("query");
  {
    absl::StatusOr<promql::QueryResult> result =
        Execute(c, *params, exec, [&](const promql::QueryParams& p) {
          return engine.Instant(*data, query, *t, p);
        });
    metrics.ObserveQuery("query", SecondsSince(start));
    Answer(c, res, Endpoint::kQuery, result, exec);
  }
  AfterQuery(exec);
}

void Server::Impl::AfterQuery(const ExecTimings& exec) {
  if (options.after_large_query && exec.eval_total >= options.large_query_seconds) {
    options.after_large_query();
  }
}

absl::StatusOr<promql::QueryResult> Server::Impl::Execute(
    Call& c, promql::QueryParams params, ExecTimings& exec,
    const std::function<absl::StatusOr<promql::QueryResult>(const promql::QueryParams&)>&
        evaluate) {
  auto began = std::chrono::steady_clock::now();
  std::unique_ptr<ConnectionWatch::Handle> watched =
      watch.Watch(c.req.remote_addr, c.req.remote_port,
                  c.req.local_port > 0 ? c.req.local_port : port);
  params.cancelled = watched->cancelled();
  absl::Duration timeout =
      params.timeout > absl::ZeroDuration() ? params.timeout : options.engine.default_timeout;
  absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<QueryGate::Ticket> ticket = gate.Enter(deadline, params.cancelled);
  exec.queue = SecondsSince(began);
  if (!ticket.ok()) {
    exec.exec_total = exec.queue;
    return ticket.status();
  }
  // The engine's clock starts now: what the queue took comes off its timeout.
  params.timeout = std::max(deadline - absl::Now(), absl::Nanoseconds(1));
  auto evaluating = std::chrono::steady_clock::now();
  absl::StatusOr<promql::QueryResult> result = evaluate(params);
  exec.eval_total = SecondsSince(evaluating);
  exec.exec_total = SecondsSince(began);
  return result;
}

void Server::Impl::Answer(Call& c, httplib::Response& res, Endpoint endpoint,
                          const absl::StatusOr<promql::QueryResult>& result,
                          const ExecTimings& exec) {
  if (!result.ok()) {
    if (endpoint == Endpoint::kQuery && absl::IsInvalidArgument(result.status())) {
      return WriteJsonError(res, InvalidParam("query", result.status()));
    }
    return WriteJsonError(res, result.status());
  }
  WriteQueryResult(res, *result, c.form.Value("stats"), exec);
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
  absl::StatusOr<promql::QueryParams> params =
      QueryParamsOf(c.form, options.engine.default_timeout);
  if (!params.ok()) return WriteJsonError(res, params.status());
  int64_t step_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(*step));
  std::unique_ptr<Queryable> data = c.db->ForTenant(c.tenant);
  auto began = std::chrono::steady_clock::now();
  ExecTimings exec;
  std::string query = c.form.Value("query");
  {
    absl::StatusOr<promql::QueryResult> result =
        Execute(c, *params, exec, [&](const promql::QueryParams& p) {
          return engine.Range(*data, query, *start, *end, step_ms, p);
        });
    metrics.ObserveQuery("query_range", SecondsSince(began));
    Answer(c, res, Endpoint::kQueryRange, result, exec);
  }
  AfterQuery(exec);
}

absl::StatusOr<Server::Impl::SeriesRequest> Server::Impl::ParseSeriesRequest(Call& c,
                                                                             bool series_api) {
  SeriesRequest r;
  absl::StatusOr<int64_t> start = TimeParam(c.form, "start", kMinTimeMs);
  if (!start.ok()) return start.status();
  absl::StatusOr<int64_t> end = TimeParam(c.form, "end", kMaxTimeMs);
  if (!end.ok()) return end.status();
  absl::StatusOr<std::vector<std::vector<LabelMatcher>>> sets = MatchersOf(c.form, series_api);
  if (!sets.ok()) return sets.status();
  absl::StatusOr<int64_t> limit = ParseLimit(c.form.Value("limit"));
  if (!limit.ok()) return InvalidParam("limit", limit.status());
  absl::StatusOr<std::unique_ptr<Querier>> querier = c.db->NewQuerier(c.tenant, *start, *end);
  if (!querier.ok()) return querier.status();
  r.start = *start;
  r.end = *end;
  r.limit = *limit;
  r.selectors = std::move(*sets);
  if (r.selectors.empty() && !series_api) r.selectors.emplace_back();
  r.querier = std::move(*querier);
  return r;
}

void Server::Impl::AnswerStrings(Call& c, httplib::Response& res, const ListStrings& list) {
  absl::StatusOr<SeriesRequest> r = ParseSeriesRequest(c, /*series_api=*/false);
  if (!r.ok()) return WriteJsonError(res, r.status());
  std::vector<std::string> items;
  for (const auto& matchers : r->selectors) {
    absl::StatusOr<std::vector<std::string>> got = list(*r->querier, matchers);
    if (!got.ok()) return WriteJsonError(res, got.status());
    items.insert(items.end(), got->begin(), got->end());
  }
  std::vector<std::string> warnings;
  items = Finish(std::move(items), r->limit, warnings);
  res.set_content(SuccessEnvelope(StringArray(items), warnings), kJson);
}

void Server::Impl::Labels(Call& c, httplib::Response& res) {
  AnswerStrings(c, res, [](Querier& q, const std::vector<LabelMatcher>& matchers) {
    return q.LabelNames(matchers);
  });
}

void Server::Impl::LabelValues(Call& c, httplib::Response& res) {
  std::string name = UnescapeLabelName(c.path_param);
  if (!IsValidLabelName(name)) {
    std::string quoted;
    AppendJsonString(quoted, name);
    return WriteJsonError(res, absl::InvalidArgumentError(absl::StrCat("invalid label name: ", quoted)));
  }
  AnswerStrings(c, res, [&name](Querier& q, const std::vector<LabelMatcher>& matchers) {
    return q.LabelValues(name, matchers);
  });
}

void Server::Impl::SeriesApi(Call& c, httplib::Response& res) {
  if (!c.form.Has("match[]")) {
    return WriteJsonError(res, absl::InvalidArgumentError("no match[] parameter provided"));
  }
  absl::StatusOr<SeriesRequest> r = ParseSeriesRequest(c, /*series_api=*/true);
  if (!r.ok()) return WriteJsonError(res, r.status());
  std::set<tidemark::Labels> found;
  for (const auto& matchers : r->selectors) {
    absl::StatusOr<std::vector<Series>> got =
        r->querier->Select(matchers, SelectHints{r->start, r->end});
    if (!got.ok()) return WriteJsonError(res, got.status());
    for (Series& s : *got) found.insert(std::move(s.labels));
  }
  std::vector<std::string> warnings;
  std::string data = "[";
  int64_t n = 0;
  for (const tidemark::Labels& labels : found) {
    if (r->limit > 0 && n == r->limit) {
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
  absl::StatusOr<ingest::RemoteWriteVersion> version = ingest::RemoteWriteVersionOf(content_type);
  if (!version.ok()) {
    code = 415;
    WriteText(res, code, std::string(version.status().message()));
  } else {
    std::unique_ptr<Appender> appender = c.db->NewAppender(c.tenant);
    std::unique_ptr<ingest::SideStore> side = ingest::DBSideStore(*c.db, c.tenant);
    const std::string encoding = c.req.get_header_value("Content-Encoding");
    const bool v2 = *version == ingest::RemoteWriteVersion::k2;
    ingest::WriteResult result =
        v2 ? ingest::HandleRemoteWrite2(c.body, encoding, options.write_limits, *appender,
                                        side.get())
           : ingest::HandleRemoteWrite(c.body, encoding, options.write_limits, *appender,
                                       side.get());
    code = RemoteWriteCode(result.status);
    if (v2) {
      // Remote write 2.0: what was written, on success and failure alike.
      res.set_header("X-Prometheus-Remote-Write-Samples-Written",
                     absl::StrCat(result.samples_accepted));
      res.set_header("X-Prometheus-Remote-Write-Histograms-Written",
                     absl::StrCat(result.histograms_written));
      res.set_header("X-Prometheus-Remote-Write-Exemplars-Written",
                     absl::StrCat(result.exemplars_written));
    }
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

namespace {

// The matchers of every vector selector in `expr` (also inside range selectors, subqueries,
// calls and operators), as Prometheus's parser.ExtractSelectors.
void CollectSelectors(const promql::Expr& expr, std::vector<std::vector<LabelMatcher>>& out) {
  std::visit(
      [&out](const auto& node) {
        using T = std::decay_t<decltype(node)>;
        if constexpr (std::is_same_v<T, promql::VectorSelector>) {
          out.push_back(node.matchers);
        } else if constexpr (std::is_same_v<T, promql::MatrixSelector>) {
          if (node.selector) CollectSelectors(*node.selector, out);
        } else if constexpr (std::is_same_v<T, promql::SubqueryExpr> ||
                             std::is_same_v<T, promql::UnaryExpr> ||
                             std::is_same_v<T, promql::ParenExpr>) {
          if (node.expr) CollectSelectors(*node.expr, out);
        } else if constexpr (std::is_same_v<T, promql::Call>) {
          for (const promql::ExprPtr& arg : node.args) {
            if (arg) CollectSelectors(*arg, out);
          }
        } else if constexpr (std::is_same_v<T, promql::AggregateExpr>) {
          if (node.expr) CollectSelectors(*node.expr, out);
          if (node.param) CollectSelectors(*node.param, out);
        } else if constexpr (std::is_same_v<T, promql::BinaryExpr>) {
          if (node.lhs) CollectSelectors(*node.lhs, out);
          if (node.rhs) CollectSelectors(*node.rhs, out);
        }
      },
      expr.node);
}

// An integer parameter of the metadata API: absent means -1 (no limit); Prometheus's wording.
absl::StatusOr<int64_t> MetadataLimit(const Form& form, std::string_view name) {
  std::string text = form.Value(name);
  if (text.empty()) return -1;
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(name), " must be a number"));
  }
  return v;
}

}  // namespace

void Server::Impl::Metadata(Call& c, httplib::Response& res) {
  absl::StatusOr<int64_t> limit = MetadataLimit(c.form, "limit");
  if (!limit.ok()) return WriteJsonError(res, limit.status());
  absl::StatusOr<int64_t> per_metric = MetadataLimit(c.form, "limit_per_metric");
  if (!per_metric.ok()) return WriteJsonError(res, per_metric.status());
  const std::string metric = c.form.Value("metric");
  // As Prometheus: limit >= 0 caps the metrics (0: none), limit_per_metric > 0 the entries of
  // each; one entry per metric is stored, so the latter never cuts anything.
  std::vector<std::pair<std::string, MetricMetadata>> empty;
  absl::StatusOr<std::vector<std::pair<std::string, MetricMetadata>>> got =
      *limit == 0 ? empty : c.db->GetMetadata(c.tenant, metric, *limit > 0 ? *limit : 0);
  if (!got.ok()) return WriteJsonError(res, got.status());
  std::string data = "{";
  bool first = true;
  for (const auto& [name, md] : *got) {
    if (!first) data.push_back(',');
    first = false;
    AppendJsonString(data, name);
    data += ":[{\"type\":";
    AppendJsonString(data, md.type);
    data += ",\"help\":";
    AppendJsonString(data, md.help);
    data += ",\"unit\":";
    AppendJsonString(data, md.unit);
    data += "}]";
  }
  data.push_back('}');
  res.set_content(SuccessEnvelope(data), kJson);
}

void Server::Impl::QueryExemplars(Call& c, httplib::Response& res) {
  absl::StatusOr<int64_t> start = TimeParam(c.form, "start", kMinTimeMs);
  if (!start.ok()) return WriteJsonError(res, start.status());
  absl::StatusOr<int64_t> end = TimeParam(c.form, "end", kMaxTimeMs);
  if (!end.ok()) return WriteJsonError(res, end.status());
  if (*end < *start) {
    return WriteJsonError(
        res, InvalidParam("end", absl::InvalidArgumentError(
                                     "end timestamp must not be before start time")));
  }
  absl::StatusOr<promql::ExprPtr> expr = promql::Parse(c.form.Value("query"));
  if (!expr.ok()) {
    return WriteJsonError(res, InvalidParam("query", absl::InvalidArgumentError(
                                                         expr.status().message())));
  }
  std::vector<std::vector<LabelMatcher>> selectors;
  CollectSelectors(**expr, selectors);
  auto got = c.db->QueryExemplars(c.tenant, selectors, *start, *end);
  if (!got.ok()) return WriteJsonError(res, got.status());
  std::string data = "[";
  for (size_t i = 0; i < got->size(); ++i) {
    const SeriesExemplars& se = (*got)[i];
    if (i > 0) data.push_back(',');
    data += "{\"seriesLabels\":";
    AppendLabels(data, se.series);
    data += ",\"exemplars\":[";
    for (size_t j = 0; j < se.exemplars.size(); ++j) {
      const Exemplar& e = se.exemplars[j];
      if (j > 0) data.push_back(',');
      data += "{\"labels\":";
      AppendLabels(data, e.labels);
      data += ",\"value\":\"";
      AppendValue(data, e.value);
      data += "\",\"timestamp\":";
      AppendTimestamp(data, e.t_ms);
      data.push_back('}');
    }
    data += "]}";
  }
  data.push_back(']');
  res.set_content(SuccessEnvelope(data), kJson);
}

void Server::Impl::Flags(Call&, httplib::Response& res) {
  std::string data = "{";
  for (size_t i = 0; i < options.flags.size(); ++i) {
    if (i > 0) data.push_back(',');
    AppendJsonString(data, options.flags[i].first);
    data.push_back(':');
    AppendJsonString(data, options.flags[i].second);
  }
  data.push_back('}');
  res.set_content(SuccessEnvelope(data), kJson);
}

void Server::Impl::RuntimeInfo(Call&, httplib::Response& res) {
  char cwd[4096] = {};
  if (getcwd(cwd, sizeof(cwd)) == nullptr) cwd[0] = '\0';
  int64_t threads = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++threads;
  }
  std::string data = "{\"startTime\":";
  AppendJsonString(data, Rfc3339(start_time));
  data += ",\"CWD\":";
  AppendJsonString(data, cwd);
  data += ",\"reloadConfigSuccess\":true,\"lastConfigTime\":";
  AppendJsonString(data, Rfc3339(start_time));
  data += ",\"corruptionCount\":0,\"goroutineCount\":";
  data += std::to_string(threads);
  data += ",\"GOMAXPROCS\":";
  data += std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  data += ",\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":";
  AppendJsonString(data, options.storage_retention);
  data += "}";
  res.set_content(SuccessEnvelope(data), kJson);
}

// Cardinality of the recent data (the last 3 hours up to the newest sample, the span of
// Prometheus's head block): per metric name, label name and label pair, top `limit` (10).
void Server::Impl::TsdbStatus(Call& c, httplib::Response& res) {
  constexpr int64_t kHeadSpanMs = 3 * 3600 * 1000;
  absl::StatusOr<int64_t> limit = ParseLimit(c.form.Value("limit"));
  if (!limit.ok()) return WriteJsonError(res, InvalidParam("limit", limit.status()));
  size_t top = *limit > 0 ? static_cast<size_t>(*limit) : 10;
  Stats stats = c.db->GetStats();
  int64_t maxt = stats.max_time_ms;
  int64_t mint = std::max(stats.min_time_ms, maxt - kHeadSpanMs);
  std::map<std::string, int64_t> by_metric, values_by_name, bytes_by_name, by_pair;
  int64_t num_series = 0;
  if (stats.max_time_ms != 0 || stats.min_time_ms != 0) {
    absl::StatusOr<std::unique_ptr<Querier>> querier = c.db->NewQuerier(c.tenant, mint, maxt);
    if (!querier.ok()) return WriteJsonError(res, querier.status());
    absl::StatusOr<LabelMatcher> any_name =
        LabelMatcher::Create(MatchType::kRegexMatch, std::string(kMetricNameLabel), ".+");
    if (!any_name.ok()) return WriteJsonError(res, any_name.status());
    absl::StatusOr<std::vector<Series>> series =
        (*querier)->Select({*any_name}, SelectHints{mint, maxt});
    if (!series.ok()) return WriteJsonError(res, series.status());
    num_series = static_cast<int64_t>(series->size());
    for (const Series& s : *series) {
      for (const Label& l : s.labels) {
        std::string pair = absl::StrCat(l.name, "=", l.value);
        if (by_pair[pair]++ == 0) ++values_by_name[l.name];
        bytes_by_name[l.name] += static_cast<int64_t>(l.value.size());
      }
      ++by_metric[std::string(s.labels.MetricName())];
    }
  }
  std::string data = "{\"headStats\":{\"numSeries\":";
  data += std::to_string(num_series);
  data += ",\"numLabelPairs\":";
  data += std::to_string(by_pair.size());
  data += ",\"chunkCount\":";
  data += std::to_string(stats.head_chunks);
  data += ",\"minTime\":";
  data += std::to_string(mint);
  data += ",\"maxTime\":";
  data += std::to_string(maxt);
  data += "},\"seriesCountByMetricName\":";
  data += TopStats(by_metric, top);
  data += ",\"labelValueCountByLabelName\":";
  data += TopStats(values_by_name, top);
  data += ",\"memoryInBytesByLabelName\":";
  data += TopStats(bytes_by_name, top);
  data += ",\"seriesCountByLabelValuePair\":";
  data += TopStats(by_pair, top);
  data += "}";
  res.set_content(SuccessEnvelope(data), kJson);
}

void Server::Impl::FormatQuery(Call& c, httplib::Response& res) {
  absl::StatusOr<promql::ExprPtr> expr = promql::Parse(c.form.Value("query"));
  if (!expr.ok()) return WriteJsonError(res, InvalidParam("query", expr.status()));
  std::string data;
  AppendJsonString(data, promql::Print(**expr));
  res.set_content(SuccessEnvelope(data), kJson);
}

// Prometheus's delete_series: every match[] selector, [start, end] (all time by default),
// answered 204. Storage deletes the samples themselves (no tombstones), so clean_tombstones has
// nothing left to do and answers 204 at once.
void Server::Impl::DeleteSeries(Call& c, httplib::Response& res) {
  if (!c.form.Has("match[]")) {
    return WriteJsonError(res, absl::InvalidArgumentError("no match[] parameter provided"));
  }
  absl::StatusOr<int64_t> start = TimeParam(c.form, "start", kMinTimeMs);
  if (!start.ok()) return WriteJsonError(res, start.status());
  absl::StatusOr<int64_t> end = TimeParam(c.form, "end", kMaxTimeMs);
  if (!end.ok()) return WriteJsonError(res, end.status());
  absl::StatusOr<std::vector<std::vector<LabelMatcher>>> sets = MatchersOf(c.form, false);
  if (!sets.ok()) return WriteJsonError(res, sets.status());
  absl::StatusOr<int64_t> deleted = c.db->DeleteSeries(c.tenant, *sets, *start, *end);
  if (!deleted.ok()) return WriteJsonError(res, deleted.status());
  res.status = 204;
}

// OTLP/HTTP export (https://opentelemetry.io/docs/specs/otlp/#otlphttp): errors and partial
// successes are answered in the request's encoding; 429/503 carry Retry-After.
void Server::Impl::OtlpMetrics(Call& c, httplib::Response& res) {
  const std::string content_type = c.req.get_header_value("Content-Type");
  absl::StatusOr<ingest::OtlpEncoding> encoding = ingest::OtlpEncodingOf(content_type);
  if (!encoding.ok()) {
    WriteText(res, 415, std::string(encoding.status().message()));
    return;
  }
  auto answer = [&](int code, const ingest::OtlpResult& result) {
    res.status = code;
    if (code == 429 || code == 503) res.set_header("Retry-After", "1");
    res.set_content(ingest::EncodeOtlpResponse(result, *encoding),
                    std::string(ingest::OtlpContentType(*encoding)));
  };
  std::string content_encoding = c.req.get_header_value("Content-Encoding");
  // cpp-httplib (built with zlib) may already have inflated a gzip body: a gzip stream opens
  // with 1f 8b, a protobuf or JSON body never does.
  if (c.body.substr(0, 2) != std::string_view("\x1f\x8b", 2) &&
      absl::AsciiStrToLower(content_encoding) == "gzip") {
    content_encoding.clear();
  }
  if (absl::Status s = ingest::CheckOtlpContentEncoding(content_encoding); !s.ok()) {
    ingest::OtlpResult result;
    result.status = s;
    return answer(415, result);
  }
  if (otlp_inflight.fetch_add(1) >= options.otlp_max_inflight_requests) {
    otlp_inflight.fetch_sub(1);
    ingest::OtlpResult result;
    result.status = absl::ResourceExhaustedError("too many OTLP requests in progress; retry later");
    return answer(429, result);
  }
  std::shared_ptr<ingest::DeltaStateStore> store = OtlpStore(c.db);
  std::unique_ptr<Appender> appender = c.db->NewAppender(c.tenant);
  std::unique_ptr<ingest::SideStore> side = ingest::DBSideStore(*c.db, c.tenant);
  ingest::OtlpResult result = otlp.Export(c.tenant, c.body, *encoding, content_encoding,
                                          *appender, store.get(), side.get());
  otlp_inflight.fetch_sub(1);
  int code = 500;
  switch (result.status.code()) {
    case absl::StatusCode::kOk: code = 200; break;
    case absl::StatusCode::kInvalidArgument: code = 400; break;
    case absl::StatusCode::kResourceExhausted: code = 413; break;
    case absl::StatusCode::kUnavailable: code = 503; break;
    default: code = 500;
  }
  if (result.samples_appended > 0) metrics.AddAppended(c.tenant, result.samples_appended);
  if (result.samples_rejected > 0) {
    metrics.AddRejected(RejectReasonName(result.reject_reason), result.samples_rejected);
  }
  if (code >= 500) LogWarn(absl::StrCat("OTLP export failed: ", result.status.ToString()));
  answer(code, result);
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
      std::string message = code == 413
                                ? absl::StrCat("request body too large (limit ", limit, " bytes)")
                                : std::string("cannot read the request body");
      // cpp-httplib decodes gzip, deflate and br itself and fails the read when it cannot. On
      // the OTLP routes only gzip (or none) is accepted: any other coding is 415, as OTLP/HTTP
      // says, not a malformed body.
      const std::string coding = req.get_header_value("Content-Encoding");
      if (code == 400 && IsOtlpPath(req.path) &&
          !ingest::CheckOtlpContentEncoding(coding).ok()) {
        code = 415;
        message = std::string(ingest::CheckOtlpContentEncoding(coding).message());
      }
      WriteText(res, code, message);
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
  // The library closes a connection after 5 requests by default; a remote-write shard would
  // then connect again every 5 requests (a handshake, an accept and a worker handoff each).
  // Prometheus's and Go's servers keep a connection for as many requests as it carries.
  http.set_keep_alive_max_count(std::numeric_limits<size_t>::max());
  // As Go's servers: a response's header and body writes go out at once, not after the
  // client's delayed ACK of the first.
  http.set_tcp_nodelay(true);
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
