// Remote write 1.0 decoding: bodies built with the generated prompb classes and snappy, fed to
// HandleRemoteWrite with a model appender that keeps the last sample of every series and
// refuses out-of-order and duplicate samples as storage does.
#include "ingest/remote_write.h"

#include <snappy.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/proto/remote_write.pb.h"
#include "storage/appender.h"
#include "storage/labels.h"
#include "storage/sample.h"

namespace tidemark::ingest {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Appended {
  Labels labels;
  int64_t t;
  double v;

  friend bool operator==(const Appended& a, const Appended& b) {
    return a.labels == b.labels && Sample{a.t, a.v} == Sample{b.t, b.v};
  }
};

void PrintTo(const Appended& a, std::ostream* os) {
  *os << a.labels.ToString() << " @" << a.t << " = " << a.v << " (bits 0x" << std::hex
      << std::bit_cast<uint64_t>(a.v) << std::dec << ")";
}

// Buffers appends; Commit moves them to `committed`. Refuses a sample older than the newest one
// of its series (committed or pending), or one at the same timestamp with other bits; can be
// told to fail an Append or the Commit with a given status.
class ModelAppender : public Appender {
 public:
  absl::Status Append(const Labels& labels, int64_t t_ms, double v) override {
    ++append_calls;
    if (!fail_append_status.ok() && append_calls == fail_append_at) return fail_append_status;
    auto last = Last(labels);
    if (!last.has_value()) {
      // As the contract says: labels of a series not stored yet are checked.
      if (absl::Status s = Labels::Validate(labels.items()); !s.ok()) {
        return StatusOf(RejectReason::kInvalidLabels, std::string(s.message()));
      }
    }
    if (last.has_value()) {
      if (t_ms < last->t) return StatusOf(RejectReason::kOutOfOrder);
      if (t_ms == last->t) {
        if (Sample{t_ms, v} == *last) return absl::OkStatus();  // identical: ignored
        return StatusOf(RejectReason::kDuplicate);
      }
    }
    pending_.push_back({labels, t_ms, v});
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    ++commits;
    if (!commit_status.ok()) {
      pending_.clear();
      return commit_status;
    }
    committed.insert(committed.end(), pending_.begin(), pending_.end());
    pending_.clear();
    return absl::OkStatus();
  }

  void Rollback() override {
    ++rollbacks;
    pending_.clear();
  }

  size_t pending() const override { return pending_.size(); }

  std::vector<Appended> committed;
  int commits = 0;
  int rollbacks = 0;
  int append_calls = 0;
  int fail_append_at = 0;  // 1-based index of the Append call that fails
  absl::Status fail_append_status;
  absl::Status commit_status;

 private:
  std::optional<Sample> Last(const Labels& labels) const {
    std::optional<Sample> last;
    for (const auto* list : {&committed, &pending_}) {
      for (const Appended& a : *list) {
        if (a.labels == labels && (!last.has_value() || a.t >= last->t)) last = Sample{a.t, a.v};
      }
    }
    return last;
  }

  std::vector<Appended> pending_;
};

struct SeriesSpec {
  std::vector<std::pair<std::string, std::string>> labels;  // in the order sent
  std::vector<Sample> samples;
};

prompb::WriteRequest MakeRequest(const std::vector<SeriesSpec>& series) {
  prompb::WriteRequest req;
  for (const SeriesSpec& s : series) {
    prompb::TimeSeries* ts = req.add_timeseries();
    for (const auto& [name, value] : s.labels) {
      prompb::Label* l = ts->add_labels();
      l->set_name(name);
      l->set_value(value);
    }
    for (const Sample& sample : s.samples) {
      prompb::Sample* out = ts->add_samples();
      out->set_timestamp(sample.t);
      out->set_value(sample.v);
    }
  }
  return req;
}

std::string Snappy(const std::string& raw) {
  std::string out;
  snappy::Compress(raw.data(), raw.size(), &out);
  return out;
}

std::string Body(const prompb::WriteRequest& req) { return Snappy(req.SerializeAsString()); }

WriteResult Write(const std::string& body, Appender& appender, WriteLimits limits = {}) {
  return HandleRemoteWrite(body, "snappy", limits, appender);
}

Labels L(std::initializer_list<std::pair<std::string_view, std::string_view>> l) {
  return Labels::FromUnsorted(l);
}

const std::vector<SeriesSpec> kTwoSeries = {
    {{{"__name__", "up"}, {"instance", "a:9100"}, {"job", "node"}},
     {{1000, 1}, {2000, 0}, {3000, 1}}},
    {{{"__name__", "http_requests_total"}, {"code", "200"}},
     {{1000, 10.5}, {2000, 12.25}}},
};

TEST(RemoteWriteTest, ValidRequestAppendsEverySampleAndCommitsOnce) {
  ModelAppender app;
  WriteResult r = Write(Body(MakeRequest(kTwoSeries)), app);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.samples_accepted, 5);
  EXPECT_EQ(r.series, 2);
  EXPECT_EQ(r.samples_rejected, 0);
  EXPECT_EQ(r.reject_reason, RejectReason::kNone);
  EXPECT_EQ(app.commits, 1);
  EXPECT_EQ(app.rollbacks, 0);
  Labels up = L({{"__name__", "up"}, {"instance", "a:9100"}, {"job", "node"}});
  Labels req = L({{"__name__", "http_requests_total"}, {"code", "200"}});
  EXPECT_THAT(app.committed,
              ElementsAre(Appended{up, 1000, 1}, Appended{up, 2000, 0}, Appended{up, 3000, 1},
                          Appended{req, 1000, 10.5}, Appended{req, 2000, 12.25}));
}

TEST(RemoteWriteTest, EncodingHeaderSnappyOrEmpty) {
  const std::string body = Body(MakeRequest(kTwoSeries));
  for (std::string_view enc : {"", "snappy", "Snappy", " snappy "}) {
    ModelAppender app;
    WriteResult r = HandleRemoteWrite(body, enc, {}, app);
    EXPECT_TRUE(r.status.ok()) << "encoding '" << enc << "': " << r.status;
    EXPECT_EQ(app.committed.size(), 5u);
  }
  for (std::string_view enc : {"gzip", "identity", "zstd"}) {
    ModelAppender app;
    WriteResult r = HandleRemoteWrite(body, enc, {}, app);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << enc;
    EXPECT_THAT(r.status.message(), HasSubstr("Content-Encoding"));
    EXPECT_EQ(app.append_calls, 0);
  }
}

TEST(RemoteWriteTest, EmptyRequestIsOkAndCommitsNothing) {
  ModelAppender app;
  WriteResult r = Write(Body(prompb::WriteRequest()), app);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.samples_accepted, 0);
  EXPECT_EQ(app.commits, 0);
}

TEST(RemoteWriteTest, CorruptSnappyIsInvalidArgument) {
  const std::string good = Body(MakeRequest(kTwoSeries));
  std::vector<std::string> bodies = {
      "",                                   // no length header at all
      std::string("\xff\xff\xff\xff\xff\xff", 6),  // length varint too long
      good.substr(0, good.size() - 3),      // truncated
      MakeRequest(kTwoSeries).SerializeAsString(),  // not compressed at all
  };
  for (size_t i = 0; i < bodies.size(); ++i) {
    ModelAppender app;
    WriteResult r = Write(bodies[i], app);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << "body " << i;
    EXPECT_THAT(r.status.message(), HasSubstr("snappy")) << "body " << i;
    EXPECT_EQ(app.append_calls, 0);
    EXPECT_EQ(app.commits, 0);
  }
}

TEST(RemoteWriteTest, FramedSnappyIsRefusedWithAHint) {
  // Stream identifier chunk, then a (made-up) compressed-data chunk.
  std::string framed("\xff\x06\x00\x00sNaPpY\x00\x05\x00\x00\x00\x00\x00", 17);
  ModelAppender app;
  WriteResult r = Write(framed, app);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status.message(), "snappy framed format is not supported; use the block format");
  EXPECT_EQ(app.append_calls, 0);
}

TEST(RemoteWriteTest, DecodedSizeOverTheLimitIsResourceExhausted) {
  const std::string raw = MakeRequest(kTwoSeries).SerializeAsString();
  ModelAppender app;
  WriteResult r = Write(Snappy(raw), app, WriteLimits{.max_decoded_bytes = raw.size() - 1});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted) << r.status;
  EXPECT_EQ(app.append_calls, 0);

  // Exactly at the limit is fine.
  WriteResult ok = Write(Snappy(raw), app, WriteLimits{.max_decoded_bytes = raw.size()});
  EXPECT_TRUE(ok.status.ok()) << ok.status;
}

TEST(RemoteWriteTest, LengthHeaderIsCheckedBeforeDecompressing) {
  // A header claiming 1 GiB followed by a few bytes of nonsense: the size check answers first
  // (a decoder that decompressed first would answer "corrupt input").
  std::string body = "\x80\x80\x80\x80\x04";  // varint 1 << 30
  body += "junk";
  ModelAppender app;
  WriteResult r = Write(body, app);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted) << r.status;
  EXPECT_THAT(r.status.message(), HasSubstr("1073741824"));
}

TEST(RemoteWriteTest, OversizedCompressedBodyIsResourceExhausted) {
  std::string body(4096, 'x');
  ModelAppender app;
  WriteResult r = Write(body, app, WriteLimits{.max_decoded_bytes = 100});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted) << r.status;
}

TEST(RemoteWriteTest, GarbageProtobufIsInvalidArgument) {
  std::vector<std::string> raws = {
      std::string("\x0a\xff\xff\xff\x0f", 5),  // field 1, length far past the end
      std::string("\x0a\x03\x0a\x01", 4),      // nested message cut short
      std::string("\x07", 1),                  // wire type 7 does not exist
      "this is not a protobuf message at all",
  };
  for (size_t i = 0; i < raws.size(); ++i) {
    ModelAppender app;
    WriteResult r = Write(Snappy(raws[i]), app);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << "raw " << i;
    EXPECT_THAT(r.status.message(), HasSubstr("protobuf")) << "raw " << i;
    EXPECT_EQ(app.append_calls, 0);
  }
}

TEST(RemoteWriteTest, UnknownFieldsExemplarsAndMetadataAreIgnored) {
  prompb::WriteRequest req = MakeRequest(kTwoSeries);
  prompb::Exemplar* ex = req.mutable_timeseries(0)->add_exemplars();
  ex->set_value(0.5);
  ex->set_timestamp(1500);
  prompb::Label* el = ex->add_labels();
  el->set_name("trace_id");
  el->set_value("abc");
  prompb::MetricMetadata* md = req.add_metadata();
  md->set_type(prompb::MetricMetadata::COUNTER);
  md->set_metric_family_name("http_requests_total");
  md->set_help("Requests.");
  std::string raw = req.SerializeAsString();
  raw += std::string("\x78\x2a", 2);  // field 15, varint 42: unknown to prompb
  ModelAppender app;
  WriteResult r = Write(Snappy(raw), app);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(app.committed.size(), 5u);
}

struct BadLabelsCase {
  const char* name;
  std::vector<std::pair<std::string, std::string>> labels;
  const char* want;  // in the message
};

TEST(RemoteWriteTest, InvalidLabelsRejectTheWholeRequest) {
  const std::vector<BadLabelsCase> cases = {
      {"unsorted", {{"__name__", "up"}, {"job", "x"}, {"instance", "a"}}, "not sorted"},
      {"duplicate", {{"__name__", "up"}, {"job", "x"}, {"job", "y"}}, "duplicate label name"},
      {"empty value", {{"__name__", "up"}, {"job", ""}}, "empty value"},
      {"empty name", {{"", "x"}, {"__name__", "up"}}, "empty label name"},
      {"bad metric name", {{"__name__", "1up"}}, "invalid metric name"},
      {"bad label name", {{"__name__", "up"}, {"jo-b", "x"}}, "invalid label name"},
      {"bad utf8", {{"__name__", "up"}, {"job", "\xff\xfe"}}, "UTF-8"},
      {"no labels", {}, "no labels"},
  };
  for (const BadLabelsCase& c : cases) {
    SCOPED_TRACE(c.name);
    // A good series first: it must not be committed either.
    std::vector<SeriesSpec> series = {kTwoSeries[0], {c.labels, {{1000, 1}, {2000, 2}}}};
    ModelAppender app;
    WriteResult r = Write(Body(MakeRequest(series)), app);
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << r.status;
    EXPECT_THAT(r.status.message(), HasSubstr(c.want));
    EXPECT_EQ(r.reject_reason, RejectReason::kInvalidLabels);
    EXPECT_EQ(r.samples_rejected, 5);
    EXPECT_EQ(r.samples_accepted, 0);
    EXPECT_THAT(app.committed, IsEmpty());
    EXPECT_EQ(app.commits, 0);
    EXPECT_EQ(app.pending(), 0u);
  }
}

TEST(RemoteWriteTest, InvalidLabelsMessageNamesTheSeries) {
  ModelAppender app;
  WriteResult r = Write(
      Body(MakeRequest({{{{"__name__", "up"}, {"job", "x"}, {"instance", "a"}}, {{1, 1}}}})),
      app);
  EXPECT_THAT(r.status.message(), HasSubstr("job=\"x\""));
  EXPECT_THAT(r.status.message(), HasSubstr("instance=\"a\""));
}

TEST(RemoteWriteTest, SeriesWithoutMetricNameIsAccepted) {
  ModelAppender app;
  WriteResult r = Write(Body(MakeRequest({{{{"job", "x"}}, {{1, 1}}}})), app);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(app.committed, ElementsAre(Appended{L({{"job", "x"}}), 1, 1}));
}

TEST(RemoteWriteTest, OutOfOrderSampleRollsBackAndNamesTheSeries) {
  ModelAppender app;
  ASSERT_TRUE(Write(Body(MakeRequest(kTwoSeries)), app).status.ok());
  const std::vector<Appended> before = app.committed;

  std::vector<SeriesSpec> second = {
      {{{"__name__", "http_requests_total"}, {"code", "200"}}, {{5000, 20}}},  // fine
      {{{"__name__", "up"}, {"instance", "a:9100"}, {"job", "node"}}, {{4000, 1}, {2500, 1}}},
  };
  WriteResult r = Write(Body(MakeRequest(second)), app);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status.message(), HasSubstr("out of order sample"));
  EXPECT_THAT(r.status.message(), HasSubstr("job=\"node\""));
  EXPECT_THAT(r.status.message(), HasSubstr("2500"));
  EXPECT_EQ(r.reject_reason, RejectReason::kOutOfOrder);
  EXPECT_EQ(r.samples_rejected, 3);
  EXPECT_EQ(r.samples_accepted, 0);
  EXPECT_EQ(app.rollbacks, 1);
  EXPECT_EQ(app.commits, 1);  // only the first request's
  EXPECT_EQ(app.committed, before);
  EXPECT_EQ(app.pending(), 0u);
}

TEST(RemoteWriteTest, DuplicateSampleIsRejectedButIdenticalResendIsAccepted) {
  ModelAppender app;
  ASSERT_TRUE(Write(Body(MakeRequest(kTwoSeries)), app).status.ok());

  // The newest sample of a series sent again (bit for bit) is accepted and ignored.
  WriteResult again = Write(
      Body(MakeRequest({{{{"__name__", "up"}, {"instance", "a:9100"}, {"job", "node"}},
                         {{3000, 1}}}})),
      app);
  EXPECT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(app.committed.size(), 5u);

  WriteResult r = Write(
      Body(MakeRequest({{{{"__name__", "up"}, {"instance", "a:9100"}, {"job", "node"}},
                         {{3000, 7}}}})),
      app);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status.message(), HasSubstr("duplicate sample for timestamp"));
  EXPECT_EQ(r.reject_reason, RejectReason::kDuplicate);
  EXPECT_EQ(app.committed.size(), 5u);
}

TEST(RemoteWriteTest, AppendTroubleIsPassedThroughAndRolledBack) {
  ModelAppender app;
  app.fail_append_at = 2;
  app.fail_append_status = absl::UnavailableError("head is full");
  WriteResult r = Write(Body(MakeRequest(kTwoSeries)), app);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status.message(), HasSubstr("head is full"));
  EXPECT_EQ(r.reject_reason, RejectReason::kNone);
  EXPECT_EQ(r.samples_rejected, 0);
  EXPECT_EQ(app.rollbacks, 1);
  EXPECT_EQ(app.commits, 0);
  EXPECT_THAT(app.committed, IsEmpty());
}

TEST(RemoteWriteTest, CommitFailurePassesThrough) {
  for (absl::Status fail : {absl::UnavailableError("wal: disk full"),
                            absl::InternalError("rocksdb: corruption")}) {
    ModelAppender app;
    app.commit_status = fail;
    WriteResult r = Write(Body(MakeRequest(kTwoSeries)), app);
    EXPECT_EQ(r.status.code(), fail.code());
    EXPECT_THAT(r.status.message(), HasSubstr(std::string(fail.message())));
    EXPECT_EQ(r.samples_accepted, 0);
    EXPECT_THAT(app.committed, IsEmpty());
  }
}

TEST(RemoteWriteTest, StaleMarkersAndNaNsKeepEveryBit) {
  const double stale = StaleNaN();
  const double quiet_nan = std::numeric_limits<double>::quiet_NaN();
  const double odd_nan = std::bit_cast<double>(uint64_t{0x7ff8dead0000beefULL});
  const double inf = std::numeric_limits<double>::infinity();
  ModelAppender app;
  WriteResult r = Write(
      Body(MakeRequest({{{{"__name__", "up"}},
                         {{1, 1}, {2, stale}, {3, quiet_nan}, {4, odd_nan}, {5, -inf},
                          {6, -0.0}}}})),
      app);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(app.committed.size(), 6u);
  EXPECT_EQ(std::bit_cast<uint64_t>(app.committed[1].v), kStaleNaNBits);
  EXPECT_TRUE(IsStaleNaN(app.committed[1].v));
  EXPECT_EQ(std::bit_cast<uint64_t>(app.committed[2].v), std::bit_cast<uint64_t>(quiet_nan));
  EXPECT_FALSE(IsStaleNaN(app.committed[2].v));
  EXPECT_EQ(std::bit_cast<uint64_t>(app.committed[3].v), 0x7ff8dead0000beefULL);
  EXPECT_EQ(app.committed[4].v, -inf);
  EXPECT_TRUE(std::signbit(app.committed[5].v));
}

TEST(RemoteWriteTest, TimestampExtremesPassUnchanged) {
  const int64_t lo = std::numeric_limits<int64_t>::min();
  const int64_t hi = std::numeric_limits<int64_t>::max();
  ModelAppender app;
  WriteResult r = Write(Body(MakeRequest({{{{"__name__", "up"}}, {{lo, 1}, {-1, 2}, {hi, 3}}}})),
                        app);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(app.committed.size(), 3u);
  EXPECT_EQ(app.committed[0].t, lo);
  EXPECT_EQ(app.committed[1].t, -1);
  EXPECT_EQ(app.committed[2].t, hi);
}

TEST(RemoteWriteTest, NativeHistogramsAreRefused) {
  prompb::WriteRequest req = MakeRequest(kTwoSeries);
  req.mutable_timeseries(1)->add_histograms(std::string("\x08\x01", 2));
  ModelAppender app;
  WriteResult r = Write(Body(req), app);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status.message(), HasSubstr("native histograms"));
  EXPECT_THAT(r.status.message(), HasSubstr("http_requests_total"));
  EXPECT_THAT(app.committed, IsEmpty());
  EXPECT_EQ(app.commits, 0);
}

TEST(RemoteWriteTest, ContentTypes) {
  for (std::string_view ok : {"", "application/x-protobuf", "Application/X-Protobuf",
                              "application/x-protobuf;proto=prometheus.WriteRequest",
                              "application/x-protobuf; proto=prometheus.WriteRequest",
                              "application/x-protobuf; proto=\"prometheus.WriteRequest\"",
                              "application/x-protobuf; charset=utf-8"}) {
    EXPECT_TRUE(IsRemoteWrite1ContentType(ok)) << ok;
    EXPECT_TRUE(CheckRemoteWriteHeaders(ok, "snappy").ok()) << ok;
  }
  for (std::string_view bad : {"application/json", "text/plain", "application/x-protobuf2",
                               "application/x-protobuf; proto=prometheus.ReadRequest"}) {
    EXPECT_FALSE(IsRemoteWrite1ContentType(bad)) << bad;
    EXPECT_FALSE(CheckRemoteWriteHeaders(bad, "snappy").ok()) << bad;
    EXPECT_FALSE(RemoteWriteVersionOf(bad).ok()) << bad;
  }
  // Remote write 2.0 is accepted by the header check, but is not 1.0.
  constexpr std::string_view kV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
  EXPECT_FALSE(IsRemoteWrite1ContentType(kV2));
  EXPECT_TRUE(CheckRemoteWriteHeaders(kV2, "snappy").ok());
  ASSERT_TRUE(RemoteWriteVersionOf(kV2).ok());
  EXPECT_EQ(*RemoteWriteVersionOf(kV2), RemoteWriteVersion::k2);
  EXPECT_EQ(*RemoteWriteVersionOf(""), RemoteWriteVersion::k1);
  absl::Status other = CheckRemoteWriteHeaders("application/x-protobuf;proto=io.prometheus.write.v3.Request", "");
  EXPECT_EQ(other.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(other.message(), HasSubstr("io.prometheus.write.v3.Request"));
  absl::Status json = CheckRemoteWriteHeaders("application/json", "");
  EXPECT_THAT(json.message(), HasSubstr("application/json"));

  EXPECT_TRUE(CheckRemoteWriteHeaders("application/x-protobuf", "").ok());
  absl::Status gzip = CheckRemoteWriteHeaders("application/x-protobuf", "gzip");
  EXPECT_FALSE(gzip.ok());
  EXPECT_THAT(gzip.message(), HasSubstr("gzip"));
}

}  // namespace
}  // namespace tidemark::ingest
