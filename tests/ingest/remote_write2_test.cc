// Remote write 2.0 decoding, and exemplars and metadata of 1.0 and 2.0, written through a real
// DB (temporary directory) so that idempotency and "nothing stored" are checked on storage.
#include <snappy.h>

#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/proto/remote_write.pb.h"
#include "ingest/proto/remote_write2.pb.h"
#include "ingest/remote_write.h"
#include "storage/db.h"

namespace tidemark::ingest {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

std::string Snappy(const std::string& raw) {
  std::string out;
  snappy::Compress(raw.data(), raw.size(), &out);
  return out;
}

// Builds a writev2::Request with a symbol table filled on demand.
class V2Builder {
 public:
  V2Builder() { Ref(""); }
  uint32_t Ref(const std::string& s) {
    auto [it, fresh] = refs_.emplace(s, req_.symbols_size());
    if (fresh) req_.add_symbols(s);
    return it->second;
  }
  writev2::TimeSeries* Series(std::vector<std::pair<std::string, std::string>> labels) {
    writev2::TimeSeries* ts = req_.add_timeseries();
    for (const auto& [n, v] : labels) {
      ts->add_labels_refs(Ref(n));
      ts->add_labels_refs(Ref(v));
    }
    return ts;
  }
  void Sample(writev2::TimeSeries* ts, int64_t t, double v) {
    writev2::Sample* s = ts->add_samples();
    s->set_timestamp(t);
    s->set_value(v);
  }
  void Exemplar(writev2::TimeSeries* ts, const std::string& trace, double v, int64_t t) {
    writev2::Exemplar* e = ts->add_exemplars();
    e->add_labels_refs(Ref("trace_id"));
    e->add_labels_refs(Ref(trace));
    e->set_value(v);
    e->set_timestamp(t);
  }
  void Metadata(writev2::TimeSeries* ts, writev2::Metadata::MetricType type,
                const std::string& help, const std::string& unit) {
    ts->mutable_metadata()->set_type(type);
    ts->mutable_metadata()->set_help_ref(Ref(help));
    ts->mutable_metadata()->set_unit_ref(Ref(unit));
  }
  writev2::Request& req() { return req_; }
  std::string Body() const { return Snappy(req_.SerializeAsString()); }

 private:
  writev2::Request req_;
  std::map<std::string, uint32_t> refs_;
};

class RemoteWrite2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tidemark_rw2_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Options o;
    o.path = dir_.string();
    o.retention_ms = 0;
    o.sync = SyncPolicy::kNever;
    auto db = DB::Open(o);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  WriteResult Write2(const std::string& body) {
    auto app = db_->NewAppender("t");
    auto side = DBSideStore(*db_, "t");
    return HandleRemoteWrite2(body, "snappy", {}, *app, side.get());
  }
  WriteResult Write1(const std::string& body) {
    auto app = db_->NewAppender("t");
    auto side = DBSideStore(*db_, "t");
    return HandleRemoteWrite(body, "snappy", {}, *app, side.get());
  }

  // Samples of every series: "labels@t=v".
  std::vector<std::string> Samples() {
    std::vector<std::string> out;
    auto q = db_->NewQuerier("t", kMin, kMax);
    EXPECT_TRUE(q.ok());
    auto m = LabelMatcher::Create(MatchType::kRegexMatch, "__name__", ".+");
    auto series = (*q)->Select({*m}, SelectHints{kMin, kMax});
    EXPECT_TRUE(series.ok()) << series.status();
    for (Series& s : *series) {
      while (s.samples->Next()) {
        out.push_back(s.labels.ToString() + "@" + std::to_string(s.samples->At().t) + "=" +
                      std::to_string(s.samples->At().v));
      }
    }
    return out;
  }
  // "series|trace@t" of every exemplar.
  std::vector<std::string> Exemplars() {
    std::vector<std::string> out;
    auto m = LabelMatcher::Create(MatchType::kRegexMatch, "__name__", ".+");
    auto r = db_->QueryExemplars("t", {{*m}}, kMin, kMax);
    EXPECT_TRUE(r.ok()) << r.status();
    for (const SeriesExemplars& se : *r) {
      for (const tidemark::Exemplar& e : se.exemplars) {
        out.push_back(se.series.ToString() + "|" + std::string(e.labels.Get("trace_id")) + "@" +
                      std::to_string(e.t_ms));
      }
    }
    return out;
  }
  std::map<std::string, MetricMetadata> Metadata() {
    std::map<std::string, MetricMetadata> out;
    auto r = db_->GetMetadata("t", "", 0);
    EXPECT_TRUE(r.ok()) << r.status();
    for (auto& [name, md] : *r) out[name] = md;
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<DB> db_;
};

// A typical 2.0 request: a counter and a classic histogram's series with exemplars and
// metadata, the histogram's series sharing help and unit symbols.
V2Builder TypicalRequest() {
  V2Builder b;
  auto* c = b.Series({{"__name__", "http_requests_total"}, {"job", "api"}});
  b.Sample(c, 1000, 1);
  b.Sample(c, 2000, 3);
  b.Metadata(c, writev2::Metadata::METRIC_TYPE_COUNTER, "Requests served.", "");
  c->set_created_timestamp(500);
  auto* h = b.Series({{"__name__", "latency_seconds_bucket"}, {"job", "api"}, {"le", "0.5"}});
  b.Sample(h, 2000, 7);
  b.Exemplar(h, "4bf92f3577b34da6a3ce929d0e0e4736", 0.31, 1990);
  b.Exemplar(h, "00f067aa0ba902b7", 0.42, 1995);
  b.Metadata(h, writev2::Metadata::METRIC_TYPE_HISTOGRAM, "Latency.", "seconds");
  auto* s = b.Series({{"__name__", "latency_seconds_sum"}, {"job", "api"}});
  b.Sample(s, 2000, 2.5);
  b.Metadata(s, writev2::Metadata::METRIC_TYPE_HISTOGRAM, "Latency.", "seconds");
  return b;
}

TEST_F(RemoteWrite2Test, StoresSamplesExemplarsAndMetadata) {
  WriteResult r = Write2(TypicalRequest().Body());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.samples_accepted, 4);
  EXPECT_EQ(r.histograms_written, 0);
  EXPECT_EQ(r.exemplars_written, 2);
  EXPECT_EQ(r.metadata_written, 2);
  EXPECT_EQ(r.series, 3);
  EXPECT_EQ(Samples(), (std::vector<std::string>{
                           "http_requests_total{job=\"api\"}@1000=1.000000",
                           "http_requests_total{job=\"api\"}@2000=3.000000",
                           "latency_seconds_bucket{job=\"api\", le=\"0.5\"}@2000=7.000000",
                           "latency_seconds_sum{job=\"api\"}@2000=2.500000",
                       }));
  EXPECT_EQ(Exemplars(),
            (std::vector<std::string>{
                "latency_seconds_bucket{job=\"api\", le=\"0.5\"}|4bf92f3577b34da6a3ce929d0e0e4736@1990",
                "latency_seconds_bucket{job=\"api\", le=\"0.5\"}|00f067aa0ba902b7@1995",
            }));
  auto md = Metadata();
  ASSERT_EQ(md.size(), 2u);
  EXPECT_EQ(md["http_requests_total"], (MetricMetadata{"counter", "Requests served.", ""}));
  EXPECT_EQ(md["latency_seconds"], (MetricMetadata{"histogram", "Latency.", "seconds"}));
}

TEST_F(RemoteWrite2Test, RetriedRequestIsIdempotent) {
  const std::string body = TypicalRequest().Body();
  WriteResult first = Write2(body);
  ASSERT_TRUE(first.status.ok()) << first.status;
  auto samples = Samples();
  auto exemplars = Exemplars();
  auto metadata = Metadata();
  WriteResult again = Write2(body);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.samples_accepted, first.samples_accepted);
  EXPECT_EQ(again.exemplars_written, first.exemplars_written);
  EXPECT_EQ(Samples(), samples);
  EXPECT_EQ(Exemplars(), exemplars);
  EXPECT_EQ(Metadata(), metadata);
}

struct MalformedCase {
  const char* name;
  std::function<void(V2Builder&)> spoil;
  const char* want;
};

TEST_F(RemoteWrite2Test, MalformedReferencesAre400AndStoreNothing) {
  const std::vector<MalformedCase> cases = {
      {"label ref out of bounds",
       [](V2Builder& b) { b.req().mutable_timeseries(1)->set_labels_refs(3, 9999); },
       "out of bounds"},
      {"odd label refs", [](V2Builder& b) { b.req().mutable_timeseries(2)->add_labels_refs(0); },
       "odd number"},
      {"exemplar ref out of bounds",
       [](V2Builder& b) {
         b.req().mutable_timeseries(1)->mutable_exemplars(0)->set_labels_refs(1, 4000000000u);
       },
       "exemplars[0]"},
      {"help ref out of bounds",
       [](V2Builder& b) {
         b.req().mutable_timeseries(0)->mutable_metadata()->set_help_ref(77);
       },
       "metadata reference 77"},
      {"unit ref out of bounds",
       [](V2Builder& b) {
         b.req().mutable_timeseries(2)->mutable_metadata()->set_unit_ref(1000);
       },
       "metadata reference 1000"},
      {"no labels", [](V2Builder& b) { b.req().mutable_timeseries(2)->clear_labels_refs(); },
       "no labels"},
      {"unsorted labels",
       [](V2Builder& b) {
         auto* ts = b.req().mutable_timeseries(0);
         uint32_t n0 = ts->labels_refs(0), v0 = ts->labels_refs(1);
         ts->set_labels_refs(0, ts->labels_refs(2));
         ts->set_labels_refs(1, ts->labels_refs(3));
         ts->set_labels_refs(2, n0);
         ts->set_labels_refs(3, v0);
       },
       "sorted"},
      {"empty label value",
       [](V2Builder& b) { b.req().mutable_timeseries(0)->set_labels_refs(3, 0); }, "job"},
      {"native histogram",
       [](V2Builder& b) {
         b.req().mutable_timeseries(2)->add_histograms(std::string("\x08\x01", 2));
       },
       "native histograms"},
  };
  for (const MalformedCase& c : cases) {
    V2Builder b = TypicalRequest();
    c.spoil(b);
    WriteResult r = Write2(b.Body());
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << c.name << ": " << r.status;
    EXPECT_THAT(r.status.message(), HasSubstr(c.want)) << c.name;
    EXPECT_EQ(r.samples_accepted, 0) << c.name;
    EXPECT_EQ(r.samples_rejected, 4) << c.name;
    EXPECT_TRUE(Samples().empty()) << c.name;
    EXPECT_TRUE(Exemplars().empty()) << c.name;
    EXPECT_TRUE(Metadata().empty()) << c.name;
  }
}

TEST_F(RemoteWrite2Test, GarbageAndEmptyBodies) {
  WriteResult garbage = Write2(Snappy(std::string("\x2a\xff\xff\xff", 4)));
  EXPECT_EQ(garbage.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(garbage.status.message(), HasSubstr("io.prometheus.write.v2.Request"));
  WriteResult not_snappy = Write2("definitely not snappy");
  EXPECT_EQ(not_snappy.status.code(), absl::StatusCode::kInvalidArgument);
  // A 1.0 body sent as 2.0 decodes as an empty request (fields 1-3 are reserved in 2.0).
  prompb::WriteRequest v1;
  auto* ts = v1.add_timeseries();
  auto* l = ts->add_labels();
  l->set_name("__name__");
  l->set_value("up");
  ts->add_samples()->set_timestamp(1);
  WriteResult crossed = Write2(Snappy(v1.SerializeAsString()));
  ASSERT_TRUE(crossed.status.ok()) << crossed.status;
  EXPECT_EQ(crossed.samples_accepted, 0);
  EXPECT_TRUE(Samples().empty());
}

TEST_F(RemoteWrite2Test, OutOfOrderSampleRollsBackEverything) {
  ASSERT_TRUE(Write2(TypicalRequest().Body()).status.ok());
  V2Builder b;
  auto* ok = b.Series({{"__name__", "fresh"}});
  b.Sample(ok, 5000, 1);
  b.Exemplar(ok, "abc", 1, 5000);
  b.Metadata(ok, writev2::Metadata::METRIC_TYPE_GAUGE, "Fresh.", "");
  auto* old = b.Series({{"__name__", "http_requests_total"}, {"job", "api"}});
  b.Sample(old, 1500, 2);  // before the stored 2000
  WriteResult r = Write2(b.Body());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.reject_reason, RejectReason::kOutOfOrder);
  EXPECT_EQ(Samples().size(), 4u);
  EXPECT_EQ(Exemplars().size(), 2u);
  EXPECT_EQ(Metadata().count("fresh"), 0u);
}

TEST_F(RemoteWrite2Test, SeriesWithOnlyMetadataOrExemplars) {
  V2Builder b;
  auto* ts = b.Series({{"__name__", "queue_depth"}});
  b.Metadata(ts, writev2::Metadata::METRIC_TYPE_GAUGE, "Depth.", "");
  // Unspecified type without help or unit says nothing: not recorded.
  auto* silent = b.Series({{"__name__", "silent"}});
  b.Metadata(silent, writev2::Metadata::METRIC_TYPE_UNSPECIFIED, "", "");
  WriteResult r = Write2(b.Body());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.samples_accepted, 0);
  auto md = Metadata();
  EXPECT_EQ(md.size(), 1u);
  EXPECT_EQ(md["queue_depth"].type, "gauge");
}

TEST_F(RemoteWrite2Test, InvalidExemplarIsSkippedNotFatal) {
  V2Builder b;
  auto* ts = b.Series({{"__name__", "req_total"}});
  b.Sample(ts, 1000, 1);
  b.Exemplar(ts, std::string(200, 'a'), 1, 1000);  // over the 128-character limit
  b.Exemplar(ts, "good", 1, 1000);
  WriteResult r = Write2(b.Body());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.exemplars_written, 1);
  EXPECT_EQ(Exemplars(), (std::vector<std::string>{"req_total|good@1000"}));
}

TEST_F(RemoteWrite2Test, RemoteWrite1ExemplarsAndMetadata) {
  prompb::WriteRequest req;
  auto* ts = req.add_timeseries();
  for (auto [n, v] : {std::pair{"__name__", "rpc_seconds_bucket"}, {"le", "1"}}) {
    auto* l = ts->add_labels();
    l->set_name(n);
    l->set_value(v);
  }
  auto* s = ts->add_samples();
  s->set_timestamp(1000);
  s->set_value(4);
  auto* ex = ts->add_exemplars();
  ex->set_value(0.7);
  ex->set_timestamp(990);
  // Exemplar labels in any order are accepted (sorted on store).
  for (auto [n, v] : {std::pair{"trace_id", "t1"}, {"span_id", "s1"}}) {
    auto* l = ex->add_labels();
    l->set_name(n);
    l->set_value(v);
  }
  auto* md = req.add_metadata();
  md->set_type(prompb::MetricMetadata::HISTOGRAM);
  md->set_metric_family_name("rpc_seconds");
  md->set_help("RPC latency.");
  md->set_unit("seconds");
  auto* bad = req.add_metadata();  // no family name: skipped
  bad->set_type(prompb::MetricMetadata::GAUGE);
  WriteResult r = Write1(Snappy(req.SerializeAsString()));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.exemplars_written, 1);
  EXPECT_EQ(r.metadata_written, 1);
  EXPECT_EQ(Exemplars(), (std::vector<std::string>{"rpc_seconds_bucket{le=\"1\"}|t1@990"}));
  auto got = Metadata();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got["rpc_seconds"], (MetricMetadata{"histogram", "RPC latency.", "seconds"}));
  auto r2 = db_->QueryExemplars(
      "t", {{*LabelMatcher::Create(MatchType::kEqual, "le", "1")}}, kMin, kMax);
  ASSERT_TRUE(r2.ok());
  ASSERT_EQ(r2->size(), 1u);
  EXPECT_EQ((*r2)[0].exemplars[0].labels,
            Labels::FromUnsorted({{"span_id", "s1"}, {"trace_id", "t1"}}));
}

}  // namespace
}  // namespace tidemark::ingest
