// Remote write 2.0 over HTTP, /api/v1/metadata and /api/v1/query_exemplars: an in-process server
// over a real DB in a temporary directory, on an ephemeral loopback port.
#include <httplib.h>
#include <snappy.h>
#include <stdlib.h>

#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "api/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/proto/remote_write.pb.h"
#include "ingest/proto/remote_write2.pb.h"
#include "nlohmann/json.hpp"
#include "storage/db.h"

namespace tidemark::api {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
namespace writev2 = ingest::writev2;

constexpr const char* kV2Type = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

std::string Snappy(const std::string& raw) {
  std::string out;
  snappy::Compress(raw.data(), raw.size(), &out);
  return out;
}

std::string PercentEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[static_cast<unsigned char>(c) >> 4]);
      out.push_back(kHex[static_cast<unsigned char>(c) & 15]);
    }
  }
  return out;
}

// A 2.0 request: a counter with metadata, a histogram bucket with two exemplars.
std::string V2Body(bool spoil = false) {
  writev2::Request req;
  std::map<std::string, uint32_t> refs;
  auto ref = [&](const std::string& s) {
    auto [it, fresh] = refs.emplace(s, req.symbols_size());
    if (fresh) req.add_symbols(s);
    return it->second;
  };
  ref("");
  auto* c = req.add_timeseries();
  for (const char* s : {"__name__", "http_requests_total", "job", "api"}) c->add_labels_refs(ref(s));
  auto* cs = c->add_samples();
  cs->set_timestamp(10000);
  cs->set_value(5);
  c->mutable_metadata()->set_type(writev2::Metadata::METRIC_TYPE_COUNTER);
  c->mutable_metadata()->set_help_ref(ref("Requests served."));
  auto* h = req.add_timeseries();
  for (const char* s : {"__name__", "latency_seconds_bucket", "job", "api", "le", "0.5"}) {
    h->add_labels_refs(ref(s));
  }
  auto* hs = h->add_samples();
  hs->set_timestamp(10000);
  hs->set_value(7);
  for (auto [trace, v, t] : {std::tuple{"4bf92f3577b34da6a3ce929d0e0e4736", 0.31, 9990},
                             std::tuple{"00f067aa0ba902b7", 0.42, 9995}}) {
    auto* e = h->add_exemplars();
    e->add_labels_refs(ref("trace_id"));
    e->add_labels_refs(ref(trace));
    e->set_value(v);
    e->set_timestamp(t);
  }
  h->mutable_metadata()->set_type(writev2::Metadata::METRIC_TYPE_HISTOGRAM);
  h->mutable_metadata()->set_help_ref(ref("Latency."));
  h->mutable_metadata()->set_unit_ref(ref("seconds"));
  if (spoil) h->set_labels_refs(5, 1000);
  return Snappy(req.SerializeAsString());
}

class SideApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tidemark-api-side-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Options db_options;
    db_options.path = dir_ + "/data";
    db_options.retention_ms = 0;
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    server_ = std::make_unique<Server>(ServerOptions{});
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
    server_->SetDB(db_.get());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10, 0);
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

  httplib::Result Write(const std::string& body, const char* content_type) {
    httplib::Headers headers = {{"Content-Encoding", "snappy"},
                                {"X-Prometheus-Remote-Write-Version", "2.0.0"}};
    return client_->Post("/api/v1/write", headers, body, content_type);
  }

  // The `data` of a successful JSON answer.
  json Data(const std::string& path) {
    auto res = client_->Get(path);
    EXPECT_TRUE(res);
    if (!res) return json();
    EXPECT_EQ(res->status, 200) << path << ": " << res->body;
    json body = json::parse(res->body, nullptr, false);
    EXPECT_EQ(body.value("status", ""), "success") << res->body;
    return body.contains("data") ? body["data"] : json();
  }

  std::string dir_;
  std::unique_ptr<DB> db_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(SideApiTest, RemoteWrite2ResponseHeadersAndData) {
  auto res = Write(V2Body(), kV2Type);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  EXPECT_EQ(res->get_header_value("X-Prometheus-Remote-Write-Samples-Written"), "2");
  EXPECT_EQ(res->get_header_value("X-Prometheus-Remote-Write-Histograms-Written"), "0");
  EXPECT_EQ(res->get_header_value("X-Prometheus-Remote-Write-Exemplars-Written"), "2");
  json q = Data("/api/v1/query?query=http_requests_total&time=10");
  ASSERT_EQ(q["result"].size(), 1u);
  EXPECT_EQ(q["result"][0]["value"][1], "5");

  // A retry answers the same and stores nothing twice.
  res = Write(V2Body(), kV2Type);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  EXPECT_EQ(res->get_header_value("X-Prometheus-Remote-Write-Samples-Written"), "2");
  EXPECT_EQ(res->get_header_value("X-Prometheus-Remote-Write-Exemplars-Written"), "2");
  json ex = Data("/api/v1/query_exemplars?query=latency_seconds_bucket");
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0]["exemplars"].size(), 2u);

  // Remote write 1.0 gets no 2.0 headers.
  ingest::prompb::WriteRequest v1;
  auto* ts = v1.add_timeseries();
  auto* l = ts->add_labels();
  l->set_name("__name__");
  l->set_value("up");
  ts->add_samples()->set_timestamp(1000);
  res = Write(Snappy(v1.SerializeAsString()), "application/x-protobuf");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);
  EXPECT_FALSE(res->has_header("X-Prometheus-Remote-Write-Samples-Written"));
}

TEST_F(SideApiTest, RemoteWrite2MalformedAndUnknownProto) {
  auto res = Write(V2Body(/*spoil=*/true), kV2Type);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("out of bounds"));
  EXPECT_EQ(res->get_header_value("X-Prometheus-Remote-Write-Samples-Written"), "0");
  EXPECT_EQ(res->get_header_value("X-Prometheus-Remote-Write-Exemplars-Written"), "0");
  EXPECT_TRUE(Data("/api/v1/query?query=http_requests_total&time=10")["result"].empty());
  EXPECT_TRUE(Data("/api/v1/metadata").empty());

  res = Write(V2Body(), "application/x-protobuf;proto=io.prometheus.write.v3.Request");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  EXPECT_THAT(res->body, HasSubstr("io.prometheus.write.v3.Request"));
}

TEST_F(SideApiTest, Metadata) {
  EXPECT_EQ(Data("/api/v1/metadata"), json::object());
  ASSERT_EQ(Write(V2Body(), kV2Type)->status, 204);
  json all = Data("/api/v1/metadata");
  EXPECT_EQ(all, json::parse(R"({
      "http_requests_total": [{"type": "counter", "help": "Requests served.", "unit": ""}],
      "latency_seconds": [{"type": "histogram", "help": "Latency.", "unit": "seconds"}]})"));
  json one = Data("/api/v1/metadata?metric=latency_seconds");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(one.contains("latency_seconds"));
  EXPECT_EQ(Data("/api/v1/metadata?metric=nope"), json::object());
  EXPECT_EQ(Data("/api/v1/metadata?limit=1").size(), 1u);
  EXPECT_EQ(Data("/api/v1/metadata?limit=0"), json::object());
  EXPECT_EQ(Data("/api/v1/metadata?limit=-1").size(), 2u);
  EXPECT_EQ(Data("/api/v1/metadata?limit_per_metric=1").size(), 2u);
  auto res = client_->Get("/api/v1/metadata?limit=abc");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("limit must be a number"));
  // Another tenant sees nothing.
  res = client_->Get("/api/v1/metadata", httplib::Headers{{"X-Scope-OrgID", "other"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["data"], json::object());
}

TEST_F(SideApiTest, QueryExemplars) {
  ASSERT_EQ(Write(V2Body(), kV2Type)->status, 204);
  json ex = Data(
      "/api/v1/query_exemplars?query=" +
      PercentEncode(
          "sum(rate(latency_seconds_bucket{job=\"api\"}[5m])) / on() group_left "
          "max(http_requests_total)") +
      "&start=9&end=11");
  EXPECT_EQ(ex, json::parse(R"([{
      "seriesLabels": {"__name__": "latency_seconds_bucket", "job": "api", "le": "0.5"},
      "exemplars": [
        {"labels": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, "value": "0.31",
         "timestamp": 9.99},
        {"labels": {"trace_id": "00f067aa0ba902b7"}, "value": "0.42", "timestamp": 9.995}]}])"));
  // The time range applies.
  json late = Data("/api/v1/query_exemplars?query=latency_seconds_bucket&start=9.992&end=20");
  ASSERT_EQ(late.size(), 1u);
  ASSERT_EQ(late[0]["exemplars"].size(), 1u);
  EXPECT_EQ(late[0]["exemplars"][0]["value"], "0.42");
  // No match, no selector: empty.
  EXPECT_EQ(Data("/api/v1/query_exemplars?query=up"), json::array());
  EXPECT_EQ(Data("/api/v1/query_exemplars?query=1%2B1"), json::array());
  // Grafana's probe: milliseconds where seconds belong, far in the future.
  EXPECT_EQ(Data("/api/v1/query_exemplars?query=latency_seconds_bucket&start=1700000000000"
                 "&end=1700000600000"),
            json::array());
  auto res = client_->Get("/api/v1/query_exemplars?query=sum(");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_THAT(res->body, HasSubstr("invalid parameter \\\"query\\\""));
  res = client_->Get("/api/v1/query_exemplars?query=up&start=10&end=5");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  // POST form works too.
  res = client_->Post("/api/v1/query_exemplars", "query=latency_seconds_bucket",
                      "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["data"].size(), 1u);
}

}  // namespace
}  // namespace tidemark::api
