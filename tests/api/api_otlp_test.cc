// OTLP/HTTP over the real server: status codes (415 content type and coding, 400 malformed, 429
// with Retry-After over the in-flight limit, 200 with partial_success), and metadata and
// exemplars of OTLP metrics through /api/v1/metadata and /api/v1/query_exemplars. An in-process
// server over a real DB in a temporary directory, on an ephemeral loopback port.
#include <httplib.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "api/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/proto/otlp/metrics_service.pb.h"
#include "ingest/proto/otlp/status.pb.h"
#include "nlohmann/json.hpp"
#include "storage/db.h"

namespace tidemark::api {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
namespace pb = ::opentelemetry::proto::metrics::v1;
using Request = ::opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest;
using Response = ::opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceResponse;

constexpr uint64_t kT0 = 1'700'000'000ULL * 1'000'000'000ULL;  // ns
constexpr char kTrace[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kSpan[] = "00f067aa0ba902b7";
constexpr char kProto[] = "application/x-protobuf";

void SetAttr(google::protobuf::RepeatedPtrField<::opentelemetry::proto::common::v1::KeyValue>* a,
             const std::string& key, const std::string& value) {
  auto* kv = a->Add();
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
}

// A request: a counter `http.requests` (one point with an exemplar) and a histogram
// `rpc.duration` in seconds (bounds 0.1, 1; an exemplar of 0.5), service "api" instance "i1".
// With `bad_name`, a gauge whose name has no valid Prometheus spelling is added.
Request OtlpRequest(bool bad_name = false) {
  Request req;
  auto* rm = req.add_resource_metrics();
  SetAttr(rm->mutable_resource()->mutable_attributes(), "service.name", "api");
  SetAttr(rm->mutable_resource()->mutable_attributes(), "service.instance.id", "i1");
  auto* sm = rm->add_scope_metrics();
  auto* c = sm->add_metrics();
  c->set_name("http.requests");
  c->set_description("Requests served.");
  c->set_unit("{request}");
  c->mutable_sum()->set_is_monotonic(true);
  c->mutable_sum()->set_aggregation_temporality(pb::AGGREGATION_TEMPORALITY_CUMULATIVE);
  auto* p = c->mutable_sum()->add_data_points();
  p->set_start_time_unix_nano(kT0 - 60'000'000'000ULL);
  p->set_time_unix_nano(kT0);
  p->set_as_int(42);
  auto* e = p->add_exemplars();
  e->set_as_double(1);
  e->set_time_unix_nano(kT0 - 1'000'000'000ULL);
  e->set_trace_id(absl::HexStringToBytes(kTrace));
  e->set_span_id(absl::HexStringToBytes(kSpan));

  auto* h = sm->add_metrics();
  h->set_name("rpc.duration");
  h->set_description("RPC latency.");
  h->set_unit("s");
  h->mutable_histogram()->set_aggregation_temporality(pb::AGGREGATION_TEMPORALITY_CUMULATIVE);
  auto* hp = h->mutable_histogram()->add_data_points();
  hp->set_time_unix_nano(kT0);
  hp->set_count(3);
  hp->set_sum(1.2);
  hp->add_explicit_bounds(0.1);
  hp->add_explicit_bounds(1);
  for (uint64_t n : {1, 2, 0}) hp->add_bucket_counts(n);
  auto* he = hp->add_exemplars();
  he->set_as_double(0.5);
  he->set_time_unix_nano(kT0);
  he->set_trace_id(absl::HexStringToBytes(kTrace));
  SetAttr(he->mutable_filtered_attributes(), "http.route", "/users");

  if (bad_name) {
    auto* g = sm->add_metrics();
    g->set_name("...");
    auto* gp = g->mutable_gauge()->add_data_points();
    gp->set_time_unix_nano(kT0);
    gp->set_as_double(1);
  }
  return req;
}

class OtlpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tidemark-api-otlp-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Options db_options;
    db_options.path = dir_ + "/data";
    db_options.retention_ms = 0;
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_options);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  void StartServer(ServerOptions options = {}) {
    server_ = std::make_unique<Server>(std::move(options));
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

  httplib::Result Post(const std::string& body, const std::string& content_type,
                       const std::string& content_encoding = "",
                       const std::string& path = "/v1/metrics") {
    httplib::Headers headers;
    if (!content_encoding.empty()) headers.emplace("Content-Encoding", content_encoding);
    return client_->Post(path.c_str(), headers, body, content_type.c_str());
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

  // Stored series of every name (nothing stored: empty).
  size_t SeriesCount() {
    return Data("/api/v1/series?match[]=%7B__name__%3D~%22.%2B%22%7D&start=0&end=4000000000")
        .size();
  }

  std::string dir_;
  std::unique_ptr<DB> db_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(OtlpApiTest, AcceptedWithMetadataAndExemplars) {
  StartServer();
  auto res = Post(OtlpRequest().SerializeAsString(), kProto, "", "/api/v1/otlp/v1/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), kProto);
  Response response;
  ASSERT_TRUE(response.ParseFromString(res->body));
  EXPECT_FALSE(response.has_partial_success());

  json q = Data("/api/v1/query?query=http_requests_total&time=1700000000");
  ASSERT_EQ(q["result"].size(), 1u);
  EXPECT_EQ(q["result"][0]["value"][1], "42");

  EXPECT_EQ(Data("/api/v1/metadata"), json::parse(R"({
      "http_requests_total": [{"type": "counter", "help": "Requests served.", "unit": ""}],
      "rpc_duration_seconds": [{"type": "histogram", "help": "RPC latency.", "unit": "seconds"}]
  })"));

  json ex = Data("/api/v1/query_exemplars?query=rpc_duration_seconds_bucket"
                 "&start=1699999990&end=1700000010");
  ASSERT_EQ(ex.size(), 1u) << ex.dump();
  EXPECT_EQ(ex[0]["seriesLabels"]["le"], "1");
  EXPECT_EQ(ex[0]["exemplars"], json::parse(absl::StrCat(
                                    R"([{"labels": {"http_route": "/users", "trace_id": ")",
                                    kTrace, R"("}, "value": "0.5", "timestamp": 1700000000}])")));
  json cex = Data("/api/v1/query_exemplars?query=http_requests_total"
                  "&start=1699999990&end=1700000010");
  ASSERT_EQ(cex.size(), 1u) << cex.dump();
  EXPECT_EQ(cex[0]["exemplars"][0]["labels"]["span_id"], kSpan);
  EXPECT_EQ(cex[0]["exemplars"][0]["timestamp"], 1699999999);
}

TEST_F(OtlpApiTest, UnsupportedMediaTypesAre415WithAReason) {
  StartServer();
  const std::string body = OtlpRequest().SerializeAsString();
  auto res = Post(body, "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  EXPECT_THAT(res->body, HasSubstr("application/x-protobuf or application/json"));
  // cpp-httplib would try to decode br itself; the body is not brotli either way.
  for (const char* coding : {"br", "zstd", "compress"}) {
    res = Post(body, kProto, coding);
    ASSERT_TRUE(res) << coding;
    EXPECT_EQ(res->status, 415) << coding << ": " << res->body;
    EXPECT_THAT(res->body, HasSubstr("Content-Encoding")) << coding;
    EXPECT_THAT(res->body, HasSubstr(coding));
  }
  EXPECT_EQ(SeriesCount(), 0u);
}

TEST_F(OtlpApiTest, MalformedBodiesAre400AndStoreNothing) {
  StartServer();
  auto res = Post(std::string("\x0a\xff\xff\xff\xff\x0f garbage", 16), kProto);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;
  ::tidemark::ingest::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(res->body));
  EXPECT_EQ(status.code(), 3);  // INVALID_ARGUMENT
  EXPECT_THAT(status.message(), HasSubstr("decode protobuf"));

  res = Post(R"({"resourceMetrics": [{"scopeMetrics": 7}]})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  json err = json::parse(res->body, nullptr, false);
  EXPECT_THAT(err.value("message", ""), HasSubstr("OTLP JSON"));

  // A corrupt gzip stream (the magic bytes, then nonsense).
  res = Post(std::string("\x1f\x8b\x08\x00garbage-garbage", 19), kProto, "gzip");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;
  EXPECT_EQ(SeriesCount(), 0u);
  EXPECT_EQ(Data("/api/v1/metadata"), json::object());
}

TEST_F(OtlpApiTest, OverTheInFlightLimitIs429WithRetryAfter) {
  ServerOptions options;
  options.otlp_max_inflight_requests = 0;  // every request is one too many
  StartServer(options);
  auto res = Post(OtlpRequest().SerializeAsString(), kProto);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  ::tidemark::ingest::rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(res->body));
  EXPECT_THAT(status.message(), HasSubstr("too many OTLP requests"));
  res = Post(R"({"resourceMetrics": []})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_THAT(res->body, HasSubstr("too many OTLP requests"));
  EXPECT_EQ(SeriesCount(), 0u);
}

TEST_F(OtlpApiTest, PartialSuccessInTheRequestsEncoding) {
  StartServer();
  auto res = Post(OtlpRequest(/*bad_name=*/true).SerializeAsString(), kProto);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  Response response;
  ASSERT_TRUE(response.ParseFromString(res->body));
  ASSERT_TRUE(response.has_partial_success());
  EXPECT_EQ(response.partial_success().rejected_data_points(), 1);
  EXPECT_THAT(response.partial_success().error_message(), HasSubstr("no valid Prometheus name"));
  // The rest is stored.
  EXPECT_EQ(Data("/api/v1/query?query=http_requests_total&time=1700000000")["result"].size(), 1u);

  // JSON: the same request again; its samples are duplicates of stored ones (accepted), the bad
  // gauge is rejected again.
  // (OTLP JSON spells ids in hex, protobuf's JSON in base64: no exemplars here.)
  Request req = OtlpRequest(true);
  for (auto& m : *req.mutable_resource_metrics(0)->mutable_scope_metrics(0)->mutable_metrics()) {
    if (m.has_sum()) m.mutable_sum()->mutable_data_points(0)->clear_exemplars();
    if (m.has_histogram()) m.mutable_histogram()->mutable_data_points(0)->clear_exemplars();
  }
  std::string body;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(req, &body).ok());
  res = Post(body, "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json j = json::parse(res->body, nullptr, false);
  ASSERT_TRUE(j.contains("partialSuccess")) << res->body;
  EXPECT_EQ(j["partialSuccess"]["rejectedDataPoints"], "1");
}

}  // namespace
}  // namespace tidemark::api
