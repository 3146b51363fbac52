// Query limits (timeout, samples, concurrency, cancellation), query statistics and the status,
// format and admin endpoints: the query gate and the connection watch as units, the rest
// through an in-process server over a real DB in a temporary directory.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <snappy.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "api/auth.h"
#include "api/connection_watch.h"
#include "api/query_gate.h"
#include "api/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/proto/remote_write.pb.h"
#include "storage/db.h"

namespace tidemark::api {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kForm = "application/x-www-form-urlencoded";

// ---- QueryGate ----

TEST(QueryGateTest, AdmitsUpToTheLimitThenQueuesThenRefuses) {
  QueryGate gate(1, 1);
  absl::Time far = absl::Now() + absl::Seconds(30);
  absl::StatusOr<QueryGate::Ticket> first = gate.Enter(far, nullptr);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(gate.running(), 1);

  std::atomic<bool> admitted{false};
  std::thread waiter([&] {
    absl::StatusOr<QueryGate::Ticket> t = gate.Enter(far, nullptr);
    admitted = t.ok();
  });
  for (int i = 0; i < 1000 && gate.waiting() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(gate.waiting(), 1);
  // The line is full: a third query is refused at once.
  absl::StatusOr<QueryGate::Ticket> third = gate.Enter(far, nullptr);
  EXPECT_TRUE(absl::IsUnavailable(third.status())) << third.status();
  EXPECT_FALSE(admitted.load());

  *first = QueryGate::Ticket();  // releases the slot
  waiter.join();
  EXPECT_TRUE(admitted.load());
  EXPECT_EQ(gate.running(), 0);
  EXPECT_EQ(gate.waiting(), 0);
}

TEST(QueryGateTest, WaitEndsAtTheDeadlineOrOnCancellation) {
  QueryGate gate(1, 4);
  absl::StatusOr<QueryGate::Ticket> held = gate.Enter(absl::InfiniteFuture(), nullptr);
  ASSERT_TRUE(held.ok());
  absl::StatusOr<QueryGate::Ticket> late =
      gate.Enter(absl::Now() + absl::Milliseconds(30), nullptr);
  EXPECT_TRUE(absl::IsDeadlineExceeded(late.status())) << late.status();
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("query queue"));

  std::atomic<bool> cancelled{true};
  absl::StatusOr<QueryGate::Ticket> gone = gate.Enter(absl::InfiniteFuture(), &cancelled);
  EXPECT_TRUE(absl::IsCancelled(gone.status())) << gone.status();
  EXPECT_EQ(gate.waiting(), 0);

  // Those who left do not block the line: the next waiter gets the slot once it is free.
  std::future<bool> next = std::async(std::launch::async, [&] {
    return gate.Enter(absl::Now() + absl::Seconds(30), nullptr).ok();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  *held = QueryGate::Ticket();
  EXPECT_TRUE(next.get());
}

// ---- ConnectionWatch ----

TEST(ConnectionWatchTest, FindsTheSocketAndNoticesThePeerLeaving) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int local_port = ntohs(addr.sin_port);

  int client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  sockaddr_in client_addr{};
  len = sizeof(client_addr);
  ASSERT_EQ(getsockname(client, reinterpret_cast<sockaddr*>(&client_addr), &len), 0);
  int peer_port = ntohs(client_addr.sin_port);
  int server_side = accept(listener, nullptr, nullptr);
  ASSERT_GE(server_side, 0);

  EXPECT_EQ(FindConnectedSocket("127.0.0.1", peer_port, local_port), server_side);
  EXPECT_EQ(FindConnectedSocket("127.0.0.1", peer_port + 1, local_port), -1);

  ConnectionWatch watch(absl::Milliseconds(5));
  std::unique_ptr<ConnectionWatch::Handle> handle = watch.Watch("127.0.0.1", peer_port, local_port);
  ASSERT_TRUE(handle->found());
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_FALSE(handle->cancelled()->load());  // the client is still there
  close(client);
  for (int i = 0; i < 2000 && !handle->cancelled()->load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(handle->cancelled()->load());
  handle.reset();
  close(server_side);
  close(listener);
}

// ---- the server ----

std::string WriteBody(const std::string& name, int series, int samples) {
  ingest::prompb::WriteRequest request;
  for (int s = 0; s < series; ++s) {
    ingest::prompb::TimeSeries* ts = request.add_timeseries();
    auto label = [&](const std::string& n, const std::string& v) {
      ingest::prompb::Label* l = ts->add_labels();
      l->set_name(n);
      l->set_value(v);
    };
    label("__name__", name);
    label("instance", "host-" + std::to_string(s));
    label("job", s % 2 == 0 ? "even" : "odd");
    for (int i = 0; i < samples; ++i) {
      ingest::prompb::Sample* smp = ts->add_samples();
      smp->set_timestamp(1'000'000 + i * 15'000);
      smp->set_value(i);
    }
  }
  std::string raw = request.SerializeAsString();
  std::string compressed;
  snappy::Compress(raw.data(), raw.size(), &compressed);
  return compressed;
}

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tidemark-limits-test-XXXXXX";
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

  void StartServer(ServerOptions options = {}) {
    Options db_options;
    db_options.path = dir_ + "/data";
    db_options.retention_ms = 0;
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    server_ = std::make_unique<Server>(std::move(options));
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
    server_->SetDB(db_.get());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10, 0);
  }

  void Load(const std::string& name, int series, int samples) {
    httplib::Headers headers = {{"Content-Encoding", "snappy"},
                                {"X-Prometheus-Remote-Write-Version", "0.1.0"}};
    auto res = client_->Post("/api/v1/write", headers, WriteBody(name, series, samples),
                             "application/x-protobuf");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 204) << res->body;
  }

  nlohmann::json Json(const httplib::Result& res) {
    return nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  }

  std::string dir_;
  std::unique_ptr<DB> db_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(LimitsTest, ServerDefaultTimeoutAnswers503Timeout) {
  ServerOptions options;
  options.engine.default_timeout = absl::Nanoseconds(1);
  StartServer(options);
  Load("m", 2, 10);
  auto res = client_->Get("/api/v1/query?query=m&time=1100");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(Json(res)["errorType"], "timeout");
  EXPECT_THAT(res->body, HasSubstr("query timed out"));
  // The request's timeout may shorten the server's, never lengthen it.
  res = client_->Get("/api/v1/query?query=m&time=1100&timeout=1m");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
}

TEST_F(LimitsTest, TimeoutParameter) {
  StartServer();
  Load("m", 2, 10);
  auto res = client_->Get("/api/v1/query?query=m&time=1100&timeout=30s");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  res = client_->Post("/api/v1/query_range",
                      "end=1100&query=m&start=1000&step=1&timeout=0.000001", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_EQ(Json(res)["errorType"], "timeout");
  res = client_->Get("/api/v1/query?query=m&timeout=abc");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr(R"(invalid parameter \"timeout\")"));
  res = client_->Get("/api/v1/query?query=m&timeout=-1s");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST_F(LimitsTest, TooManySamplesAnswers422) {
  ServerOptions options;
  options.engine.max_samples = 5;
  StartServer(options);
  Load("m", 2, 10);
  auto res = client_->Get("/api/v1/query?query=m&time=1000");  // 2 samples: fine
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  res = client_->Get("/api/v1/query?query=m[5m]&time=1100");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 422);
  EXPECT_EQ(Json(res)["errorType"], "execution");
  EXPECT_EQ(Json(res)["error"],
            "query processing would load too many samples into memory in query execution");
}

TEST_F(LimitsTest, StatsOnQueryAndQueryRange) {
  StartServer();
  Load("m", 3, 20);
  auto res = client_->Get("/api/v1/query_range?query=m&start=1000&end=1090&step=30&stats=all");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  nlohmann::json stats = Json(res)["data"]["stats"];
  for (const char* key : {"evalTotalTime", "resultSortTime", "queryPreparationTime",
                          "innerEvalTime", "execQueueTime", "execTotalTime"}) {
    ASSERT_TRUE(stats["timings"].contains(key)) << key;
    EXPECT_GE(stats["timings"][key].get<double>(), 0) << key;
  }
  EXPECT_GE(stats["timings"]["execTotalTime"].get<double>(),
            stats["timings"]["evalTotalTime"].get<double>());
  // 4 steps (1000, 1030, 1060, 1090), each selecting one sample of each of the 3 series.
  EXPECT_EQ(stats["samples"]["totalQueryableSamples"], 12);
  nlohmann::json per_step = stats["samples"]["totalQueryableSamplesPerStep"];
  ASSERT_EQ(per_step.size(), 4u);
  EXPECT_EQ(per_step[0][0].get<double>(), 1000);
  EXPECT_EQ(per_step[3][0].get<double>(), 1090);
  for (const auto& step : per_step) {
    EXPECT_EQ(step[1], 3);
  }

  // Any other value: no per-step breakdown. No parameter: no stats at all.
  res = client_->Post("/api/v1/query", "query=m[1m]&time=1100&stats=true", kForm);
  ASSERT_TRUE(res);
  stats = Json(res)["data"]["stats"];
  EXPECT_FALSE(stats["samples"].contains("totalQueryableSamplesPerStep"));
  EXPECT_EQ(stats["samples"]["totalQueryableSamples"], 12);  // 4 samples in (1040, 1100] x 3
  res = client_->Get("/api/v1/query?query=m&time=1100");
  ASSERT_TRUE(res);
  EXPECT_FALSE(Json(res)["data"].contains("stats"));
}

TEST_F(LimitsTest, EachQueryReleasesItsSlot) {
  ServerOptions options;
  options.max_concurrent_queries = 1;
  options.max_queued_queries = 0;
  StartServer(options);
  Load("m", 1, 3);
  // One slot and no line: a query that kept its slot would make the next one a 503.
  for (int i = 0; i < 5; ++i) {
    auto res = client_->Get("/api/v1/query?query=m&time=1030");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
  }
}

TEST_F(LimitsTest, RulesAlertsFlagsRuntimeInfo) {
  ServerOptions options;
  options.flags = {{"storage.path", "/x"}, {"query.max-concurrency", "20"}};
  options.storage_retention = "30d";
  StartServer(options);
  auto res = client_->Get("/api/v1/rules");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":{"groups":[]}})");
  res = client_->Get("/api/v1/alerts");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":{"alerts":[]}})");
  res = client_->Get("/api/v1/status/flags");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body,
            R"({"status":"success","data":{"storage.path":"/x","query.max-concurrency":"20"}})");
  res = client_->Get("/api/v1/status/runtimeinfo");
  ASSERT_TRUE(res);
  nlohmann::json info = Json(res)["data"];
  EXPECT_EQ(info["storageRetention"], "30d");
  EXPECT_TRUE(info["startTime"].is_string());
  EXPECT_TRUE(info["CWD"].is_string());
  EXPECT_GE(info["goroutineCount"].get<int>(), 1);
  EXPECT_GE(info["GOMAXPROCS"].get<int>(), 1);
  EXPECT_EQ(info["reloadConfigSuccess"], true);
}

TEST_F(LimitsTest, TsdbStatusCountsCardinality) {
  StartServer();
  Load("big", 5, 3);
  Load("small", 2, 3);
  auto res = client_->Get("/api/v1/status/tsdb");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  nlohmann::json data = Json(res)["data"];
  EXPECT_EQ(data["headStats"]["numSeries"], 7);
  // Pairs: __name__ x2, instance host-0..host-4 (5), job even/odd (2).
  EXPECT_EQ(data["headStats"]["numLabelPairs"], 9);
  EXPECT_EQ(data["seriesCountByMetricName"],
            nlohmann::json::parse(R"([{"name":"big","value":5},{"name":"small","value":2}])"));
  EXPECT_EQ(data["labelValueCountByLabelName"][0],
            nlohmann::json::parse(R"({"name":"instance","value":5})"));
  // __name__: 5 x "big" + 2 x "small" = 25 bytes; instance: 7 x "host-N" = 42; job: 4 x "even"
  // + 3 x "odd" = 25.
  EXPECT_EQ(data["memoryInBytesByLabelName"][0],
            nlohmann::json::parse(R"({"name":"instance","value":42})"));
  EXPECT_EQ(data["seriesCountByLabelValuePair"][0],
            nlohmann::json::parse(R"({"name":"__name__=big","value":5})"));
  res = client_->Get("/api/v1/status/tsdb?limit=1");
  ASSERT_TRUE(res);
  EXPECT_EQ(Json(res)["data"]["seriesCountByLabelValuePair"].size(), 1u);
}

TEST_F(LimitsTest, FormatQuery) {
  StartServer();
  auto res = client_->Get("/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(job)");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"json({"status":"success","data":"sum by (job) (rate(x[5m]))"})json");
  res = client_->Post("/api/v1/format_query", "query=foo%7Bbar%3D%22baz%22%7D+%2B1", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, R"({"status":"success","data":"foo{bar=\"baz\"} + 1"})");
  res = client_->Get("/api/v1/format_query?query=sum(");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(Json(res)["errorType"], "bad_data");
}

TEST_F(LimitsTest, DeleteSeriesNeedsAdminAndDeletesTheRange) {
  auto token = [](std::string name, const std::string& secret, Role role) {
    return TokenConfig{std::move(name), *ParseSha256Hex(Sha256Hex(secret)), role, {"*"}};
  };
  ServerOptions options;
  options.auth.tokens = {token("r", "read-secret", Role::kRead),
                         token("a", "admin-secret", Role::kAdmin)};
  StartServer(options);
  {
    std::unique_ptr<Appender> app = db_->NewAppender(kDefaultTenant);
    for (const char* job : {"a", "b"}) {
      Labels labels = Labels::FromUnsorted({{"__name__", "up"}, {"job", job}});
      for (int64_t t = 1; t <= 10; ++t) ASSERT_TRUE(app->Append(labels, t * 1000, 1).ok());
    }
    ASSERT_TRUE(app->Commit().ok());
  }
  httplib::Headers reader = {{"Authorization", "Bearer read-secret"}};
  httplib::Headers admin = {{"Authorization", "Bearer admin-secret"}};
  auto counts = [&]() {
    auto res = client_->Get("/api/v1/query?query=count_over_time(up%5B1h%5D)&time=20", reader);
    EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no response");
    std::map<std::string, std::string> out;
    if (!res) return out;
    const nlohmann::json body = Json(res);
    for (const auto& r : body["data"]["result"]) {
      out[r["metric"]["job"].get<std::string>()] = r["value"][1].get<std::string>();
    }
    return out;
  };
  const std::string body = "match%5B%5D=up%7Bjob%3D%22a%22%7D&start=3&end=6";
  auto res = client_->Post("/api/v1/admin/tsdb/delete_series", reader, body, kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403);
  res = client_->Get("/api/v1/admin/tsdb/delete_series?match[]=up", admin);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  res = client_->Post("/api/v1/admin/tsdb/delete_series", admin, "", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("no match[] parameter provided"));
  res = client_->Post("/api/v1/admin/tsdb/delete_series", admin, "match%5B%5D=up%7B", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  // Nothing was deleted by the refused requests.
  EXPECT_EQ(counts(), (std::map<std::string, std::string>{{"a", "10"}, {"b", "10"}}));

  res = client_->Post("/api/v1/admin/tsdb/delete_series", admin, body, kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  EXPECT_EQ(counts(), (std::map<std::string, std::string>{{"a", "6"}, {"b", "10"}}));
  // PUT too; without start and end: all time.
  res = client_->Put("/api/v1/admin/tsdb/delete_series", admin, "match%5B%5D=up%7Bjob%3D%22b%22%7D",
                     kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  EXPECT_EQ(counts(), (std::map<std::string, std::string>{{"a", "6"}}));
  res = client_->Post("/api/v1/admin/tsdb/clean_tombstones", admin, "", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);
}

}  // namespace
}  // namespace tidemark::api
