// OTLP/HTTP metrics ingest: naming rules, every data point type, delta-to-cumulative (also across
// a simulated restart and with the real DB as the state store), both encodings, gzip, partial
// success. Requests are built with the generated OTLP classes and fed to OtlpReceiver with a
// model appender that refuses out-of-order and duplicate samples as storage does.
#include "ingest/otlp.h"

#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/otlp_delta.h"
#include "ingest/otlp_naming.h"
#include "ingest/proto/otlp/metrics_service.pb.h"
#include "ingest/proto/otlp/status.pb.h"
#include "storage/appender.h"
#include "storage/db.h"
#include "storage/labels.h"
#include "storage/sample.h"

namespace tidemark::ingest {
namespace {

namespace pb = ::opentelemetry::proto::metrics::v1;
namespace pbc = ::opentelemetry::proto::common::v1;
using Request = ::opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest;
using Response = ::opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceResponse;
using ::testing::HasSubstr;

constexpr uint64_t kSec = 1'000'000'000ULL;
constexpr uint64_t kT0 = 1'700'000'000ULL * kSec;  // a plausible "now" in ns
constexpr int64_t kT0Ms = 1'700'000'000'000LL;

// ---------------------------------------------------------------------------------------------
// Model appender and state store.

struct Appended {
  Labels labels;
  int64_t t;
  double v;
};

class ModelAppender : public Appender {
 public:
  absl::Status Append(const Labels& labels, int64_t t_ms, double v) override {
    if (absl::Status s = Labels::Validate(labels.items()); !s.ok()) {
      return StatusOf(RejectReason::kInvalidLabels, std::string(s.message()));
    }
    auto it = last_.find(labels.ToString());
    if (it != last_.end()) {
      if (t_ms < it->second.t) return StatusOf(RejectReason::kOutOfOrder);
      if (t_ms == it->second.t) {
        if (Sample{t_ms, v} == it->second) return absl::OkStatus();
        return StatusOf(RejectReason::kDuplicate);
      }
    }
    pending_.push_back({labels, t_ms, v});
    pending_last_[labels.ToString()] = Sample{t_ms, v};
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    if (!commit_status.ok()) {
      Rollback();
      return commit_status;
    }
    for (auto& a : pending_) committed.push_back(a);
    for (auto& [k, s] : pending_last_) last_[k] = s;
    Rollback();
    return absl::OkStatus();
  }
  void Rollback() override {
    pending_.clear();
    pending_last_.clear();
  }
  size_t pending() const override { return pending_.size(); }

  // Samples of the series rendered as `series` (Labels::ToString), in append order.
  std::vector<Sample> Of(const std::string& series) const {
    std::vector<Sample> out;
    for (const Appended& a : committed) {
      if (a.labels.ToString() == series) out.push_back({a.t, a.v});
    }
    return out;
  }
  std::vector<std::string> SeriesNames() const {
    std::vector<std::string> out;
    for (const Appended& a : committed) {
      std::string s = a.labels.ToString();
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::vector<Appended> committed;
  absl::Status commit_status;

 private:
  std::vector<Appended> pending_;
  std::map<std::string, Sample> last_;
  std::map<std::string, Sample> pending_last_;
};

class MapStore : public DeltaStateStore {
 public:
  absl::StatusOr<std::optional<std::string>> Get(std::string_view tenant,
                                                 std::string_view key) override {
    if (!fail.ok()) return fail;
    auto it = data.find(std::string(tenant) + "|" + std::string(key));
    if (it == data.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  absl::Status Put(std::string_view tenant, std::string_view key,
                   std::string_view value) override {
    if (!fail.ok()) return fail;
    std::string k = std::string(tenant) + "|" + std::string(key);
    if (value.empty()) {
      data.erase(k);
    } else {
      data[k] = std::string(value);
    }
    return absl::OkStatus();
  }
  std::map<std::string, std::string> data;
  absl::Status fail;
};

// ---------------------------------------------------------------------------------------------
// Request builders.

void SetAttr(google::protobuf::RepeatedPtrField<pbc::KeyValue>* attrs, const std::string& key,
             const std::string& value) {
  pbc::KeyValue* kv = attrs->Add();
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
}

// A request with one resource (service.name=svc, service.instance.id=i1 unless `resource` says
// otherwise) and one scope (lib 1.2), to which metrics are added.
struct Builder {
  Request req;
  pb::ResourceMetrics* rm;
  pb::ScopeMetrics* sm;

  explicit Builder(std::vector<std::pair<std::string, std::string>> resource = {
                       {"service.name", "svc"}, {"service.instance.id", "i1"}}) {
    rm = req.add_resource_metrics();
    for (const auto& [k, v] : resource) SetAttr(rm->mutable_resource()->mutable_attributes(), k, v);
    sm = rm->add_scope_metrics();
    sm->mutable_scope()->set_name("lib");
    sm->mutable_scope()->set_version("1.2");
  }
  pb::Metric* Add(const std::string& name, const std::string& unit = "") {
    pb::Metric* m = sm->add_metrics();
    m->set_name(name);
    m->set_unit(unit);
    return m;
  }
  std::string Bytes() const { return req.SerializeAsString(); }
};

pb::NumberDataPoint* Number(google::protobuf::RepeatedPtrField<pb::NumberDataPoint>* points,
                            uint64_t start, uint64_t t, double v,
                            std::vector<std::pair<std::string, std::string>> attrs = {}) {
  pb::NumberDataPoint* p = points->Add();
  p->set_start_time_unix_nano(start);
  p->set_time_unix_nano(t);
  p->set_as_double(v);
  for (const auto& [k, val] : attrs) SetAttr(p->mutable_attributes(), k, val);
  return p;
}

pb::Metric* AddSum(Builder& b, const std::string& name, const std::string& unit, bool monotonic,
                   pb::AggregationTemporality temporality) {
  pb::Metric* m = b.Add(name, unit);
  m->mutable_sum()->set_is_monotonic(monotonic);
  m->mutable_sum()->set_aggregation_temporality(temporality);
  return m;
}

constexpr auto kCumulative = pb::AGGREGATION_TEMPORALITY_CUMULATIVE;
constexpr auto kDelta = pb::AGGREGATION_TEMPORALITY_DELTA;

std::string Gzip(const std::string& raw) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&zs, raw.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

struct Fixture {
  OtlpOptions options;
  ModelAppender appender;
  MapStore store;

  OtlpResult Send(const std::string& body, OtlpEncoding enc = OtlpEncoding::kProtobuf,
                  const std::string& content_encoding = "") {
    OtlpReceiver receiver(options);
    return receiver.Export("t1", body, enc, content_encoding, appender, &store);
  }
  OtlpResult Send(const Builder& b) { return Send(b.Bytes()); }
};

const std::string kBase = "instance=\"i1\", job=\"svc\", otel_scope_name=\"lib\", otel_scope_version=\"1.2\"";

// kBase with an le label in its sorted place.
std::string WithLe(const std::string& le) {
  return "instance=\"i1\", job=\"svc\", le=\"" + le +
         "\", otel_scope_name=\"lib\", otel_scope_version=\"1.2\"";
}

bool IsStale(const Sample& s) { return IsStaleNaN(s.v); }

// ---------------------------------------------------------------------------------------------
// Naming.

TEST(OtlpNaming, MetricNamesWithSuffixes) {
  auto name = [](std::string_view n, std::string_view unit, OtlpMetricType type) {
    return BuildOtlpMetricName(n, unit, type, true);
  };
  using T = OtlpMetricType;
  EXPECT_EQ(name("http.server.duration", "ms", T::kHistogram), "http_server_duration_milliseconds");
  EXPECT_EQ(name("http.server.request.duration", "s", T::kHistogram),
            "http_server_request_duration_seconds");
  EXPECT_EQ(name("system.memory.usage", "By", T::kGauge), "system_memory_usage_bytes");
  EXPECT_EQ(name("requests", "1", T::kMonotonicCounter), "requests_total");
  EXPECT_EQ(name("cpu.utilization", "1", T::kGauge), "cpu_utilization_ratio");
  EXPECT_EQ(name("cpu.ratio.used", "1", T::kGauge), "cpu_used_ratio");
  EXPECT_EQ(name("queue.fill", "1", T::kNonMonotonicCounter), "queue_fill");
  EXPECT_EQ(name("net.io", "By/s", T::kGauge), "net_io_bytes_per_second");
  EXPECT_EQ(name("rate", "{req}/s", T::kGauge), "rate_per_second");
  EXPECT_EQ(name("active.requests", "{request}", T::kNonMonotonicCounter), "active_requests");
  EXPECT_EQ(name("disk.io", "By", T::kMonotonicCounter), "disk_io_bytes_total");
  EXPECT_EQ(name("total.requests", "", T::kMonotonicCounter), "requests_total");
  EXPECT_EQ(name("requests_total", "", T::kMonotonicCounter), "requests_total");
  EXPECT_EQ(name("latency_seconds", "s", T::kGauge), "latency_seconds");
  EXPECT_EQ(name("mem", "MiBy", T::kGauge), "mem_mebibytes");
  EXPECT_EQ(name("load", "%", T::kGauge), "load_percent");
  EXPECT_EQ(name("temp", "Cel", T::kGauge), "temp_celsius");
  EXPECT_EQ(name("odd", "widgets/w", T::kGauge), "odd_widgets_per_week");
  EXPECT_EQ(name("a..b__c", "", T::kGauge), "a_b_c");
  EXPECT_EQ(name("2xx.count", "", T::kGauge), "_2xx_count");
  EXPECT_EQ(name("ns:metric.x", "", T::kGauge), "ns:metric_x");
  EXPECT_EQ(name("ünïcode", "", T::kGauge), "n_code");
  EXPECT_EQ(name("", "", T::kGauge), "");
  EXPECT_EQ(name("...", "", T::kGauge), "");
}

TEST(OtlpNaming, MetricNamesWithoutSuffixes) {
  EXPECT_EQ(BuildOtlpMetricName("http.server.duration", "ms", OtlpMetricType::kHistogram, false),
            "http_server_duration");
  EXPECT_EQ(BuildOtlpMetricName("requests", "1", OtlpMetricType::kMonotonicCounter, false),
            "requests");
  EXPECT_EQ(BuildOtlpMetricName("a__b..c", "", OtlpMetricType::kGauge, false), "a__b_c");
  EXPECT_EQ(BuildOtlpMetricName("9lives", "", OtlpMetricType::kGauge, false), "_9lives");
}

TEST(OtlpNaming, LabelNames) {
  EXPECT_EQ(BuildOtlpLabelName("http.method"), "http_method");
  EXPECT_EQ(BuildOtlpLabelName("host.name"), "host_name");
  EXPECT_EQ(BuildOtlpLabelName("a..b__c"), "a_b_c");
  EXPECT_EQ(BuildOtlpLabelName("123"), "key_123");
  EXPECT_EQ(BuildOtlpLabelName("__reserved__"), "__reserved__");
  EXPECT_EQ(BuildOtlpLabelName("_private"), "_private");
  EXPECT_EQ(BuildOtlpLabelName("ünï"), "_n_");
  EXPECT_EQ(BuildOtlpLabelName("___"), "");
  EXPECT_EQ(BuildOtlpLabelName(""), "");
}

TEST(OtlpNaming, UnitNames) {
  EXPECT_EQ(BuildOtlpUnitName("By/s"), "bytes_per_second");
  EXPECT_EQ(BuildOtlpUnitName("ms"), "milliseconds");
  EXPECT_EQ(BuildOtlpUnitName("1"), "");
  EXPECT_EQ(BuildOtlpUnitName("{packets}"), "");
}

TEST(OtlpOptions, TranslationStrategies) {
  EXPECT_EQ(*ParseOtlpTranslationStrategy("UnderscoreEscapingWithSuffixes"),
            OtlpTranslationStrategy::kUnderscoreEscapingWithSuffixes);
  EXPECT_EQ(*ParseOtlpTranslationStrategy("UnderscoreEscapingWithoutSuffixes"),
            OtlpTranslationStrategy::kUnderscoreEscapingWithoutSuffixes);
  EXPECT_THAT(ParseOtlpTranslationStrategy("NoTranslation").status().message(),
              HasSubstr("UTF-8"));
  EXPECT_FALSE(ParseOtlpTranslationStrategy("bogus").ok());
}

// ---------------------------------------------------------------------------------------------
// Point types and labels.

TEST(OtlpTranslate, GaugeWithResourceScopeAndTargetInfo) {
  Fixture f;
  Builder b({{"service.name", "api"},
             {"service.namespace", "shop"},
             {"service.instance.id", "pod-7"},
             {"host.name", "h1"},
             {"cloud.region", "eu"}});
  pb::Metric* m = b.Add("memory.used", "By");
  Number(m->mutable_gauge()->mutable_data_points(), 0, kT0, 42.5, {{"state", "used"}});
  pb::NumberDataPoint* p2 = m->mutable_gauge()->add_data_points();
  p2->set_time_unix_nano(kT0 + 10 * kSec);
  p2->set_as_int(-7);
  SetAttr(p2->mutable_attributes(), "state", "free");
  OtlpResult r = f.Send(b);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.points_received, 2);
  EXPECT_EQ(r.points_rejected, 0);
  const std::string base =
      "instance=\"pod-7\", job=\"shop/api\", otel_scope_name=\"lib\", otel_scope_version=\"1.2\"";
  EXPECT_EQ(f.appender.Of("memory_used_bytes{" + base + ", state=\"used\"}"),
            (std::vector<Sample>{{kT0Ms, 42.5}}));
  EXPECT_EQ(f.appender.Of("memory_used_bytes{" + base + ", state=\"free\"}"),
            (std::vector<Sample>{{kT0Ms + 10000, -7}}));
  // target_info: the non-identifying resource attributes, from the first to the last point.
  EXPECT_EQ(f.appender.Of("target_info{cloud_region=\"eu\", host_name=\"h1\", instance=\"pod-7\", "
                          "job=\"shop/api\"}"),
            (std::vector<Sample>{{kT0Ms, 1}, {kT0Ms + 10000, 1}}));
  EXPECT_EQ(r.samples_appended, 4);
}

TEST(OtlpTranslate, TargetInfoEveryHalfLookbackAndOnlyWithOtherAttributes) {
  Fixture f;
  f.options.lookback_delta_ms = 60'000;
  Builder b({{"service.name", "svc"}, {"host.name", "h"}});
  pb::Metric* m = b.Add("g");
  Number(m->mutable_gauge()->mutable_data_points(), 0, kT0, 1, {{"k", "a"}});
  Number(m->mutable_gauge()->mutable_data_points(), 0, kT0 + 70 * kSec, 1, {{"k", "b"}});
  ASSERT_TRUE(f.Send(b).status.ok());
  EXPECT_EQ(f.appender.Of("target_info{host_name=\"h\", job=\"svc\"}"),
            (std::vector<Sample>{{kT0Ms, 1}, {kT0Ms + 30000, 1}, {kT0Ms + 60000, 1},
                                 {kT0Ms + 70000, 1}}));

  Fixture g;
  Builder only_ids;  // service.name and service.instance.id only: no target_info
  Number(only_ids.Add("g")->mutable_gauge()->mutable_data_points(), 0, kT0, 1);
  ASSERT_TRUE(g.Send(only_ids).status.ok());
  for (const std::string& s : g.appender.SeriesNames()) EXPECT_THAT(s, ::testing::Not(HasSubstr("target_info")));
  EXPECT_EQ(g.appender.SeriesNames().size(), 1u);
}

TEST(OtlpTranslate, AttributeSanitisingCollisionsAndPromotion) {
  Fixture f;
  f.options.promote_resource_attributes = {"cloud.region", "k8s.pod.name", "absent"};
  Builder b({{"service.name", "svc"}, {"cloud.region", "eu"}, {"k8s.pod.name", "p1"}});
  pb::Metric* m = b.Add("g");
  pb::NumberDataPoint* p = Number(m->mutable_gauge()->mutable_data_points(), 0, kT0, 1,
                                  {{"a_b", "second"}, {"a.b", "first"}, {"k8s.pod.name", "own"}});
  pbc::KeyValue* kv = p->add_attributes();
  kv->set_key("n");
  kv->mutable_value()->set_int_value(12);
  kv = p->add_attributes();
  kv->set_key("flag");
  kv->mutable_value()->set_bool_value(true);
  kv = p->add_attributes();
  kv->set_key("list");
  kv->mutable_value()->mutable_array_value()->add_values()->set_string_value("x");
  kv->mutable_value()->mutable_array_value()->add_values()->set_int_value(2);
  ASSERT_TRUE(f.Send(b).status.ok());
  EXPECT_EQ(f.appender.Of("g{a_b=\"first;second\", cloud_region=\"eu\", flag=\"true\", "
                          "job=\"svc\", k8s_pod_name=\"own\", list=\"[\\\"x\\\",2]\", n=\"12\", "
                          "otel_scope_name=\"lib\", otel_scope_version=\"1.2\"}"),
            (std::vector<Sample>{{kT0Ms, 1}}));
}

TEST(OtlpTranslate, ScopeLabelsCanBeTurnedOff) {
  Fixture f;
  f.options.promote_scope_metadata = false;
  Builder b;
  Number(b.Add("g")->mutable_gauge()->mutable_data_points(), 0, kT0, 3);
  ASSERT_TRUE(f.Send(b).status.ok());
  EXPECT_EQ(f.appender.Of("g{instance=\"i1\", job=\"svc\"}"), (std::vector<Sample>{{kT0Ms, 3}}));
}

TEST(OtlpTranslate, SumsCountersAndGaugesAndCreated) {
  Fixture f;
  f.options.export_created_metric = true;
  Builder b;
  Number(AddSum(b, "http.requests", "{request}", true, kCumulative)->mutable_sum()->mutable_data_points(),
         kT0 - 60 * kSec, kT0, 10);
  Number(AddSum(b, "queue.depth", "1", false, kCumulative)->mutable_sum()->mutable_data_points(),
         kT0 - 60 * kSec, kT0, 4);
  OtlpResult r = f.Send(b);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(f.appender.Of("http_requests_total{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 10}}));
  EXPECT_EQ(f.appender.Of("http_requests_total_created{" + kBase + "}"),
            (std::vector<Sample>{{kT0Ms, static_cast<double>(kT0Ms - 60000)}}));
  EXPECT_EQ(f.appender.Of("queue_depth{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 4}}));
  EXPECT_EQ(f.appender.SeriesNames().size(), 3u);  // no _created for the non-monotonic sum
}

TEST(OtlpTranslate, WithoutSuffixesStrategy) {
  Fixture f;
  f.options.translation_strategy = OtlpTranslationStrategy::kUnderscoreEscapingWithoutSuffixes;
  Builder b;
  Number(AddSum(b, "http.requests", "1", true, kCumulative)->mutable_sum()->mutable_data_points(),
         kT0 - kSec, kT0, 10);
  ASSERT_TRUE(f.Send(b).status.ok());
  EXPECT_EQ(f.appender.Of("http_requests{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 10}}));
}

TEST(OtlpTranslate, Histogram) {
  Fixture f;
  Builder b;
  pb::Metric* m = b.Add("http.server.duration", "ms");
  m->mutable_histogram()->set_aggregation_temporality(kCumulative);
  pb::HistogramDataPoint* p = m->mutable_histogram()->add_data_points();
  p->set_start_time_unix_nano(kT0 - kSec);
  p->set_time_unix_nano(kT0);
  p->set_count(10);
  p->set_sum(123.5);
  for (double bound : {0.005, 1.0, 2.5}) p->add_explicit_bounds(bound);
  for (uint64_t c : {1, 2, 3, 4}) p->add_bucket_counts(c);
  ASSERT_TRUE(f.Send(b).status.ok());
  const std::string n = "http_server_duration_milliseconds";
  EXPECT_EQ(f.appender.Of(n + "_sum{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 123.5}}));
  EXPECT_EQ(f.appender.Of(n + "_count{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 10}}));
  EXPECT_EQ(f.appender.Of(n + "_bucket{" + WithLe("0.005") + "}"), (std::vector<Sample>{{kT0Ms, 1}}));
  EXPECT_EQ(f.appender.Of(n + "_bucket{" + WithLe("1") + "}"), (std::vector<Sample>{{kT0Ms, 3}}));
  EXPECT_EQ(f.appender.Of(n + "_bucket{" + WithLe("2.5") + "}"), (std::vector<Sample>{{kT0Ms, 6}}));
  EXPECT_EQ(f.appender.Of(n + "_bucket{" + WithLe("+Inf") + "}"), (std::vector<Sample>{{kT0Ms, 10}}));
  EXPECT_EQ(f.appender.SeriesNames().size(), 6u);
}

TEST(OtlpTranslate, HistogramWithMismatchedBucketsIsRejected) {
  Fixture f;
  Builder b;
  pb::Metric* m = b.Add("h");
  m->mutable_histogram()->set_aggregation_temporality(kCumulative);
  pb::HistogramDataPoint* p = m->mutable_histogram()->add_data_points();
  p->set_time_unix_nano(kT0);
  p->set_count(1);
  p->add_explicit_bounds(1);
  p->add_bucket_counts(1);  // 1 count for 1 bound: needs 2
  OtlpResult r = f.Send(b);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.points_rejected, 1);
  EXPECT_THAT(r.error_message, HasSubstr("bucket counts"));
  EXPECT_TRUE(f.appender.committed.empty());
}

pb::ExponentialHistogramDataPoint* AddExp(pb::Metric* m, uint64_t start, uint64_t t, int scale,
                                          uint64_t zero, int32_t pos_offset,
                                          std::vector<uint64_t> pos, int32_t neg_offset = 0,
                                          std::vector<uint64_t> neg = {}) {
  pb::ExponentialHistogramDataPoint* p = m->mutable_exponential_histogram()->add_data_points();
  p->set_start_time_unix_nano(start);
  p->set_time_unix_nano(t);
  p->set_scale(scale);
  p->set_zero_count(zero);
  uint64_t count = zero;
  p->mutable_positive()->set_offset(pos_offset);
  for (uint64_t c : pos) p->mutable_positive()->add_bucket_counts(c), count += c;
  p->mutable_negative()->set_offset(neg_offset);
  for (uint64_t c : neg) p->mutable_negative()->add_bucket_counts(c), count += c;
  p->set_count(count);
  p->set_sum(static_cast<double>(count));
  return p;
}

TEST(OtlpTranslate, ExponentialHistogramToClassicBuckets) {
  Fixture f;
  Builder b;
  pb::Metric* m = b.Add("latency", "s");
  m->mutable_exponential_histogram()->set_aggregation_temporality(kCumulative);
  // scale 0: positive bucket i covers (2^i, 2^(i+1)]; negative mirrors it.
  AddExp(m, kT0 - kSec, kT0, 0, /*zero=*/1, /*pos_offset=*/0, {1, 2}, /*neg_offset=*/1, {3});
  ASSERT_TRUE(f.Send(b).status.ok());
  const std::string n = "latency_seconds_bucket{";
  EXPECT_EQ(f.appender.Of(n + WithLe("-2") + "}"), (std::vector<Sample>{{kT0Ms, 3}}));
  EXPECT_EQ(f.appender.Of(n + WithLe("0") + "}"), (std::vector<Sample>{{kT0Ms, 4}}));
  EXPECT_EQ(f.appender.Of(n + WithLe("2") + "}"), (std::vector<Sample>{{kT0Ms, 5}}));
  EXPECT_EQ(f.appender.Of(n + WithLe("4") + "}"), (std::vector<Sample>{{kT0Ms, 7}}));
  EXPECT_EQ(f.appender.Of(n + WithLe("+Inf") + "}"), (std::vector<Sample>{{kT0Ms, 7}}));
  EXPECT_EQ(f.appender.Of("latency_seconds_count{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 7}}));
}

TEST(OtlpTranslate, ExponentialHistogramIsMergedDownToTheConfiguredScale) {
  Fixture f;
  f.options.exponential_histogram_max_scale = 0;
  Builder b;
  pb::Metric* m = b.Add("x");
  m->mutable_exponential_histogram()->set_aggregation_temporality(kCumulative);
  // scale 2: bucket i covers (2^(i/4), 2^((i+1)/4)]. Indices 0..7 merge into scale-0 buckets 0, 1.
  AddExp(m, kT0 - kSec, kT0, 2, 0, 0, {1, 1, 1, 1, 2, 2, 2, 2});
  ASSERT_TRUE(f.Send(b).status.ok());
  const std::string n = "x_bucket{";
  EXPECT_EQ(f.appender.Of(n + WithLe("2") + "}"), (std::vector<Sample>{{kT0Ms, 4}}));
  EXPECT_EQ(f.appender.Of(n + WithLe("4") + "}"), (std::vector<Sample>{{kT0Ms, 12}}));

  Fixture fine;
  fine.options.exponential_histogram_max_scale = 1;
  ASSERT_TRUE(fine.Send(b).status.ok());
  const std::string n1 = "x_bucket{";
  EXPECT_EQ(fine.appender.Of(n1 + WithLe("1.4142135623730951") + "}"), (std::vector<Sample>{{kT0Ms, 2}}));
  EXPECT_EQ(fine.appender.Of(n1 + WithLe("2") + "}"), (std::vector<Sample>{{kT0Ms, 4}}));
}

TEST(OtlpTranslate, Summary) {
  Fixture f;
  f.options.export_created_metric = true;
  Builder b;
  pb::Metric* m = b.Add("rpc.latency", "s");
  pb::SummaryDataPoint* p = m->mutable_summary()->add_data_points();
  p->set_start_time_unix_nano(kT0 - 2 * kSec);
  p->set_time_unix_nano(kT0);
  p->set_count(5);
  p->set_sum(2.5);
  auto* q = p->add_quantile_values();
  q->set_quantile(0.5);
  q->set_value(0.4);
  q = p->add_quantile_values();
  q->set_quantile(0.99);
  q->set_value(0.9);
  ASSERT_TRUE(f.Send(b).status.ok());
  EXPECT_EQ(f.appender.Of("rpc_latency_seconds{" + kBase + ", quantile=\"0.5\"}"), (std::vector<Sample>{{kT0Ms, 0.4}}));
  EXPECT_EQ(f.appender.Of("rpc_latency_seconds{" + kBase + ", quantile=\"0.99\"}"), (std::vector<Sample>{{kT0Ms, 0.9}}));
  EXPECT_EQ(f.appender.Of("rpc_latency_seconds_sum{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 2.5}}));
  EXPECT_EQ(f.appender.Of("rpc_latency_seconds_count{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 5}}));
  EXPECT_EQ(f.appender.Of("rpc_latency_seconds_created{" + kBase + "}"),
            (std::vector<Sample>{{kT0Ms, static_cast<double>(kT0Ms - 2000)}}));
}

TEST(OtlpTranslate, NoRecordedValueBecomesStaleMarker) {
  Fixture f;
  Builder b;
  pb::NumberDataPoint* p = b.Add("g")->mutable_gauge()->add_data_points();
  p->set_time_unix_nano(kT0);
  p->set_flags(1);
  pb::Metric* h = b.Add("h");
  h->mutable_histogram()->set_aggregation_temporality(kCumulative);
  pb::HistogramDataPoint* hp = h->mutable_histogram()->add_data_points();
  hp->set_time_unix_nano(kT0);
  hp->set_flags(1);
  hp->add_explicit_bounds(1);
  hp->add_bucket_counts(0);
  hp->add_bucket_counts(0);
  ASSERT_TRUE(f.Send(b).status.ok());
  auto g = f.appender.Of("g{" + kBase + "}");
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(std::bit_cast<uint64_t>(g[0].v), kStaleNaNBits);
  for (const std::string& s : {"h_sum{" + kBase + "}", "h_count{" + kBase + "}",
                               "h_bucket{" + WithLe("1") + "}", "h_bucket{" + WithLe("+Inf") + "}"}) {
    auto got = f.appender.Of(s);
    ASSERT_EQ(got.size(), 1u) << s;
    EXPECT_TRUE(IsStale(got[0])) << s;
  }
}

TEST(OtlpTranslate, InvalidNamesAndMissingTimesArePartiallyRejected) {
  Fixture f;
  Builder b;
  Number(b.Add("...")->mutable_gauge()->mutable_data_points(), 0, kT0, 1);
  Number(b.Add("ok")->mutable_gauge()->mutable_data_points(), 0, 0, 1);    // no time
  Number(b.Add("good")->mutable_gauge()->mutable_data_points(), 0, kT0, 2, {{"___", "v"}});
  Number(b.Add("good")->mutable_gauge()->mutable_data_points(), 0, kT0, 3);
  OtlpResult r = f.Send(b);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.points_received, 4);
  EXPECT_EQ(r.points_rejected, 3);
  EXPECT_THAT(r.error_message, HasSubstr("no valid Prometheus name"));
  EXPECT_EQ(f.appender.Of("good{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 3}}));
}

// ---------------------------------------------------------------------------------------------
// Delta to cumulative.

std::string DeltaCounter(uint64_t start, uint64_t t, double v) {
  Builder b;
  Number(AddSum(b, "jobs.done", "", true, kDelta)->mutable_sum()->mutable_data_points(), start, t, v);
  return b.Bytes();
}

TEST(OtlpDelta, SumsAccumulateAcrossRequestsAndRestarts) {
  Fixture f;
  f.options.export_created_metric = true;
  const std::string series = "jobs_done_total{" + kBase + "}";
  ASSERT_EQ(f.Send(DeltaCounter(kT0, kT0 + 10 * kSec, 5)).points_rejected, 0);
  ASSERT_EQ(f.Send(DeltaCounter(kT0 + 10 * kSec, kT0 + 20 * kSec, 3)).points_rejected, 0);
  // Fixture::Send makes a new receiver per request: each one is a "restart" of the server; only
  // the store (the DB in production) carries the running total.
  ASSERT_EQ(f.Send(DeltaCounter(kT0 + 20 * kSec, kT0 + 30 * kSec, 0)).points_rejected, 0);
  // A gap (nothing reported for a while) continues the series.
  ASSERT_EQ(f.Send(DeltaCounter(kT0 + 60 * kSec, kT0 + 70 * kSec, 2)).points_rejected, 0);
  EXPECT_EQ(f.appender.Of(series),
            (std::vector<Sample>{{kT0Ms + 10000, 5}, {kT0Ms + 20000, 8}, {kT0Ms + 30000, 8},
                                 {kT0Ms + 70000, 10}}));
  // _created stays at the start of the running total.
  for (const Sample& s : f.appender.Of("jobs_done_total_created{" + kBase + "}")) {
    EXPECT_EQ(s.v, static_cast<double>(kT0Ms));
  }

  // A retried (already counted) interval is rejected, not added twice.
  OtlpResult retry = f.Send(DeltaCounter(kT0 + 60 * kSec, kT0 + 70 * kSec, 2));
  EXPECT_EQ(retry.points_rejected, 1);
  EXPECT_THAT(retry.error_message, HasSubstr("not newer"));

  // A producer restart (a start before the running total's end) starts the series again.
  ASSERT_EQ(f.Send(DeltaCounter(kT0 + 65 * kSec, kT0 + 80 * kSec, 4)).points_rejected, 0);
  EXPECT_EQ(f.appender.Of(series).back(), (Sample{kT0Ms + 80000, 4}));
}

TEST(OtlpDelta, SeveralPointsOfOneSeriesInOneRequest) {
  Fixture f;
  Builder b;
  auto* points = AddSum(b, "c", "", true, kDelta)->mutable_sum()->mutable_data_points();
  Number(points, kT0, kT0 + kSec, 1);
  Number(points, kT0 + kSec, kT0 + 2 * kSec, 2);
  Number(points, kT0 + 2 * kSec, kT0 + 3 * kSec, 3);
  ASSERT_EQ(f.Send(b).points_rejected, 0);
  EXPECT_EQ(f.appender.Of("c_total{" + kBase + "}"),
            (std::vector<Sample>{{kT0Ms + 1000, 1}, {kT0Ms + 2000, 3}, {kT0Ms + 3000, 6}}));
}

TEST(OtlpDelta, StateIsSavedOnlyAfterACommit) {
  Fixture f;
  f.appender.commit_status = absl::UnavailableError("disk on fire");
  OtlpResult r = f.Send(DeltaCounter(kT0, kT0 + kSec, 5));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(f.store.data.empty());
  f.appender.commit_status = absl::OkStatus();
  ASSERT_TRUE(f.Send(DeltaCounter(kT0, kT0 + kSec, 5)).status.ok());  // the retry counts once
  EXPECT_EQ(f.appender.Of("jobs_done_total{" + kBase + "}"), (std::vector<Sample>{{kT0Ms + 1000, 5}}));
}

TEST(OtlpDelta, StoreErrorsAreUnavailable) {
  Fixture f;
  f.store.fail = absl::UnavailableError("state store down");
  OtlpResult r = f.Send(DeltaCounter(kT0, kT0 + kSec, 5));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(f.appender.committed.empty());
}

TEST(OtlpDelta, RejectedWhenConversionIsOff) {
  Fixture f;
  f.options.convert_delta_to_cumulative = false;
  OtlpResult r = f.Send(DeltaCounter(kT0, kT0 + kSec, 5));
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.points_rejected, 1);
  EXPECT_THAT(r.error_message, HasSubstr("delta"));
  EXPECT_TRUE(f.appender.committed.empty());
}

TEST(OtlpDelta, Histograms) {
  Fixture f;
  auto send = [&f](uint64_t start, uint64_t t, std::vector<uint64_t> counts, double sum) {
    Builder b;
    pb::Metric* m = b.Add("h");
    m->mutable_histogram()->set_aggregation_temporality(kDelta);
    pb::HistogramDataPoint* p = m->mutable_histogram()->add_data_points();
    p->set_start_time_unix_nano(start);
    p->set_time_unix_nano(t);
    uint64_t count = 0;
    for (uint64_t c : counts) p->add_bucket_counts(c), count += c;
    p->add_explicit_bounds(1);
    p->add_explicit_bounds(10);
    p->set_count(count);
    p->set_sum(sum);
    return f.Send(b.Bytes());
  };
  ASSERT_EQ(send(kT0, kT0 + kSec, {1, 0, 2}, 30).points_rejected, 0);
  ASSERT_EQ(send(kT0 + kSec, kT0 + 2 * kSec, {0, 4, 1}, 40).points_rejected, 0);
  EXPECT_EQ(f.appender.Of("h_bucket{" + WithLe("1") + "}").back(), (Sample{kT0Ms + 2000, 1}));
  EXPECT_EQ(f.appender.Of("h_bucket{" + WithLe("10") + "}").back(), (Sample{kT0Ms + 2000, 5}));
  EXPECT_EQ(f.appender.Of("h_bucket{" + WithLe("+Inf") + "}").back(), (Sample{kT0Ms + 2000, 8}));
  EXPECT_EQ(f.appender.Of("h_sum{" + kBase + "}").back(), (Sample{kT0Ms + 2000, 70}));
  EXPECT_EQ(f.appender.Of("h_count{" + kBase + "}").back(), (Sample{kT0Ms + 2000, 8}));
}

TEST(OtlpDelta, ExponentialHistograms) {
  Fixture f;
  auto send = [&f](uint64_t start, uint64_t t, int scale, int32_t offset, std::vector<uint64_t> pos) {
    Builder b;
    pb::Metric* m = b.Add("e");
    m->mutable_exponential_histogram()->set_aggregation_temporality(kDelta);
    AddExp(m, start, t, scale, 0, offset, pos);
    return f.Send(b.Bytes());
  };
  f.options.exponential_histogram_max_scale = 1;
  ASSERT_EQ(send(kT0, kT0 + kSec, 1, 0, {1, 1}).points_rejected, 0);       // (1,√2], (√2,2]
  ASSERT_EQ(send(kT0 + kSec, kT0 + 2 * kSec, 0, 1, {3}).points_rejected, 0);  // (2,4]: scale 0
  EXPECT_EQ(f.appender.Of("e_bucket{" + WithLe("2") + "}").back(), (Sample{kT0Ms + 2000, 2}));
  EXPECT_EQ(f.appender.Of("e_bucket{" + WithLe("4") + "}").back(), (Sample{kT0Ms + 2000, 5}));
  EXPECT_EQ(f.appender.Of("e_count{" + kBase + "}").back(), (Sample{kT0Ms + 2000, 5}));
}

TEST(OtlpDelta, StateEncodingRoundTripsAndRefusesGarbage) {
  internal::DeltaState s;
  s.kind = internal::DeltaState::Kind::kExponential;
  s.start_ns = 5;
  s.last_ns = 9;
  s.sum = 1.5;
  s.count = 3;
  s.exp.scale = -2;
  s.exp.pos_offset = -3;
  s.exp.pos = {1, 2};
  s.exp.neg_offset = 4;
  s.exp.neg = {7};
  std::string bytes = internal::EncodeDeltaState(s);
  std::optional<internal::DeltaState> back = internal::DecodeDeltaState(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->exp.scale, -2);
  EXPECT_EQ(back->exp.pos_offset, -3);
  EXPECT_EQ(back->exp.pos, (std::vector<double>{1, 2}));
  EXPECT_EQ(back->exp.neg, (std::vector<double>{7}));
  EXPECT_EQ(back->last_ns, 9u);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(internal::DecodeDeltaState(bytes.substr(0, cut)).has_value()) << cut;
  }
  EXPECT_FALSE(internal::DecodeDeltaState(bytes + "x").has_value());
}

TEST(OtlpDelta, RunningTotalsSurviveADatabaseRestart) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      ("otlp_test_" + std::to_string(::getpid()) + "_" + std::to_string(std::rand()));
  std::filesystem::remove_all(dir);
  Options db_options;
  db_options.path = dir.string();
  ModelAppender appender;
  {
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_options);
    ASSERT_TRUE(db.ok()) << db.status();
    std::unique_ptr<DeltaStateStore> store = NewDbDeltaStateStore(db->get());
    OtlpReceiver receiver{OtlpOptions{}};
    ASSERT_EQ(receiver.Export("t1", DeltaCounter(kT0, kT0 + kSec, 5), OtlpEncoding::kProtobuf, "",
                              appender, store.get()).points_rejected, 0);
    ASSERT_EQ(receiver.Export("t1", DeltaCounter(kT0 + kSec, kT0 + 2 * kSec, 2),
                              OtlpEncoding::kProtobuf, "", appender, store.get()).points_rejected, 0);
    ASSERT_TRUE((*db)->Close().ok());
  }
  {
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(db_options);
    ASSERT_TRUE(db.ok()) << db.status();
    std::unique_ptr<DeltaStateStore> store = NewDbDeltaStateStore(db->get());
    OtlpReceiver receiver{OtlpOptions{}};
    OtlpResult r = receiver.Export("t1", DeltaCounter(kT0 + 2 * kSec, kT0 + 3 * kSec, 4),
                                   OtlpEncoding::kProtobuf, "", appender, store.get());
    ASSERT_TRUE(r.status.ok()) << r.status;
    // Another tenant has its own running totals.
    ASSERT_TRUE(receiver.Export("t2", DeltaCounter(kT0 + 2 * kSec, kT0 + 3 * kSec, 1),
                                OtlpEncoding::kProtobuf, "", appender, store.get()).status.ok());
    ASSERT_TRUE((*db)->Close().ok());
  }
  std::vector<Sample> got = appender.Of("jobs_done_total{" + kBase + "}");
  EXPECT_EQ(got, (std::vector<Sample>{{kT0Ms + 1000, 5}, {kT0Ms + 2000, 7}, {kT0Ms + 3000, 11}}));
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Encodings, compression, responses.

TEST(OtlpDecode, ContentTypesAndEncodings) {
  EXPECT_EQ(*OtlpEncodingOf("application/x-protobuf"), OtlpEncoding::kProtobuf);
  EXPECT_EQ(*OtlpEncodingOf("Application/JSON; charset=utf-8"), OtlpEncoding::kJson);
  EXPECT_FALSE(OtlpEncodingOf("text/plain").ok());
  EXPECT_FALSE(OtlpEncodingOf("").ok());
  EXPECT_TRUE(CheckOtlpContentEncoding("").ok());
  EXPECT_TRUE(CheckOtlpContentEncoding("GZIP").ok());
  EXPECT_TRUE(CheckOtlpContentEncoding("identity").ok());
  EXPECT_FALSE(CheckOtlpContentEncoding("snappy").ok());
}

TEST(OtlpDecode, JsonWithHexIdsStringIntsAndEnumNamesOrNumbers) {
  Fixture f;
  const std::string json = R"({
    "resourceMetrics": [{
      "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}},
                                  {"key": "service.instance.id", "value": {"stringValue": "i1"}}]},
      "scopeMetrics": [{
        "scope": {"name": "lib", "version": "1.2"},
        "metrics": [
          {"name": "c", "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                                "isMonotonic": true,
             "dataPoints": [{"startTimeUnixNano": "1699999990000000000",
                             "timeUnixNano": "1700000000000000000", "asInt": "42",
                             "exemplars": [{"timeUnixNano": "1700000000000000000", "asDouble": 1,
                                            "traceId": "5b8efff798038103d269b633813fc60c",
                                            "spanId": "eee19b7ec3c1b174"}]}]}},
          {"name": "g", "unknownField": 1, "gauge": {"dataPoints": [
             {"time_unix_nano": 1700000000000000000, "asDouble": 0.5}]}},
          {"name": "d", "sum": {"aggregationTemporality": 1, "isMonotonic": true,
             "dataPoints": [{"startTimeUnixNano": "1699999990000000000",
                             "timeUnixNano": "1700000000000000000", "asDouble": 2}]}}
        ]}]}]})";
  OtlpResult r = f.Send(json, OtlpEncoding::kJson);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.points_received, 3);
  EXPECT_EQ(r.points_rejected, 0) << r.error_message;
  EXPECT_EQ(f.appender.Of("c_total{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 42}}));
  EXPECT_EQ(f.appender.Of("g{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 0.5}}));
  EXPECT_EQ(f.appender.Of("d_total{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 2}}));

  EXPECT_EQ(f.Send(R"({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "x",
      "gauge": {"dataPoints": [{"timeUnixNano": "1", "asDouble": 1, "exemplars": [
      {"traceId": "not-hex"}]}]}}]}]}]})", OtlpEncoding::kJson).status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.Send("{not json", OtlpEncoding::kJson).status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.Send(R"({"resourceMetrics": 5})", OtlpEncoding::kJson).status.code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OtlpDecode, GzipBodies) {
  Fixture f;
  Builder b;
  Number(b.Add("g")->mutable_gauge()->mutable_data_points(), 0, kT0, 7);
  OtlpResult r = f.Send(Gzip(b.Bytes()), OtlpEncoding::kProtobuf, "gzip");
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(f.appender.Of("g{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 7}}));

  std::string corrupt = Gzip(b.Bytes());
  corrupt.resize(corrupt.size() / 2);
  EXPECT_EQ(f.Send(corrupt, OtlpEncoding::kProtobuf, "gzip").status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.Send(b.Bytes(), OtlpEncoding::kProtobuf, "gzip").status.code(),
            absl::StatusCode::kInvalidArgument);  // not gzip at all

  f.options.max_decoded_bytes = 16;
  EXPECT_EQ(f.Send(Gzip(b.Bytes()), OtlpEncoding::kProtobuf, "gzip").status.code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(OtlpDecode, MalformedProtobufStoresNothing) {
  Fixture f;
  Builder b;
  Number(b.Add("g")->mutable_gauge()->mutable_data_points(), 0, kT0, 7);
  std::string bytes = b.Bytes();
  bytes.resize(bytes.size() - 3);
  OtlpResult r = f.Send(bytes);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(f.appender.committed.empty());
  EXPECT_EQ(f.Send(std::string("\xff\xff\xff\xff", 4)).status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(OtlpResponse, PartialSuccessWhenStorageRefusesSomeSamples) {
  Fixture f;
  Builder first;
  Number(first.Add("g")->mutable_gauge()->mutable_data_points(), 0, kT0 + 10 * kSec, 1);
  ASSERT_TRUE(f.Send(first).status.ok());
  Builder b;
  auto* points = b.Add("g")->mutable_gauge()->mutable_data_points();
  Number(points, 0, kT0, 2);  // older than what is stored: out of order
  Number(b.Add("h")->mutable_gauge()->mutable_data_points(), 0, kT0, 3);
  OtlpResult r = f.Send(b);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.points_received, 2);
  EXPECT_EQ(r.points_rejected, 1);
  EXPECT_EQ(r.reject_reason, RejectReason::kOutOfOrder);
  EXPECT_THAT(r.error_message, HasSubstr("out of order"));
  EXPECT_EQ(f.appender.Of("h{" + kBase + "}"), (std::vector<Sample>{{kT0Ms, 3}}));

  Response proto;
  ASSERT_TRUE(proto.ParseFromString(EncodeOtlpResponse(r, OtlpEncoding::kProtobuf)));
  EXPECT_EQ(proto.partial_success().rejected_data_points(), 1);
  EXPECT_THAT(proto.partial_success().error_message(), HasSubstr("out of order"));
  std::string json = EncodeOtlpResponse(r, OtlpEncoding::kJson);
  EXPECT_THAT(json, HasSubstr("\"partialSuccess\""));
  EXPECT_THAT(json, HasSubstr("\"rejectedDataPoints\":\"1\""));
}

// ---------------------------------------------------------------------------------------------
// Metadata and exemplars (through a model SideStore, and through the real DB).

class ModelSide : public SideStore {
 public:
  absl::Status PutMetadata(std::string_view metric, const MetricMetadata& md) override {
    if (!fail.ok()) return fail;
    metadata[std::string(metric)] = md;
    return absl::OkStatus();
  }
  absl::Status AppendExemplars(const Labels& series, std::span<const Exemplar> exemplars) override {
    if (!fail.ok()) return fail;
    for (const Exemplar& e : exemplars) {
      if (absl::Status s = Labels::Validate(e.labels.items()); !s.ok()) {
        return absl::InvalidArgumentError(s.message());
      }
    }
    for (const Exemplar& e : exemplars) exemplars_by_series[series.ToString()].push_back(e);
    return absl::OkStatus();
  }
  std::map<std::string, MetricMetadata> metadata;
  std::map<std::string, std::vector<Exemplar>> exemplars_by_series;
  absl::Status fail;
};

void AddExemplar(google::protobuf::RepeatedPtrField<pb::Exemplar>* list, double v, uint64_t t,
                 const std::string& trace_hex, const std::string& span_hex,
                 std::vector<std::pair<std::string, std::string>> attrs = {}) {
  pb::Exemplar* e = list->Add();
  e->set_as_double(v);
  e->set_time_unix_nano(t);
  e->set_trace_id(absl::HexStringToBytes(trace_hex));
  e->set_span_id(absl::HexStringToBytes(span_hex));
  for (const auto& [k, val] : attrs) SetAttr(e->mutable_filtered_attributes(), k, val);
}

constexpr char kTrace[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kSpan[] = "00f067aa0ba902b7";

TEST(OtlpSide, MetadataPerFamilyWithPrometheusTypesAndUnitWords) {
  Fixture f;
  ModelSide side;
  Builder b;
  pb::Metric* g = b.Add("mem.usage", "By");
  g->set_description("Memory in use.");
  Number(g->mutable_gauge()->mutable_data_points(), 0, kT0, 1);
  pb::Metric* c = AddSum(b, "http.requests", "{request}", true, kCumulative);
  c->set_description("Requests.");
  Number(c->mutable_sum()->mutable_data_points(), kT0 - kSec, kT0, 2);
  pb::Metric* u = AddSum(b, "queue.depth", "1", false, kCumulative);
  Number(u->mutable_sum()->mutable_data_points(), kT0 - kSec, kT0, 3);
  pb::Metric* h = b.Add("rpc.duration", "ms");
  h->mutable_histogram()->set_aggregation_temporality(kCumulative);
  pb::HistogramDataPoint* hp = h->mutable_histogram()->add_data_points();
  hp->set_time_unix_nano(kT0);
  hp->set_count(1);
  pb::Metric* e = b.Add("io", "By/s");
  e->mutable_exponential_histogram()->set_aggregation_temporality(kCumulative);
  AddExp(e, kT0 - kSec, kT0, 0, 1, 0, {});
  pb::Metric* sm = b.Add("lat", "s");
  pb::SummaryDataPoint* sp = sm->mutable_summary()->add_data_points();
  sp->set_time_unix_nano(kT0);
  // A metric none of whose points is stored records nothing.
  Number(b.Add("empty.gauge")->mutable_gauge()->mutable_data_points(), 0, 0, 1);

  OtlpReceiver receiver(f.options);
  OtlpResult r = receiver.Export("t1", b.Bytes(), OtlpEncoding::kProtobuf, "", f.appender,
                                 &f.store, &side);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.metadata_written, 6);
  using M = MetricMetadata;
  EXPECT_EQ(side.metadata, (std::map<std::string, M>{
                               {"mem_usage_bytes", M{"gauge", "Memory in use.", "bytes"}},
                               {"http_requests_total", M{"counter", "Requests.", ""}},
                               {"queue_depth", M{"gauge", "", ""}},
                               {"rpc_duration_milliseconds", M{"histogram", "", "milliseconds"}},
                               {"io_bytes_per_second", M{"histogram", "", "bytes_per_second"}},
                               {"lat_seconds", M{"summary", "", "seconds"}},
                           }));
}

TEST(OtlpSide, SumExemplarsWithHexIdsAndSanitisedAttributes) {
  Fixture f;
  ModelSide side;
  Builder b;
  pb::NumberDataPoint* p =
      Number(AddSum(b, "hits", "", true, kCumulative)->mutable_sum()->mutable_data_points(),
             kT0 - kSec, kT0, 7);
  AddExemplar(p->mutable_exemplars(), 1, kT0 - 500'000'000, kTrace, kSpan, {{"http.route", "/a"}});
  // No timestamp: the point's. No ids: attributes only.
  AddExemplar(p->mutable_exemplars(), 2, 0, "", "", {{"user", "u1"}});
  // A gauge's exemplars are not kept (as Prometheus).
  pb::NumberDataPoint* gp = Number(b.Add("temp")->mutable_gauge()->mutable_data_points(), 0, kT0, 1);
  AddExemplar(gp->mutable_exemplars(), 1, kT0, kTrace, kSpan);

  OtlpReceiver receiver(f.options);
  OtlpResult r = receiver.Export("t1", b.Bytes(), OtlpEncoding::kProtobuf, "", f.appender,
                                 &f.store, &side);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.exemplars_written, 2);
  ASSERT_EQ(side.exemplars_by_series.size(), 1u);
  const auto& got = side.exemplars_by_series["hits_total{" + kBase + "}"];
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].labels.ToString(),
            absl::StrCat("{http_route=\"/a\", span_id=\"", kSpan, "\", trace_id=\"", kTrace, "\"}"));
  EXPECT_EQ(got[0].t_ms, kT0Ms - 500);
  EXPECT_EQ(got[0].value, 1);
  EXPECT_EQ(got[1].labels.ToString(), "{user=\"u1\"}");
  EXPECT_EQ(got[1].t_ms, kT0Ms);
}

TEST(OtlpSide, LongAttributesAreDroppedButIdsKept) {
  Fixture f;
  ModelSide side;
  Builder b;
  pb::NumberDataPoint* p =
      Number(AddSum(b, "hits", "", true, kCumulative)->mutable_sum()->mutable_data_points(),
             kT0 - kSec, kT0, 7);
  // trace_id + span_id take 63 characters; this attribute would add 66.
  AddExemplar(p->mutable_exemplars(), 1, kT0, kTrace, kSpan, {{"k", std::string(65, 'v')}});
  OtlpReceiver receiver(f.options);
  ASSERT_TRUE(receiver.Export("t1", b.Bytes(), OtlpEncoding::kProtobuf, "", f.appender, &f.store,
                              &side).status.ok());
  const auto& got = side.exemplars_by_series["hits_total{" + kBase + "}"];
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].labels.ToString(),
            absl::StrCat("{span_id=\"", kSpan, "\", trace_id=\"", kTrace, "\"}"));
}

TEST(OtlpSide, HistogramExemplarsGoToTheBucketHoldingTheirValue) {
  Fixture f;
  ModelSide side;
  Builder b;
  pb::Metric* m = b.Add("lat", "s");
  m->mutable_histogram()->set_aggregation_temporality(kCumulative);
  pb::HistogramDataPoint* p = m->mutable_histogram()->add_data_points();
  p->set_time_unix_nano(kT0);
  p->set_count(4);
  p->set_sum(9);
  for (double bound : {0.1, 1.0}) p->add_explicit_bounds(bound);
  for (uint64_t c : {1, 2, 1}) p->add_bucket_counts(c);
  AddExemplar(p->mutable_exemplars(), 0.05, kT0, kTrace, kSpan);
  AddExemplar(p->mutable_exemplars(), 0.1, kT0 - 1'000'000, kTrace, kSpan);  // le is inclusive
  AddExemplar(p->mutable_exemplars(), 0.5, kT0, kTrace, kSpan);
  AddExemplar(p->mutable_exemplars(), 7, kT0, kTrace, kSpan);
  OtlpReceiver receiver(f.options);
  OtlpResult r = receiver.Export("t1", b.Bytes(), OtlpEncoding::kProtobuf, "", f.appender,
                                 &f.store, &side);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.exemplars_written, 4);
  auto values = [&](const std::string& le) {
    std::vector<double> out;
    for (const Exemplar& e : side.exemplars_by_series["lat_seconds_bucket{" + WithLe(le) + "}"]) {
      out.push_back(e.value);
    }
    return out;
  };
  EXPECT_EQ(values("0.1"), (std::vector<double>{0.1, 0.05}));  // sorted by time
  EXPECT_EQ(values("1"), (std::vector<double>{0.5}));
  EXPECT_EQ(values("+Inf"), (std::vector<double>{7}));
  EXPECT_EQ(side.exemplars_by_series.size(), 3u);
}

TEST(OtlpSide, ExponentialAndDeltaHistogramExemplars) {
  Fixture f;
  ModelSide side;
  Builder b;
  pb::Metric* m = b.Add("x");
  m->mutable_exponential_histogram()->set_aggregation_temporality(kDelta);
  // scale 0: buckets (1, 2], (2, 4].
  pb::ExponentialHistogramDataPoint* p = AddExp(m, kT0 - kSec, kT0, 0, 0, 0, {1, 1});
  AddExemplar(p->mutable_exemplars(), 3, kT0, kTrace, kSpan);
  AddExemplar(p->mutable_exemplars(), 1.5, kT0, kTrace, "");
  OtlpReceiver receiver(f.options);
  OtlpResult r = receiver.Export("t1", b.Bytes(), OtlpEncoding::kProtobuf, "", f.appender,
                                 &f.store, &side);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(side.exemplars_by_series["x_bucket{" + WithLe("4") + "}"].size(), 1u);
  EXPECT_EQ(side.exemplars_by_series["x_bucket{" + WithLe("4") + "}"][0].value, 3);
  ASSERT_EQ(side.exemplars_by_series["x_bucket{" + WithLe("2") + "}"].size(), 1u);
  EXPECT_EQ(side.exemplars_by_series["x_bucket{" + WithLe("2") + "}"][0].labels.ToString(),
            absl::StrCat("{trace_id=\"", kTrace, "\"}"));
}

TEST(OtlpSide, NothingWhenSamplesAreRejectedAndStoreErrorsAreUnavailable) {
  Fixture f;
  ModelSide side;
  Builder b;
  pb::NumberDataPoint* p =
      Number(AddSum(b, "hits", "", true, kCumulative)->mutable_sum()->mutable_data_points(),
             kT0 - kSec, kT0, 7);
  AddExemplar(p->mutable_exemplars(), 1, kT0, kTrace, kSpan);
  f.appender.commit_status = StatusOf(RejectReason::kOutOfOrder);
  OtlpReceiver receiver(f.options);
  OtlpResult r = receiver.Export("t1", b.Bytes(), OtlpEncoding::kProtobuf, "", f.appender,
                                 &f.store, &side);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.points_rejected, 1);
  EXPECT_TRUE(side.exemplars_by_series.empty());
  EXPECT_TRUE(side.metadata.empty());

  f.appender.commit_status = absl::OkStatus();
  side.fail = absl::UnavailableError("disk on fire");
  r = receiver.Export("t1", b.Bytes(), OtlpEncoding::kProtobuf, "", f.appender, &f.store, &side);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status.message(), HasSubstr("disk on fire"));
  EXPECT_EQ(f.appender.Of("hits_total{" + kBase + "}").size(), 1u);  // the samples are in
}

TEST(OtlpSide, ThroughTheDatabase) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("tidemark-otlp-side-" + std::to_string(getpid())))
          .string();
  std::filesystem::remove_all(dir);
  Options options;
  options.path = dir;
  options.retention_ms = 0;
  absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(options);
  ASSERT_TRUE(db.ok()) << db.status();
  {
    Builder b;
    pb::Metric* m = b.Add("rpc.duration", "s");
    m->set_description("RPC latency.");
    m->mutable_histogram()->set_aggregation_temporality(kCumulative);
    pb::HistogramDataPoint* p = m->mutable_histogram()->add_data_points();
    p->set_time_unix_nano(kT0);
    p->set_count(2);
    p->add_explicit_bounds(0.5);
    p->add_bucket_counts(1);
    p->add_bucket_counts(1);
    AddExemplar(p->mutable_exemplars(), 0.25, kT0, kTrace, kSpan, {{"http.route", "/x"}});
    std::unique_ptr<Appender> appender = (*db)->NewAppender("t1");
    std::unique_ptr<SideStore> side = DBSideStore(**db, "t1");
    OtlpReceiver receiver(OtlpOptions{});
    OtlpResult r = receiver.Export("t1", b.Bytes(), OtlpEncoding::kProtobuf, "", *appender,
                                   nullptr, side.get());
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.exemplars_written, 1);
  }
  auto md = (*db)->GetMetadata("t1", "rpc_duration_seconds", 0);
  ASSERT_TRUE(md.ok()) << md.status();
  ASSERT_EQ(md->size(), 1u);
  EXPECT_EQ((*md)[0].second, (MetricMetadata{"histogram", "RPC latency.", "seconds"}));
  absl::StatusOr<LabelMatcher> matcher =
      LabelMatcher::Create(MatchType::kEqual, "__name__", "rpc_duration_seconds_bucket");
  ASSERT_TRUE(matcher.ok());
  auto ex = (*db)->QueryExemplars("t1", {{*matcher}}, kT0Ms - 1000, kT0Ms + 1000);
  ASSERT_TRUE(ex.ok()) << ex.status();
  ASSERT_EQ(ex->size(), 1u);
  EXPECT_EQ((*ex)[0].series.Get("le"), "0.5");
  ASSERT_EQ((*ex)[0].exemplars.size(), 1u);
  EXPECT_EQ((*ex)[0].exemplars[0].labels.Get("trace_id"), kTrace);
  EXPECT_EQ((*ex)[0].exemplars[0].labels.Get("http_route"), "/x");
  EXPECT_TRUE((*db)->Close().ok());
  std::filesystem::remove_all(dir);
}

// Found by tests/fuzz/otlp_proto_fuzz.cc: one point far in the future made target_info cover
// decades in steps of lookback_delta/2 (tens of millions of samples for one request).
TEST(OtlpFuzzFindings, TargetInfoSamplesAreBoundedForAHugeTimeSpan) {
  Fixture f;
  Builder b({{"service.name", "svc"}, {"service.instance.id", "i1"}, {"region", "eu"}});
  auto* points = b.Add("g")->mutable_gauge()->mutable_data_points();
  Number(points, 0, kT0, 1);
  Number(points, 0, 6'744'031'592'654'955'520ULL, 2);  // the year 2183
  OtlpResult r = f.Send(b);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.points_rejected, 0);
  EXPECT_THAT(r.error_message, HasSubstr("target_info"));
  std::vector<Sample> info =
      f.appender.Of("target_info{instance=\"i1\", job=\"svc\", region=\"eu\"}");
  ASSERT_EQ(info.size(), 1001u);
  EXPECT_EQ(info.back().t, 6'744'031'592'654LL);
  EXPECT_EQ(info.back().t - info.front().t, 1000LL * 150'000);
  // An ordinary span is covered from its first point on.
  Fixture g;
  Builder c({{"service.name", "svc"}, {"service.instance.id", "i1"}, {"region", "eu"}});
  auto* p2 = c.Add("g")->mutable_gauge()->mutable_data_points();
  Number(p2, 0, kT0, 1);
  Number(p2, 0, kT0 + 400 * kSec, 2);
  ASSERT_TRUE(g.Send(c).status.ok());
  EXPECT_EQ(g.appender.Of("target_info{instance=\"i1\", job=\"svc\", region=\"eu\"}"),
            (std::vector<Sample>{{kT0Ms, 1}, {kT0Ms + 150000, 1}, {kT0Ms + 300000, 1},
                                 {kT0Ms + 400000, 1}}));
}

TEST(OtlpResponse, FullSuccessAndErrors) {
  OtlpResult ok;
  Response proto;
  std::string bytes = EncodeOtlpResponse(ok, OtlpEncoding::kProtobuf);
  ASSERT_TRUE(proto.ParseFromString(bytes));
  EXPECT_FALSE(proto.has_partial_success());
  EXPECT_EQ(EncodeOtlpResponse(ok, OtlpEncoding::kJson), "{}");

  OtlpResult bad;
  bad.status = absl::InvalidArgumentError("decode protobuf: broken");
  rpc::Status status;
  ASSERT_TRUE(status.ParseFromString(EncodeOtlpResponse(bad, OtlpEncoding::kProtobuf)));
  EXPECT_EQ(status.code(), 3);
  EXPECT_EQ(status.message(), "decode protobuf: broken");
  EXPECT_THAT(EncodeOtlpResponse(bad, OtlpEncoding::kJson), HasSubstr("\"message\":\"decode protobuf: broken\""));
}

}  // namespace
}  // namespace tidemark::ingest
