// The HTTP server in process: a real DB in a temporary directory, an ephemeral loopback port,
// and httplib::Client as the client (Grafana's and Prometheus's requests, written out).
#include <httplib.h>
#include <snappy.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "api/auth.h"
#include "api/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/proto/remote_write.pb.h"
#include "storage/db.h"

namespace tidemark::api {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr const char* kForm = "application/x-www-form-urlencoded";

// A snappy-compressed WriteRequest with one series `name{labels...}` and the given samples.
std::string WriteBody(const std::vector<std::pair<std::string, std::string>>& labels,
                      const std::vector<std::pair<int64_t, double>>& samples) {
  ingest::prompb::WriteRequest request;
  ingest::prompb::TimeSeries* ts = request.add_timeseries();
  for (const auto& [name, value] : labels) {
    ingest::prompb::Label* l = ts->add_labels();
    l->set_name(name);
    l->set_value(value);
  }
  for (const auto& [t, v] : samples) {
    ingest::prompb::Sample* s = ts->add_samples();
    s->set_timestamp(t);
    s->set_value(v);
  }
  std::string raw = request.SerializeAsString();
  std::string compressed;
  snappy::Compress(raw.data(), raw.size(), &compressed);
  return compressed;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tidemark-api-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    server_.reset();
    if (db_) {
      EXPECT_TRUE(db_->Close().ok());
    }
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartServer(ServerOptions options = {}, bool attach_db = true) {
    Options db_options;
    db_options.path = dir_ + "/data";
    db_options.retention_ms = 0;
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    server_ = std::make_unique<Server>(std::move(options));
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
    ASSERT_GT(server_->port(), 0);
    if (attach_db) server_->SetDB(db_.get());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10, 0);
  }

  httplib::Result Write(const std::string& body, httplib::Headers headers = {}) {
    headers.emplace("Content-Encoding", "snappy");
    headers.emplace("X-Prometheus-Remote-Write-Version", "0.1.0");
    return client_->Post("/api/v1/write", headers, body, "application/x-protobuf");
  }

  std::string dir_;
  std::unique_ptr<DB> db_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(ServerTest, GrafanaSaveAndTest) {
  StartServer();
  auto res = client_->Post("/api/v1/query", "query=1%2B1&time=4", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, R"({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})");
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("application/json"));

  // The same as GET, and as a POST with the parameters in the URL and an empty body.
  res = client_->Get("/api/v1/query?query=1%2B1&time=4");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})");
  // Body values win over URL values, as with Go's FormValue.
  res = client_->Post("/api/v1/query?time=10", "query=1%2B1&time=4", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})");
  res = client_->Post("/api/v1/query?query=1%2B1&time=4", "", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, R"({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})");
}

// A POST with no Content-Length header at all has an empty body (RFC 9112 6.3); the server
// must answer from the URL parameters instead of waiting for a body.
TEST_F(ServerTest, PostWithoutContentLengthHasEmptyBody) {
  StartServer();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string request =
      "POST /api/v1/query?query=1%2B1&time=4 HTTP/1.1\r\nHost: localhost\r\n"
      "Connection: close\r\n\r\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, n);
  close(fd);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(response, HasSubstr(R"({"resultType":"scalar","result":[4,"2"]})"));
}

TEST_F(ServerTest, BuildInfoAndMethodNotAllowed) {
  StartServer();
  auto res = client_->Get("/api/v1/status/buildinfo");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr(R"("status":"success")"));
  EXPECT_THAT(res->body, HasSubstr(R"("version":")"));
  EXPECT_THAT(res->body, Not(HasSubstr("features")));

  for (const char* path : {"/api/v1/status/buildinfo", "/api/v1/label/job/values", "/metrics"}) {
    res = client_->Post(path, "", kForm);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 405) << path;
  }
  res = client_->Get("/api/v1/write");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  res = client_->Get("/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(ServerTest, ReadyOnlyWithDatabase) {
  StartServer({}, /*attach_db=*/false);
  auto res = client_->Get("/-/healthy");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = client_->Get("/-/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  res = client_->Get("/api/v1/labels");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  server_->SetDB(db_.get());
  res = client_->Get("/-/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(ServerTest, RemoteWriteThenQuery) {
  StartServer();
  auto res = Write(WriteBody({{"__name__", "up"}, {"instance", "h:1"}, {"job", "node"}},
                             {{1000000, 1}, {1015000, 0.5}}));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;

  res = client_->Post("/api/v1/query", "query=up&time=1020", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body,
            R"({"status":"success","data":{"resultType":"vector","result":[)"
            R"({"metric":{"__name__":"up","instance":"h:1","job":"node"},"value":[1020,"0.5"]}]}})");

  res = client_->Post("/api/v1/query_range", "end=1015&query=up&start=1000&step=15", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body,
            R"({"status":"success","data":{"resultType":"matrix","result":[)"
            R"({"metric":{"__name__":"up","instance":"h:1","job":"node"},)"
            R"("values":[[1000,"1"],[1015,"0.5"]]}]}})");

  res = client_->Get("/api/v1/labels?start=900&end=1100");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":["__name__","instance","job"]})");
  res = client_->Get("/api/v1/labels?limit=1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body,
            R"({"status":"success","data":["__name__"],"warnings":["results truncated due to limit"]})");
  res = client_->Get("/api/v1/label/__name__/values");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":["up"]})");
  res = client_->Get("/api/v1/label/job/values?match[]=up&match[]=nothing");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":["node"]})");
  res = client_->Get("/api/v1/label/U__jo_62_/values");  // escaped "job"
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":["node"]})");
  res = client_->Get("/api/v1/query?query=up&time=1020&stats=all");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, HasSubstr(R"("totalQueryableSamples":)"));
  res = client_->Post("/api/v1/series", "match%5B%5D=up%7Bjob%3D%22node%22%7D", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body,
            R"({"status":"success","data":[{"__name__":"up","instance":"h:1","job":"node"}]})");

  // Out-of-order: 400 with the reason, and counted in /metrics.
  res = Write(WriteBody({{"__name__", "up"}, {"instance", "h:1"}, {"job", "node"}}, {{900000, 1}}));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("out of order"));

  res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr(R"(tidemark_samples_appended_total{tenant="anonymous"} 2)"));
  EXPECT_THAT(res->body, HasSubstr(R"(tidemark_remote_write_requests_total{code="204"} 1)"));
  EXPECT_THAT(res->body, HasSubstr(R"(tidemark_remote_write_requests_total{code="400"} 1)"));
  EXPECT_THAT(res->body, HasSubstr("tidemark_samples_rejected_total{"));
  EXPECT_THAT(res->body, HasSubstr(R"(tidemark_http_requests_total{code="200",handler="/api/v1/query"} 2)"));
  EXPECT_THAT(res->body, HasSubstr("tidemark_http_request_duration_seconds_bucket{"));
  EXPECT_THAT(res->body, HasSubstr("tidemark_query_duration_seconds_count{endpoint=\"query_range\"} 1"));
  EXPECT_THAT(res->body, HasSubstr("tidemark_active_series "));
  EXPECT_THAT(res->body, HasSubstr("tidemark_head_series 1"));  // one series written above
  EXPECT_THAT(res->body, HasSubstr(R"(tidemark_memory_bytes{component="head"} )"));
  EXPECT_THAT(res->body, HasSubstr("tidemark_memory_budget_bytes 268435456"));
  EXPECT_THAT(res->body, HasSubstr("tidemark_block_cache_capacity_bytes 134217728"));
  EXPECT_THAT(res->body, HasSubstr("tidemark_build_info{"));
}

TEST_F(ServerTest, LargeQueriesCallTheHookAfterTheirAnswer) {
  // Every query counts as large at a threshold of 0; the hook runs before the response is
  // sent, so the count is final when the client has the answer.
  auto calls = std::make_shared<std::atomic<int>>(0);
  ServerOptions options;
  options.after_large_query = [calls] { ++*calls; };
  options.large_query_seconds = 0;
  StartServer(options);
  auto res = Write(WriteBody({{"__name__", "up"}, {"job", "node"}}, {{1000000, 1}}));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);
  res = client_->Get("/api/v1/labels");
  ASSERT_TRUE(res);
  EXPECT_EQ(calls->load(), 0);  // neither writes nor metadata calls are queries
  res = client_->Post("/api/v1/query", "query=up&time=1000", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(calls->load(), 1);
  res = client_->Post("/api/v1/query_range", "query=up&start=990&end=1010&step=5", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr(R"("values":[[1000,"1"],[1005,"1"],[1010,"1"]])"));
  EXPECT_EQ(calls->load(), 2);
  // A query that fails counts too: what it allocated before failing is freed as well.
  res = client_->Post("/api/v1/query_range", "query=rate(up[1m]&start=990&end=1010&step=5", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(calls->load(), 3);
}

TEST_F(ServerTest, QueriesUnderTheThresholdDoNotCallTheHook) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  ServerOptions options;
  options.after_large_query = [calls] { ++*calls; };
  options.large_query_seconds = 3600;
  StartServer(options);
  auto res = client_->Post("/api/v1/query_range", "query=up&start=990&end=1010&step=5", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(calls->load(), 0);
}

TEST_F(ServerTest, RemoteWriteErrors) {
  ServerOptions options;
  options.max_request_bytes = 1000;
  StartServer(options);
  auto res = client_->Post("/api/v1/write", "x", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  res = Write("this is not snappy");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_FALSE(res->body.empty());
  res = Write(std::string(5000, 'x'));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  // The server still answers after refusing a large body.
  httplib::Client fresh("127.0.0.1", server_->port());
  auto again = fresh.Get("/-/healthy");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST_F(ServerTest, QueryParameterErrors) {
  StartServer();
  struct Case {
    std::string body;
    std::string error;
  };
  const Case cases[] = {
      {"query=up&start=10&end=5&step=1",
       R"({"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": end timestamp must not be before start time"})"},
      {"query=up&start=1&end=5&step=0",
       R"({"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"})"},
      {"query=up&start=0&end=11001&step=1",
       R"j({"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"})j"},
      {"query=up&start=x&end=5&step=1",
       R"({"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": cannot parse \"x\" to a valid timestamp"})"},
      {"query=up&start=1&end=5&step=1&timeout=soon",
       R"({"status":"error","errorType":"bad_data","error":"invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration"})"},
      // Unlike /query, Prometheus 2.42 reports a bad query_range query without a parameter name.
      {"query=sum(foo&start=1&end=2&step=1",
       R"({"status":"error","errorType":"bad_data","error":"1:8: parse error: unclosed left parenthesis"})"},
  };
  for (const Case& c : cases) {
    auto res = client_->Post("/api/v1/query_range", c.body, kForm);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << c.body;
    EXPECT_EQ(res->body, c.error) << c.body;
  }
  // 11000 points exactly is fine.
  auto res = client_->Post("/api/v1/query_range", "query=1&start=0&end=11000&step=1", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);

  res = client_->Post("/api/v1/query", "query=sum(&time=1", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr(R"("errorType":"bad_data","error":"invalid parameter \"query\": )"));

  res = client_->Get("/api/v1/series");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(res->body,
            R"({"status":"error","errorType":"bad_data","error":"no match[] parameter provided"})");
  res = client_->Get("/api/v1/label/not-valid/values");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = client_->Get("/api/v1/labels?limit=-1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = client_->Get("/api/v1/labels", {{"X-Scope-OrgID", "a/b"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST_F(ServerTest, GzipWhenAsked) {
  StartServer();
  client_->set_decompress(true);
  auto res = client_->Get("/api/v1/status/buildinfo", {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Encoding"), "gzip");
  EXPECT_THAT(res->body, HasSubstr(R"("status":"success")"));
  res = client_->Get("/api/v1/status/buildinfo");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("Content-Encoding"), "");
}

TEST_F(ServerTest, AuthRolesAndTenantIsolation) {
  ServerOptions options;
  auto token = [](const char* name, const char* secret, Role role,
                  std::vector<std::string> tenants) {
    return TokenConfig{name, *ParseSha256Hex(Sha256Hex(secret)), role, std::move(tenants)};
  };
  options.auth.tokens = {token("writer-a", "wa", Role::kWrite, {"a"}),
                         token("reader-a", "ra", Role::kRead, {"a"}),
                         token("reader-b", "rb", Role::kRead, {"b"}),
                         token("admin", "adm", Role::kAdmin, {"*"})};
  StartServer(options);
  std::string body = WriteBody({{"__name__", "secret_metric"}}, {{1000000, 42}});

  auto res = Write(body, {{"X-Scope-OrgID", "a"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_THAT(res->get_header_value("WWW-Authenticate"), HasSubstr("Bearer"));
  res = Write(body, {{"X-Scope-OrgID", "a"}, {"Authorization", "Bearer nope"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  res = Write(body, {{"X-Scope-OrgID", "a"}, {"Authorization", "Bearer ra"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  res = Write(body, {{"X-Scope-OrgID", "b"}, {"Authorization", "Bearer wa"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  res = Write(body, {{"Authorization", "Bearer wa"}});  // default tenant not allowed
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  res = Write(body, {{"X-Scope-OrgID", "a"}, {"Authorization", "Bearer wa"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;

  const std::string query = "query=secret_metric&time=1000";
  auto q = [&](const char* tenant, const char* secret) {
    httplib::Headers h = {{"X-Scope-OrgID", tenant}, {"Authorization", std::string("Bearer ") + secret}};
    return client_->Post("/api/v1/query", h, query, kForm);
  };
  res = q("a", "wa");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);  // a write token cannot read
  res = q("a", "rb");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  res = q("a", "ra");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr(R"("value":[1000,"42"])"));
  res = q("b", "rb");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  res = q("b", "adm");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  res = client_->Get("/api/v1/label/__name__/values",
                     {{"X-Scope-OrgID", "b"}, {"Authorization", "Bearer rb"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":[]})");

  // Health, readiness and /metrics need no token.
  for (const char* path : {"/-/healthy", "/-/ready", "/metrics"}) {
    res = client_->Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << path;
  }
}

}  // namespace
}  // namespace tidemark::api
