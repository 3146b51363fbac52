// Tests of the query side of the command line: time arguments, output formats, decoding of the
// Prometheus HTTP API's JSON, and the embedded source over a real data directory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <thread>

#include "cli/query_output.h"
#include "cli/query_source.h"
#include "cli/time_args.h"
#include "httplib.h"
#include "storage/db.h"

namespace tidemark::cli {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMar1 = 1709251200000;  // 2024-03-01T00:00:00Z

TEST(TimeArgs, ParsesRfc3339UnixAndRelative) {
  const int64_t now = kMar1 + 5000;
  EXPECT_EQ(*ParseTimeArg("2024-03-01T00:00:00Z", now), kMar1);
  EXPECT_EQ(*ParseTimeArg("2024-03-01T01:00:00+01:00", now), kMar1);
  EXPECT_EQ(*ParseTimeArg("2024-03-01T00:00:00.250Z", now), kMar1 + 250);
  EXPECT_EQ(*ParseTimeArg("1709251200", now), kMar1);
  EXPECT_EQ(*ParseTimeArg("1709251200.5", now), kMar1 + 500);
  EXPECT_EQ(*ParseTimeArg("now", now), now);
  EXPECT_EQ(*ParseTimeArg("now-1h", now), now - 3600000);
  EXPECT_EQ(*ParseTimeArg("now+30m", now), now + 1800000);
  EXPECT_EQ(*ParseTimeArg("now-1d12h", now), now - 36 * 3600000LL);
  for (const char* bad :
       {"", "yesterday", "now-", "now-1x", "2024-13-01T00:00:00Z", "0x10", "nan", "inf"}) {
    absl::StatusOr<int64_t> t = ParseTimeArg(bad, now);
    EXPECT_FALSE(t.ok()) << bad;
    if (!t.ok()) {
      EXPECT_THAT(std::string(t.status().message()), HasSubstr("RFC3339"));
    }
  }
}

TEST(TimeArgs, DurationsAndFormatting) {
  EXPECT_EQ(*ParseDurationArg("15s"), 15000);
  EXPECT_EQ(*ParseDurationArg("1h30m"), 5400000);
  EXPECT_EQ(*ParseDurationArg("60"), 60000);
  EXPECT_EQ(*ParseDurationArg("0.5"), 500);
  EXPECT_FALSE(ParseDurationArg("0").ok());
  EXPECT_FALSE(ParseDurationArg("-5").ok());
  EXPECT_FALSE(ParseDurationArg("5 minutes").ok());
  EXPECT_EQ(FormatTimeRfc3339(kMar1), "2024-03-01T00:00:00Z");
  EXPECT_EQ(FormatTimeRfc3339(kMar1 + 7), "2024-03-01T00:00:00.007Z");
  EXPECT_EQ(FormatHumanDuration(12 * 60000), "12m");
  EXPECT_EQ(FormatHumanDuration(3 * 86400000LL + 4 * 3600000), "3d 4h");
  EXPECT_EQ(FormatHumanDuration(5 * 3600000 + 20 * 60000), "5h 20m");
  EXPECT_EQ(FormatHumanDuration(42000), "42s");
}

TEST(TimeArgs, StartOfMonth) {
  EXPECT_EQ(StartOfMonthUtc(kMar1), kMar1);
  EXPECT_EQ(StartOfMonthUtc(kMar1 + 19 * 86400000LL + 12 * 3600000), kMar1);
  EXPECT_EQ(StartOfMonthUtc(kMar1 - 1), kMar1 - 29 * 86400000LL);  // 2024 is a leap year
  EXPECT_EQ(StartOfMonthUtc(*ParseTimeArg("2023-12-31T23:59:59Z", 0)),
            *ParseTimeArg("2023-12-01T00:00:00Z", 0));
}

TEST(QueryOutput, FormatValueAsPrometheus) {
  EXPECT_EQ(FormatValue(1), "1");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-2.5), "-2.5");
  EXPECT_EQ(FormatValue(1e21), "1000000000000000000000");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

promql::Vector TwoElements() {
  return {
      {Labels::FromUnsorted({{"__name__", "up"}, {"job", "api"}}), kMar1, 1},
      {Labels::FromUnsorted({{"__name__", "up"}, {"job", "db, main"}, {"zone", "a"}}), kMar1, 0.5}};
}

TEST(QueryOutput, VectorAsTableJsonCsv) {
  promql::Value v = TwoElements();
  EXPECT_EQ(RenderValue(v, OutputFormat::kTable),
            "SERIES                        VALUE  TIMESTAMP\n"
            "up{job=\"api\"}                 1      2024-03-01T00:00:00Z\n"
            "up{job=\"db, main\", zone=\"a\"}  0.5    2024-03-01T00:00:00Z\n");
  EXPECT_EQ(RenderValue(v, OutputFormat::kCsv),
            "__name__,job,zone,timestamp,value\n"
            "up,api,,1709251200,1\n"
            "up,\"db, main\",a,1709251200,0.5\n");
  EXPECT_EQ(RenderValue(v, OutputFormat::kJson),
            "{\"data\":{\"result\":[{\"metric\":{\"__name__\":\"up\",\"job\":\"api\"},\"value\":"
            "[1709251200.0,\"1\"]},{\"metric\":{\"__name__\":\"up\",\"job\":\"db, main\",\"zone\":"
            "\"a\"},\"value\":[1709251200.0,\"0.5\"]}],\"resultType\":\"vector\"},\"status\":"
            "\"success\"}\n");
  EXPECT_EQ(RenderValue(promql::Vector{}, OutputFormat::kTable), "(no data)\n");
}

TEST(QueryOutput, MatrixScalarAndLists) {
  promql::Matrix m{{Labels::FromUnsorted({{"a", "1"}}), {{kMar1, 1}, {kMar1 + 60000, 2}}}};
  EXPECT_EQ(RenderValue(m, OutputFormat::kCsv),
            "__name__,a,timestamp,value\n,1,1709251200,1\n,1,1709251260,2\n");
  EXPECT_EQ(RenderValue(promql::Scalar{kMar1 + 500, 3}, OutputFormat::kCsv),
            "timestamp,value\n1709251200.500,3\n");
  EXPECT_EQ(RenderStrings({"a", "b,c"}, OutputFormat::kCsv), "a\n\"b,c\"\n");
  EXPECT_EQ(RenderStrings({"a"}, OutputFormat::kJson),
            "{\"data\":[\"a\"],\"status\":\"success\"}\n");
  EXPECT_EQ(RenderSeries({Labels::FromUnsorted({{"__name__", "up"}, {"job", "x"}})},
                         OutputFormat::kTable),
            "up{job=\"x\"}\n");
  EXPECT_FALSE(ParseOutputFormat("yaml").ok());
}

TEST(HttpDecode, PrometheusResponses) {
  absl::StatusOr<promql::Value> v = internal::DecodeQueryResponse(
      R"({"status":"success","data":{"resultType":"vector","result":[)"
      R"({"metric":{"job":"a","__name__":"up"},"value":[1709251200.5,"NaN"]},)"
      R"({"metric":{},"value":[1709251200,"+Inf"]}]}})");
  ASSERT_TRUE(v.ok()) << v.status();
  const auto& vec = std::get<promql::Vector>(*v);
  ASSERT_EQ(vec.size(), 2u);
  EXPECT_EQ(vec[0].labels.ToString(), "up{job=\"a\"}");
  EXPECT_EQ(vec[0].t, kMar1 + 500);
  EXPECT_TRUE(std::isnan(vec[0].v));
  EXPECT_TRUE(std::isinf(vec[1].v));

  v = internal::DecodeQueryResponse(
      R"({"status":"success","data":{"resultType":"matrix","result":[)"
      R"({"metric":{"a":"b"},"values":[[1709251200,"1"],[1709251260,"2.5"]]}]}})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(std::get<promql::Matrix>(*v)[0].samples[1], (Sample{kMar1 + 60000, 2.5}));

  v = internal::DecodeQueryResponse(
      R"({"status":"success","data":{"resultType":"scalar","result":[1709251200,"4"]}})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::get<promql::Scalar>(*v).v, 4);

  v = internal::DecodeQueryResponse(
      R"({"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected <op:+>"})");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("parse error"));
  EXPECT_FALSE(internal::DecodeQueryResponse("<html>").ok());
  EXPECT_FALSE(
      internal::DecodeQueryResponse(
          R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,2]}]}})")
          .ok());

  absl::StatusOr<std::vector<std::string>> names =
      internal::DecodeStringListResponse(R"({"status":"success","data":["__name__","job"]})");
  ASSERT_TRUE(names.ok());
  EXPECT_THAT(*names, ElementsAre("__name__", "job"));
  absl::StatusOr<std::vector<Labels>> series = internal::DecodeSeriesResponse(
      R"({"status":"success","data":[{"__name__":"up","job":"b"},{"__name__":"up","job":"a"}]})");
  ASSERT_TRUE(series.ok());
  EXPECT_EQ((*series)[0].ToString(), "up{job=\"a\"}");
}

HttpSourceOptions Url(const std::string& url) {
  HttpSourceOptions o;
  o.url = url;
  return o;
}

EmbeddedSourceOptions Dir(const std::string& path, const std::string& tenant = "") {
  EmbeddedSourceOptions o;
  o.path = path;
  o.tenant = tenant;
  return o;
}

TEST(HttpSource, BadUrlAndUnreachableServer) {
  EXPECT_FALSE(NewHttpSource(Url("localhost:9090")).ok());
  EXPECT_FALSE(NewHttpSource(Url("ftp://x")).ok());
  // Port 1 on loopback: nothing listens there.
  absl::StatusOr<std::unique_ptr<QuerySource>> s = NewHttpSource(Url("http://127.0.0.1:1/"));
  ASSERT_TRUE(s.ok());
  absl::StatusOr<promql::Value> v = (*s)->Instant("up", kMar1);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("cannot reach http://127.0.0.1:1"));
}

// A stand-in for an authenticating server: checks the bearer token and X-Scope-OrgID the CLI
// sends, answering 401 / 403 as Tidemark does and a one-sample vector naming the tenant otherwise.
class FakeAuthServer {
 public:
  FakeAuthServer() {
    server_.Post("/api/v1/query", [](const httplib::Request& req, httplib::Response& res) {
      std::string auth = req.get_header_value("Authorization");
      std::string tenant =
          req.has_header("X-Scope-OrgID") ? req.get_header_value("X-Scope-OrgID") : "anonymous";
      if (auth.empty() || auth.rfind("Bearer ", 0) != 0) {
        res.status = 401;
        res.set_content("unauthorized: missing bearer token\n", "text/plain");
      } else if (auth != "Bearer sesame") {
        res.status = 401;
        res.set_content("unauthorized: unknown token\n", "text/plain");
      } else if (tenant != "team-a") {
        res.status = 403;
        res.set_content("forbidden: token \"a\" may not use tenant \"" + tenant + "\"\n",
                        "text/plain");
      } else {
        res.set_content(R"({"status":"success","data":{"resultType":"vector","result":[)"
                        R"({"metric":{"tenant":")" +
                            tenant + R"("},"value":[1,"42"]}]}})",
                        "application/json");
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // The socket listens once bound; wait (bounded) for the accept loop too.
    for (int i = 0; i < 500 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~FakeAuthServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

TEST(HttpSource, TokenAndTenantHeadersAndAuthErrors) {
  FakeAuthServer server;
  auto query = [&](const std::string& token, const std::string& tenant) {
    HttpSourceOptions o = Url(server.url());
    o.token = token;
    o.tenant = tenant;
    absl::StatusOr<std::unique_ptr<QuerySource>> s = NewHttpSource(o);
    EXPECT_TRUE(s.ok());
    return (*s)->Instant("up", kMar1);
  };
  absl::StatusOr<promql::Value> v = query("sesame", "team-a");
  ASSERT_TRUE(v.ok()) << v.status();
  const auto* vec = std::get_if<promql::Vector>(&*v);
  ASSERT_NE(vec, nullptr);
  ASSERT_EQ(vec->size(), 1u);
  EXPECT_EQ((*vec)[0].labels.Get("tenant"), "team-a");

  v = query("", "team-a");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(v.status().message()),
              AllOf(HasSubstr("HTTP 401"), HasSubstr("missing bearer token"),
                    HasSubstr("give --token or --token-file"), Not(HasSubstr("\n"))));
  v = query("wrong", "team-a");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(v.status().message()),
              AllOf(HasSubstr("unknown token"), HasSubstr("check --token / --token-file")));
  v = query("sesame", "team-b");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(v.status().message()),
              AllOf(HasSubstr("HTTP 403"), HasSubstr("may not read tenant \"team-b\""),
                    HasSubstr("--tenant")));
  v = query("sesame", "");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("may not read the default tenant"));
}

std::string TempDir(const std::string& name) {
  std::string dir =
      ::testing::TempDir() + "/tidemark_cli_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(EmbeddedSource, QueriesLabelsAndSeriesReadOnly) {
  std::string dir = TempDir("embedded");
  {
    absl::StatusOr<std::unique_ptr<DB>> db =
        DB::Open({.path = dir, .sync = SyncPolicy::kNever, .retention_ms = 0});
    ASSERT_TRUE(db.ok()) << db.status();
    auto app = (*db)->NewAppender(kDefaultTenant);
    for (int i = 0; i <= 10; ++i) {
      ASSERT_TRUE(app->Append(Labels::FromUnsorted({{"__name__", "req_total"}, {"code", "200"}}),
                              kMar1 + i * 60000, i * 10.0)
                      .ok());
      ASSERT_TRUE(app->Append(Labels::FromUnsorted({{"__name__", "req_total"}, {"code", "500"}}),
                              kMar1 + i * 60000, i * 1.0)
                      .ok());
    }
    ASSERT_TRUE(app->Commit().ok());
    auto other = (*db)->NewAppender("team-b");
    ASSERT_TRUE(other->Append(Labels::FromUnsorted({{"__name__", "secret"}}), kMar1, 1).ok());
    ASSERT_TRUE(other->Commit().ok());
    ASSERT_TRUE((*db)->Close().ok());
  }
  absl::StatusOr<std::unique_ptr<QuerySource>> s = NewEmbeddedSource(Dir(dir));
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<promql::Value> v = (*s)->Instant("sum(increase(req_total[10m]))", kMar1 + 600000);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(std::get<promql::Vector>(*v).size(), 1u);
  EXPECT_DOUBLE_EQ(std::get<promql::Vector>(*v)[0].v, 110);
  absl::StatusOr<promql::Matrix> m =
      (*s)->Range("req_total{code=\"500\"}", kMar1, kMar1 + 600000, 300000);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 1u);
  EXPECT_THAT((*m)[0].samples,
              ElementsAre(Sample{kMar1, 0}, Sample{kMar1 + 300000, 5}, Sample{kMar1 + 600000, 10}));
  EXPECT_THAT(*(*s)->LabelValues("code", "", 0, kMar1 + 3600000), ElementsAre("200", "500"));
  EXPECT_THAT(*(*s)->LabelNames("", 0, kMar1 + 3600000), ElementsAre("__name__", "code"));
  absl::StatusOr<std::vector<Labels>> series = (*s)->Series("{code=\"500\"}", 0, kMar1 + 3600000);
  ASSERT_TRUE(series.ok());
  ASSERT_EQ(series->size(), 1u);
  EXPECT_EQ((*series)[0].ToString(), "req_total{code=\"500\"}");
  EXPECT_FALSE((*s)->Instant("sum(", kMar1).ok());
  s->reset();

  absl::StatusOr<std::unique_ptr<QuerySource>> b = NewEmbeddedSource(Dir(dir, "team-b"));
  ASSERT_TRUE(b.ok());
  EXPECT_THAT(*(*b)->LabelValues("__name__", "", 0, kMar1 + 1), ElementsAre("secret"));
  b->reset();

  absl::StatusOr<std::unique_ptr<QuerySource>> missing = NewEmbeddedSource(Dir(dir + "-nope"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tidemark::cli
