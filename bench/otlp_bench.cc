// OTLP/HTTP metrics ingest next to remote write 1.0: decode + translate samples/s, with a no-op
// appender so that storage is not measured. The two requests carry the same series and samples:
// S series of one metric family with a few attributes and resource attributes, one sample each,
// as a Collector batch or a Prometheus remote-write shard would send them.
//
//   otlp_bench --benchmark_counters_tabular=true
// items_per_second is samples/s.
#include <benchmark/benchmark.h>
#include <snappy.h>
#include <zlib.h>

#include <string>

#include <google/protobuf/util/json_util.h>

#include "ingest/otlp.h"
#include "ingest/proto/otlp/metrics_service.pb.h"
#include "ingest/proto/remote_write.pb.h"
#include "ingest/remote_write.h"
#include "storage/appender.h"

namespace tidemark::ingest {
namespace {

namespace pb = ::opentelemetry::proto::metrics::v1;
using Request = ::opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest;

constexpr uint64_t kT0 = 1'700'000'000ULL * 1'000'000'000ULL;

class NoopAppender : public Appender {
 public:
  absl::Status Append(const Labels&, int64_t, double) override {
    ++pending_;
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    pending_ = 0;
    return absl::OkStatus();
  }
  void Rollback() override { pending_ = 0; }
  size_t pending() const override { return pending_; }

 private:
  size_t pending_ = 0;
};

void Attr(google::protobuf::RepeatedPtrField<opentelemetry::proto::common::v1::KeyValue>* attrs,
          const std::string& k, const std::string& v) {
  auto* kv = attrs->Add();
  kv->set_key(k);
  kv->mutable_value()->set_string_value(v);
}

// `series` cumulative counter points spread over 10 metrics of one resource and scope.
Request MakeOtlp(int series) {
  Request req;
  auto* rm = req.add_resource_metrics();
  Attr(rm->mutable_resource()->mutable_attributes(), "service.name", "checkout");
  Attr(rm->mutable_resource()->mutable_attributes(), "service.instance.id", "pod-1234");
  Attr(rm->mutable_resource()->mutable_attributes(), "host.name", "node-17");
  auto* sm = rm->add_scope_metrics();
  sm->mutable_scope()->set_name("io.opentelemetry.http");
  sm->mutable_scope()->set_version("1.2.3");
  const int metrics = 10;
  for (int m = 0; m < metrics; ++m) {
    auto* metric = sm->add_metrics();
    metric->set_name("http.server.requests." + std::to_string(m));
    metric->set_unit("{request}");
    metric->mutable_sum()->set_is_monotonic(true);
    metric->mutable_sum()->set_aggregation_temporality(pb::AGGREGATION_TEMPORALITY_CUMULATIVE);
    for (int i = 0; i < series / metrics; ++i) {
      auto* p = metric->mutable_sum()->add_data_points();
      p->set_start_time_unix_nano(kT0 - 60'000'000'000ULL);
      p->set_time_unix_nano(kT0);
      p->set_as_double(i * 3.0);
      Attr(p->mutable_attributes(), "http.method", i % 2 ? "GET" : "POST");
      Attr(p->mutable_attributes(), "http.route", "/api/v1/items/" + std::to_string(i));
      Attr(p->mutable_attributes(), "http.status_code", std::to_string(200 + i % 5));
    }
  }
  return req;
}

// The same series as remote write 1.0 (labels as the OTLP translation produces them).
std::string MakeRemoteWrite(int series) {
  prompb::WriteRequest req;
  const int metrics = 10;
  for (int m = 0; m < metrics; ++m) {
    for (int i = 0; i < series / metrics; ++i) {
      auto* ts = req.add_timeseries();
      auto add = [ts](const std::string& n, const std::string& v) {
        auto* l = ts->add_labels();
        l->set_name(n);
        l->set_value(v);
      };
      add("__name__", "http_server_requests_" + std::to_string(m) + "_total");
      add("http_method", i % 2 ? "GET" : "POST");
      add("http_route", "/api/v1/items/" + std::to_string(i));
      add("http_status_code", std::to_string(200 + i % 5));
      add("instance", "pod-1234");
      add("job", "checkout");
      add("otel_scope_name", "io.opentelemetry.http");
      add("otel_scope_version", "1.2.3");
      auto* s = ts->add_samples();
      s->set_timestamp(1'700'000'000'000LL);
      s->set_value(i * 3.0);
    }
  }
  std::string raw = req.SerializeAsString(), out;
  snappy::Compress(raw.data(), raw.size(), &out);
  return out;
}

std::string Gzip(const std::string& raw) {
  uLongf size = compressBound(raw.size()) + 64;
  std::string out(size, '\0');
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void BM_OtlpProtobuf(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  const std::string body = MakeOtlp(series).SerializeAsString();
  OtlpReceiver receiver{OtlpOptions{}};
  NoopAppender appender;
  for (auto _ : state) {
    OtlpResult r = receiver.Export("t", body, OtlpEncoding::kProtobuf, "", appender, nullptr);
    if (!r.status.ok() || r.samples_appended < series) state.SkipWithError("export failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * series);  // + target_info samples, ignored
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}

void BM_OtlpProtobufGzip(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  const std::string body = Gzip(MakeOtlp(series).SerializeAsString());
  OtlpReceiver receiver{OtlpOptions{}};
  NoopAppender appender;
  for (auto _ : state) {
    OtlpResult r = receiver.Export("t", body, OtlpEncoding::kProtobuf, "gzip", appender, nullptr);
    if (!r.status.ok()) state.SkipWithError("export failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * series);
}

void BM_OtlpJson(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  std::string body;
  (void)google::protobuf::util::MessageToJsonString(MakeOtlp(series), &body);
  OtlpReceiver receiver{OtlpOptions{}};
  NoopAppender appender;
  for (auto _ : state) {
    OtlpResult r = receiver.Export("t", body, OtlpEncoding::kJson, "", appender, nullptr);
    if (!r.status.ok()) state.SkipWithError("export failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * series);
}

void BM_RemoteWrite1(benchmark::State& state) {
  const int series = static_cast<int>(state.range(0));
  const std::string body = MakeRemoteWrite(series);
  NoopAppender appender;
  for (auto _ : state) {
    WriteResult r = HandleRemoteWrite(body, "snappy", WriteLimits{}, appender);
    if (!r.status.ok()) state.SkipWithError("remote write failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * series);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}

BENCHMARK(BM_OtlpProtobuf)->Arg(1000)->Arg(10000);
BENCHMARK(BM_OtlpProtobufGzip)->Arg(10000);
BENCHMARK(BM_OtlpJson)->Arg(10000);
BENCHMARK(BM_RemoteWrite1)->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace tidemark::ingest

BENCHMARK_MAIN();
