// The HTTP QuerySource: cpp-httplib client against a Prometheus-compatible HTTP API, and the
// decoders of that API's JSON (nlohmann_json).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/query_source.h"
#include "httplib.h"

namespace tidemark::cli {
namespace internal {
namespace {

using nlohmann::json;

absl::StatusOr<json> ParseBody(std::string_view body) {
  try {
    return json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    std::string head(body.substr(0, 200));
    return absl::DataLossError(absl::StrCat("response is not JSON (", e.what(), "): ", head));
  }
}

// The `data` member of a successful response; the server's error otherwise.
absl::StatusOr<json> DataOf(std::string_view body) {
  absl::StatusOr<json> doc = ParseBody(body);
  if (!doc.ok()) return doc.status();
  if (!doc->is_object()) return absl::DataLossError("response is not a JSON object");
  std::string status = doc->value("status", "");
  if (status != "success") {
    std::string type = doc->value("errorType", "");
    std::string error = doc->value("error", "");
    if (status != "error" && error.empty()) {
      return absl::DataLossError("response has neither status success nor an error");
    }
    absl::StatusCode code = type == "bad_data"      ? absl::StatusCode::kInvalidArgument
                            : type == "timeout"     ? absl::StatusCode::kDeadlineExceeded
                            : type == "unavailable" ? absl::StatusCode::kUnavailable
                                                    : absl::StatusCode::kFailedPrecondition;
    return absl::Status(code, type.empty() ? error : absl::StrCat(type, ": ", error));
  }
  if (!doc->contains("data")) return absl::DataLossError("response has no data");
  return std::move((*doc)["data"]);
}

absl::StatusOr<double> ValueOf(const json& v) {
  if (!v.is_string()) return absl::DataLossError("sample value is not a string");
  std::string s = v.get<std::string>();
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) {
    return absl::DataLossError(absl::StrCat("bad sample value \"", s, "\""));
  }
  return d;
}

absl::StatusOr<Sample> SampleOf(const json& pair) {
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number()) {
    return absl::DataLossError("sample is not [time, \"value\"]");
  }
  absl::StatusOr<double> v = ValueOf(pair[1]);
  if (!v.ok()) return v.status();
  return Sample{static_cast<int64_t>(std::llround(pair[0].get<double>() * 1000)), *v};
}

absl::StatusOr<Labels> LabelsOf(const json& metric) {
  if (!metric.is_object()) return absl::DataLossError("metric is not an object");
  std::vector<Label> labels;
  for (auto it = metric.begin(); it != metric.end(); ++it) {
    if (!it.value().is_string()) return absl::DataLossError("label value is not a string");
    labels.push_back({it.key(), it.value().get<std::string>()});
  }
  return Labels::FromUnsorted(std::move(labels));
}

absl::StatusOr<promql::Value> ValueOfData(const json& data) {
  if (!data.is_object()) return absl::DataLossError("data is not an object");
  std::string type = data.value("resultType", "");
  const json& result = data.contains("result") ? data["result"] : json();
  if (type == "scalar" || type == "string") {
    if (!result.is_array() || result.size() != 2 || !result[0].is_number() ||
        !result[1].is_string()) {
      return absl::DataLossError("scalar result is not [time, \"value\"]");
    }
    int64_t t = static_cast<int64_t>(std::llround(result[0].get<double>() * 1000));
    if (type == "string") return promql::String{t, result[1].get<std::string>()};
    absl::StatusOr<double> v = ValueOf(result[1]);
    if (!v.ok()) return v.status();
    return promql::Scalar{t, *v};
  }
  if (!result.is_array()) return absl::DataLossError("result is not an array");
  if (type == "vector") {
    promql::Vector out;
    for (const json& e : result) {
      if (!e.is_object() || !e.contains("value")) return absl::DataLossError("bad vector element");
      absl::StatusOr<Labels> labels = LabelsOf(e.value("metric", json::object()));
      if (!labels.ok()) return labels.status();
      absl::StatusOr<Sample> s = SampleOf(e["value"]);
      if (!s.ok()) return s.status();
      out.push_back({std::move(*labels), s->t, s->v});
    }
    return out;
  }
  if (type == "matrix") {
    promql::Matrix out;
    for (const json& e : result) {
      if (!e.is_object() || !e.contains("values")) return absl::DataLossError("bad matrix series");
      absl::StatusOr<Labels> labels = LabelsOf(e.value("metric", json::object()));
      if (!labels.ok()) return labels.status();
      promql::MatrixSeries series{std::move(*labels), {}};
      for (const json& p : e["values"]) {
        absl::StatusOr<Sample> s = SampleOf(p);
        if (!s.ok()) return s.status();
        series.samples.push_back(*s);
      }
      out.push_back(std::move(series));
    }
    return out;
  }
  return absl::DataLossError(absl::StrCat("unknown resultType \"", type, "\""));
}

}  // namespace

absl::StatusOr<promql::Value> DecodeQueryResponse(std::string_view body) {
  absl::StatusOr<json> data = DataOf(body);
  if (!data.ok()) return data.status();
  try {
    return ValueOfData(*data);
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("malformed query response: ", e.what()));
  }
}

absl::StatusOr<std::vector<std::string>> DecodeStringListResponse(std::string_view body) {
  absl::StatusOr<json> data = DataOf(body);
  if (!data.ok()) return data.status();
  if (data->is_null()) return std::vector<std::string>{};
  if (!data->is_array()) return absl::DataLossError("data is not an array");
  std::vector<std::string> out;
  for (const json& s : *data) {
    if (!s.is_string()) return absl::DataLossError("data holds a non-string");
    out.push_back(s.get<std::string>());
  }
  return out;
}

absl::StatusOr<std::vector<Labels>> DecodeSeriesResponse(std::string_view body) {
  absl::StatusOr<json> data = DataOf(body);
  if (!data.ok()) return data.status();
  if (data->is_null()) return std::vector<Labels>{};
  if (!data->is_array()) return absl::DataLossError("data is not an array");
  std::vector<Labels> out;
  for (const json& m : *data) {
    absl::StatusOr<Labels> labels = LabelsOf(m);
    if (!labels.ok()) return labels.status();
    out.push_back(std::move(*labels));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace internal

namespace {

std::string Seconds(int64_t ms) { return absl::StrFormat("%.3f", static_cast<double>(ms) / 1000); }

class HttpSource : public QuerySource {
 public:
  HttpSource(HttpSourceOptions options, std::string scheme_host_port, std::string prefix)
      : options_(std::move(options)),
        base_(std::move(scheme_host_port)),
        prefix_(std::move(prefix)),
        client_(base_) {
    client_.set_connection_timeout(10);
    client_.set_read_timeout(options_.timeout_seconds);
    client_.set_write_timeout(options_.timeout_seconds);
    if (!options_.token.empty()) {
      headers_.emplace("Authorization", absl::StrCat("Bearer ", options_.token));
    }
    if (!options_.tenant.empty()) headers_.emplace("X-Scope-OrgID", options_.tenant);
  }

  absl::StatusOr<promql::Value> Instant(std::string_view query, int64_t time_ms) override {
    httplib::Params params{{"query", std::string(query)}, {"time", Seconds(time_ms)}};
    absl::StatusOr<std::string> body = Post("/api/v1/query", params);
    if (!body.ok()) return body.status();
    return WithQuery(internal::DecodeQueryResponse(*body), query);
  }

  absl::StatusOr<promql::Matrix> Range(std::string_view query, int64_t start_ms, int64_t end_ms,
                                       int64_t step_ms) override {
    httplib::Params params{{"query", std::string(query)},
                           {"start", Seconds(start_ms)},
                           {"end", Seconds(end_ms)},
                           {"step", Seconds(step_ms)}};
    absl::StatusOr<std::string> body = Post("/api/v1/query_range", params);
    if (!body.ok()) return body.status();
    absl::StatusOr<promql::Value> v = WithQuery(internal::DecodeQueryResponse(*body), query);
    if (!v.ok()) return v.status();
    if (auto* m = std::get_if<promql::Matrix>(&*v)) return std::move(*m);
    return absl::DataLossError("range query answered with a non-matrix result");
  }

  absl::StatusOr<std::vector<std::string>> LabelNames(std::string_view selector, int64_t start_ms,
                                                      int64_t end_ms) override {
    httplib::Params params{{"start", Seconds(start_ms)}, {"end", Seconds(end_ms)}};
    if (!selector.empty()) params.emplace("match[]", std::string(selector));
    absl::StatusOr<std::string> body = Post("/api/v1/labels", params);
    if (!body.ok()) return body.status();
    return internal::DecodeStringListResponse(*body);
  }

  absl::StatusOr<std::vector<std::string>> LabelValues(std::string_view name,
                                                       std::string_view selector, int64_t start_ms,
                                                       int64_t end_ms) override {
    httplib::Params params{{"start", Seconds(start_ms)}, {"end", Seconds(end_ms)}};
    if (!selector.empty()) params.emplace("match[]", std::string(selector));
    std::string path = absl::StrCat("/api/v1/label/", std::string(name), "/values?",
                                    httplib::detail::params_to_query_str(params));
    absl::StatusOr<std::string> body = Send("GET", path, nullptr);
    if (!body.ok()) return body.status();
    return internal::DecodeStringListResponse(*body);
  }

  absl::StatusOr<std::vector<Labels>> Series(std::string_view selector, int64_t start_ms,
                                             int64_t end_ms) override {
    httplib::Params params{
        {"match[]", std::string(selector)}, {"start", Seconds(start_ms)}, {"end", Seconds(end_ms)}};
    absl::StatusOr<std::string> body = Post("/api/v1/series", params);
    if (!body.ok()) return body.status();
    return internal::DecodeSeriesResponse(*body);
  }

  std::string Describe() const override { return base_ + prefix_; }

 private:
  template <typename T>
  static absl::StatusOr<T> WithQuery(absl::StatusOr<T> v, std::string_view query) {
    if (v.ok()) return v;
    return absl::Status(v.status().code(),
                        absl::StrCat("query ", std::string(query), ": ", v.status().message()));
  }

  absl::StatusOr<std::string> Post(const std::string& path, const httplib::Params& params) {
    return Send("POST", path, &params);
  }

  absl::StatusOr<std::string> Send(const char* method, const std::string& path,
                                   const httplib::Params* params) {
    std::string full = prefix_ + path;
    httplib::Result res =
        params != nullptr ? client_.Post(full, headers_, *params) : client_.Get(full, headers_);
    if (!res) {
      httplib::Error e = res.error();
      std::string why = e == httplib::Error::Connection
                            ? "connection failed (is the server running, is the URL right?)"
                        : e == httplib::Error::Read ? "no answer (read failed or timed out)"
                                                    : httplib::to_string(e);
      return absl::UnavailableError(absl::StrCat("cannot reach ", Describe(), ": ", why));
    }
    if (res->status == 401 || res->status == 403) return AuthError(res->status, res->body);
    if (res->status >= 200 && res->status < 300) return std::move(res->body);
    // Prometheus answers query errors with 400/422/503 and a JSON error body.
    absl::StatusOr<promql::Value> decoded = internal::DecodeQueryResponse(res->body);
    if (!decoded.ok() && !absl::IsDataLoss(decoded.status())) return decoded.status();
    return absl::UnavailableError(absl::StrCat(Describe(), " answered HTTP ", res->status, " to ",
                                               method, " ", path, ": ", res->body.substr(0, 200)));
  }

  // 401/403 as an error that says what to change on the command line.
  absl::Status AuthError(int http_status, std::string_view body) const {
    std::string reason(absl::StripAsciiWhitespace(absl::string_view(body.data(), body.size())));
    if (reason.size() > 200) reason = reason.substr(0, 200) + "...";
    std::string tenant = options_.tenant.empty() ? "the default tenant"
                                                 : absl::StrCat("tenant \"", options_.tenant, "\"");
    std::string hint;
    if (http_status == 401) {
      hint = options_.token.empty()
                 ? "the server requires a bearer token: give --token or --token-file"
                 : "the token was not accepted: check --token / --token-file";
      return absl::UnauthenticatedError(
          absl::StrCat(Describe(), " refused the request: HTTP 401 (", reason, "); ", hint));
    }
    hint = absl::StrCat("the token may not read ", tenant,
                        ": use a token allowed for it, or the right --tenant");
    return absl::PermissionDeniedError(
        absl::StrCat(Describe(), " refused the request: HTTP 403 (", reason, "); ", hint));
  }

  HttpSourceOptions options_;
  std::string base_;
  std::string prefix_;
  httplib::Client client_;
  httplib::Headers headers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<QuerySource>> NewHttpSource(const HttpSourceOptions& options) {
  std::string url = options.url;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server \"", url, "\": expected http://host:port or https://host:port"));
  }
  std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("--server \"", url, "\": scheme must be http or https"));
  }
  size_t path_start = url.find('/', scheme_end + 3);
  std::string host_port =
      url.substr(scheme_end + 3,
                 path_start == std::string::npos ? std::string::npos : path_start - scheme_end - 3);
  if (host_port.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--server \"", url, "\": no host"));
  }
  std::string prefix = path_start == std::string::npos ? "" : url.substr(path_start);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return std::unique_ptr<QuerySource>(
      new HttpSource(options, absl::StrCat(scheme, "://", host_port), std::move(prefix)));
}

}  // namespace tidemark::cli
