// Remote write 1.0's in-place WriteRequest decoder (ingest/rw1_decode.h) on hand-encoded bytes:
// every case states what it decodes to (or that it is refused) and is also checked against
// libprotobuf's parse of the same bytes (tests/fuzz/remote_write_decode_compare.h). Then
// HandleRemoteWrite through it: label strings recycled across series of varying shape.
#include "ingest/rw1_decode.h"

#include <snappy.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ingest/proto/remote_write.pb.h"
#include "ingest/remote_write.h"
#include "storage/appender.h"
#include "storage/labels.h"
#include "tests/fuzz/remote_write_decode_compare.h"

namespace tidemark::ingest::internal {
namespace {

using ::testing::HasSubstr;

// --- a tiny protobuf encoder ---

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Tag(uint32_t field, uint32_t wire) { return Varint(uint64_t{field} << 3 | wire); }
std::string Len(uint32_t field, const std::string& bytes) {
  return Tag(field, 2) + Varint(bytes.size()) + bytes;
}
std::string VarintField(uint32_t field, uint64_t v) { return Tag(field, 0) + Varint(v); }
std::string Fixed64Field(uint32_t field, uint64_t bits) {
  std::string out = Tag(field, 1);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
  return out;
}
std::string DoubleField(uint32_t field, double v) {
  return Fixed64Field(field, std::bit_cast<uint64_t>(v));
}
std::string Fixed32Field(uint32_t field, uint32_t bits) {
  std::string out = Tag(field, 5);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
  return out;
}
std::string Group(uint32_t field, const std::string& body) {
  return Tag(field, 3) + body + Tag(field, 4);
}

std::string LabelMsg(const std::string& name, const std::string& value) {
  return Len(1, name) + Len(2, value);
}
std::string SampleMsg(double v, int64_t t) {
  return DoubleField(1, v) + VarintField(2, static_cast<uint64_t>(t));
}
// A TimeSeries field of a WriteRequest.
std::string Series(const std::string& body) { return Len(1, body); }

// Decodes `bytes`, checking that libprotobuf agrees on the outcome and on every field.
absl::Status Decode(const std::string& bytes, Rw1Request* out) {
  EXPECT_EQ(testing::CompareRw1Decoders(bytes), "") << "libprotobuf disagrees";
  return DecodeRw1WriteRequest(bytes, out);
}

std::vector<std::pair<std::string, std::string>> LabelPairs(std::span<const Rw1Label> labels) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Rw1Label& l : labels) out.emplace_back(std::string(l.name), std::string(l.value));
  return out;
}

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST(Rw1DecodeTest, EmptyBufferIsAnEmptyRequest) {
  Rw1Request r;
  ASSERT_TRUE(Decode("", &r).ok());
  EXPECT_TRUE(r.series.empty());
  EXPECT_TRUE(r.metadata.empty());
}

TEST(Rw1DecodeTest, FullRequestAsLibprotobufSerializesIt) {
  prompb::WriteRequest req;
  for (int s = 0; s < 3; ++s) {
    auto* ts = req.add_timeseries();
    auto* l = ts->add_labels();
    l->set_name("__name__");
    l->set_value("metric_" + std::to_string(s));
    l = ts->add_labels();
    l->set_name("pod");
    l->set_value("a-rather-long-pod-name-beyond-sso-" + std::to_string(s));
    for (int k = 0; k <= s; ++k) {
      auto* smp = ts->add_samples();
      smp->set_value(k * 0.5 - 1);
      smp->set_timestamp(-5 + k);
    }
    if (s == 1) {
      auto* e = ts->add_exemplars();
      e->set_value(7.25);
      e->set_timestamp(123);
      auto* el = e->add_labels();
      el->set_name("trace_id");
      el->set_value("t1");
      ts->add_histograms("opaque");
    }
  }
  auto* md = req.add_metadata();
  md->set_type(prompb::MetricMetadata::COUNTER);
  md->set_metric_family_name("metric_0");
  md->set_help("Help.");
  md->set_unit("seconds");
  const std::string bytes = req.SerializeAsString();

  Rw1Request r;
  ASSERT_TRUE(Decode(bytes, &r).ok());
  ASSERT_EQ(r.series.size(), 3u);
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.series[2])),
            (Pairs{{"__name__", "metric_2"}, {"pod", "a-rather-long-pod-name-beyond-sso-2"}}));
  ASSERT_EQ(r.SamplesOf(r.series[2]).size(), 3u);
  EXPECT_EQ(r.SamplesOf(r.series[2])[0].timestamp, -5);
  EXPECT_EQ(r.SamplesOf(r.series[2])[2].value, 0.0);
  ASSERT_EQ(r.ExemplarsOf(r.series[1]).size(), 1u);
  const Rw1Exemplar& e = r.ExemplarsOf(r.series[1])[0];
  EXPECT_EQ(e.value, 7.25);
  EXPECT_EQ(e.timestamp, 123);
  EXPECT_EQ(LabelPairs(r.LabelsOf(e)), (Pairs{{"trace_id", "t1"}}));
  EXPECT_EQ(r.series[1].histograms, 1u);
  EXPECT_EQ(r.series[0].histograms, 0u);
  EXPECT_TRUE(r.ExemplarsOf(r.series[0]).empty());
  ASSERT_EQ(r.metadata.size(), 1u);
  EXPECT_EQ(r.metadata[0].type, 1);
  EXPECT_EQ(r.metadata[0].metric_family_name, "metric_0");
  EXPECT_EQ(r.metadata[0].help, "Help.");
  EXPECT_EQ(r.metadata[0].unit, "seconds");
  // Views point into the buffer: nothing was copied.
  const char* name = r.LabelsOf(r.series[0])[0].name.data();
  EXPECT_GE(name, bytes.data());
  EXPECT_LT(name, bytes.data() + bytes.size());
}

TEST(Rw1DecodeTest, UnknownFieldsOfEveryWireTypeAreSkippedAtEveryLevel) {
  const std::string unknown = VarintField(9, 300) + Fixed64Field(10, 1) + Len(11, "junk") +
                              Group(12, VarintField(1, 5) + Group(2, Len(3, "x"))) +
                              Fixed32Field(13, 7) + VarintField(536870911, 1);  // max field
  const std::string label = LabelMsg("__name__", "up") + unknown;
  const std::string sample = unknown + SampleMsg(1.5, 1000) + unknown;
  const std::string exemplar = unknown + Len(1, LabelMsg("a", "b") + unknown) +
                               DoubleField(2, 3) + VarintField(3, 4) + unknown;
  const std::string md = VarintField(1, 2) + unknown + Len(2, "up");
  const std::string bytes = unknown + Series(Len(1, label) + unknown + Len(2, sample) +
                                             Len(3, exemplar)) +
                            Len(2, "cortex source (reserved field 2)") + Len(3, md) + unknown;
  Rw1Request r;
  ASSERT_TRUE(Decode(bytes, &r).ok());
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.series[0])), (Pairs{{"__name__", "up"}}));
  ASSERT_EQ(r.SamplesOf(r.series[0]).size(), 1u);
  EXPECT_EQ(r.SamplesOf(r.series[0])[0].value, 1.5);
  EXPECT_EQ(r.SamplesOf(r.series[0])[0].timestamp, 1000);
  ASSERT_EQ(r.ExemplarsOf(r.series[0]).size(), 1u);
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.ExemplarsOf(r.series[0])[0])), (Pairs{{"a", "b"}}));
  ASSERT_EQ(r.metadata.size(), 1u);
  EXPECT_EQ(r.metadata[0].type, 2);
  EXPECT_EQ(r.metadata[0].metric_family_name, "up");
}

TEST(Rw1DecodeTest, FieldsInAnyOrderAndInterleaved) {
  const std::string ts = Len(2, SampleMsg(1, 10)) + Len(1, LabelMsg("b", "2")) +
                         Len(2, SampleMsg(2, 20)) + Len(1, LabelMsg("a", "1"));
  const std::string bytes =
      Len(3, Len(5, "unit") + VarintField(1, 5)) + Series(ts) + Series(Len(1, LabelMsg("c", "3")));
  Rw1Request r;
  ASSERT_TRUE(Decode(bytes, &r).ok());
  ASSERT_EQ(r.series.size(), 2u);
  // Wire order is kept (the caller validates sortedness).
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.series[0])), (Pairs{{"b", "2"}, {"a", "1"}}));
  ASSERT_EQ(r.SamplesOf(r.series[0]).size(), 2u);
  EXPECT_EQ(r.SamplesOf(r.series[0])[1].timestamp, 20);
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.series[1])), (Pairs{{"c", "3"}}));
  EXPECT_TRUE(r.SamplesOf(r.series[1]).empty());
  ASSERT_EQ(r.metadata.size(), 1u);
  EXPECT_EQ(r.metadata[0].type, 5);
  EXPECT_EQ(r.metadata[0].unit, "unit");
  EXPECT_EQ(r.metadata[0].metric_family_name, "");
}

TEST(Rw1DecodeTest, LastValueOfASingularFieldWins) {
  const std::string sample = DoubleField(1, 1) + VarintField(2, 5) + DoubleField(1, 2) +
                             VarintField(2, 6);
  const std::string label = Len(1, "x") + Len(2, "1") + Len(1, "job") + Len(2, "node");
  const std::string exemplar = DoubleField(2, 1) + VarintField(3, 1) + DoubleField(2, 9) +
                               VarintField(3, 8);
  const std::string md = VarintField(1, 1) + Len(2, "a") + VarintField(1, 3) + Len(2, "b") +
                         Len(4, "h1") + Len(4, "h2");
  const std::string bytes =
      Series(Len(1, label) + Len(2, sample) + Len(3, exemplar)) + Len(3, md);
  Rw1Request r;
  ASSERT_TRUE(Decode(bytes, &r).ok());
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.series[0])), (Pairs{{"job", "node"}}));
  EXPECT_EQ(r.SamplesOf(r.series[0])[0].value, 2);
  EXPECT_EQ(r.SamplesOf(r.series[0])[0].timestamp, 6);
  EXPECT_EQ(r.ExemplarsOf(r.series[0])[0].value, 9);
  EXPECT_EQ(r.ExemplarsOf(r.series[0])[0].timestamp, 8);
  EXPECT_EQ(r.metadata[0].type, 3);
  EXPECT_EQ(r.metadata[0].metric_family_name, "b");
  EXPECT_EQ(r.metadata[0].help, "h2");
}

TEST(Rw1DecodeTest, KnownFieldWithAnotherWireTypeIsSkipped) {
  // Singular scalars are never packed: a length-delimited timestamp ("packed") is skipped, as
  // are a fixed64 timestamp, a varint value, a varint label name and a varint series.
  const std::string sample = SampleMsg(4, 40) + Len(2, Varint(99) + Varint(98)) +
                             Fixed64Field(2, 77) + VarintField(1, 3) +
                             Fixed32Field(1, 0x3f800000);
  const std::string label = LabelMsg("a", "b") + VarintField(1, 5) + Fixed32Field(2, 1);
  const std::string ts = Len(1, label) + Len(2, sample) + VarintField(1, 1) +
                         Fixed64Field(2, 1) + VarintField(4, 1) + Group(3, "");
  const std::string bytes = Series(ts) + VarintField(1, 1) + Fixed32Field(3, 1) +
                            Len(3, Len(1, "type as bytes") + Fixed64Field(2, 0));
  Rw1Request r;
  ASSERT_TRUE(Decode(bytes, &r).ok());
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.series[0])), (Pairs{{"a", "b"}}));
  ASSERT_EQ(r.SamplesOf(r.series[0]).size(), 1u);
  EXPECT_EQ(r.SamplesOf(r.series[0])[0].value, 4);
  EXPECT_EQ(r.SamplesOf(r.series[0])[0].timestamp, 40);
  EXPECT_EQ(r.series[0].histograms, 0u);  // a varint field 4 is not a histogram
  EXPECT_TRUE(r.ExemplarsOf(r.series[0]).empty());
  ASSERT_EQ(r.metadata.size(), 1u);
  EXPECT_EQ(r.metadata[0].type, 0);
  EXPECT_EQ(r.metadata[0].metric_family_name, "");
}

TEST(Rw1DecodeTest, VarintsAndTagsWrapAsLibprotobufDoes) {
  // Negative timestamps take 10 bytes; the 10th byte's bits past 64 are dropped.
  std::string max_varint = Tag(2, 0) + std::string(9, '\xff') + '\x7f';
  // A tag in 5 bytes whose bits past 32 are dropped: still field 2, varint.
  std::string wrapped_tag = std::string("\x90\x80\x80\x80\x70", 5) + Varint(7);
  // Non-minimal encodings: a 2-byte tag for field 1, a 5-byte zero length.
  std::string long_tag_label = std::string("\x8a\x00", 2) + Varint(1) + "n" +
                               Tag(2, 2) + std::string("\x81\x80\x80\x80\x00", 5) + "v";
  const std::string bytes =
      Series(Len(1, long_tag_label) + Len(2, SampleMsg(0, -1)) + Len(2, max_varint) +
             Len(2, wrapped_tag)) +
      Len(3, VarintField(1, uint64_t{1} << 32 | 6)) + Len(3, VarintField(1, ~uint64_t{0}));
  Rw1Request r;
  ASSERT_TRUE(Decode(bytes, &r).ok());
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.series[0])), (Pairs{{"n", "v"}}));
  auto samples = r.SamplesOf(r.series[0]);
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].timestamp, -1);
  EXPECT_EQ(samples[1].timestamp, -1);
  EXPECT_EQ(samples[2].timestamp, 7);
  // The enum keeps the low 32 bits, as a signed number (open enum).
  EXPECT_EQ(r.metadata[0].type, 6);
  EXPECT_EQ(r.metadata[1].type, -1);
}

// The decoder reads labels and samples of the usual shape without a call per field; the shapes
// just beside it must come out as libprotobuf reads them.
TEST(Rw1DecodeTest, ShapesBesideTheUsualLabelAndSampleDecodeAlike) {
  const std::string n127(127, 'n'), v127(127, 'v'), v128(128, 'w');
  const std::string labels =
      Len(1, LabelMsg("a", "")) +                     // empty value, present
      Len(1, Len(1, "b")) +                           // value omitted
      Len(1, Len(2, "1") + Len(1, "c")) +             // value before name
      Len(1, LabelMsg("d", "2") + VarintField(3, 9)) +  // an unknown field after
      Len(1, LabelMsg("e", "3") + Len(2, "4")) +      // the value twice: the last wins
      Len(1, LabelMsg(n127, "5")) + Len(1, LabelMsg("f", v128)) + Len(1, LabelMsg("g", v127));
  const std::string samples =
      Len(2, SampleMsg(1.5, 1796623080000)) +
      Len(2, VarintField(2, 7) + DoubleField(1, 2.5)) +          // timestamp first
      Len(2, SampleMsg(3.5, 5) + VarintField(2, 6)) +            // the timestamp twice
      Len(2, DoubleField(1, 4.5) + Tag(2, 0) + std::string("\x80\x00", 2)) +  // long zero
      Len(2, DoubleField(1, 5.5));                               // no timestamp
  const std::string bytes = Series(labels + samples);  // the views point into it
  Rw1Request r;
  ASSERT_TRUE(Decode(bytes, &r).ok());
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_EQ(LabelPairs(r.LabelsOf(r.series[0])),
            (Pairs{{"a", ""}, {"b", ""}, {"c", "1"}, {"d", "2"}, {"e", "4"}, {n127, "5"},
                   {"f", v128}, {"g", v127}}));
  auto got = r.SamplesOf(r.series[0]);
  ASSERT_EQ(got.size(), 5u);
  const std::vector<std::pair<double, int64_t>> want = {
      {1.5, 1796623080000}, {2.5, 7}, {3.5, 6}, {4.5, 0}, {5.5, 0}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].value, want[i].first) << i;
    EXPECT_EQ(got[i].timestamp, want[i].second) << i;
  }
}

TEST(Rw1DecodeTest, NanAndInfinityKeepEveryBit) {
  const uint64_t stale = 0x7ff0000000000002ULL;  // Prometheus's stale marker
  const std::string bytes =
      Series(Len(2, Fixed64Field(1, stale)) +
             Len(2, SampleMsg(std::numeric_limits<double>::infinity(), 1)));
  Rw1Request r;
  ASSERT_TRUE(Decode(bytes, &r).ok());
  EXPECT_EQ(std::bit_cast<uint64_t>(r.SamplesOf(r.series[0])[0].value), stale);
  EXPECT_TRUE(std::isinf(r.SamplesOf(r.series[0])[1].value));
}

TEST(Rw1DecodeTest, GroupsNestUpToTheRecursionLimit) {
  // The top-level message is level 0; libprotobuf allows nesting down to level 100.
  auto nested = [](int levels) {
    std::string body;
    for (int i = 0; i < levels; ++i) body = Group(20, body);
    return body;
  };
  Rw1Request r;
  EXPECT_TRUE(Decode(nested(100), &r).ok());
  EXPECT_FALSE(Decode(nested(101), &r).ok());
  // In a TimeSeries (level 1) one level fewer is left; in an exemplar's label (level 3), three.
  EXPECT_TRUE(Decode(Series(nested(99)), &r).ok());
  EXPECT_FALSE(Decode(Series(nested(100)), &r).ok());
  EXPECT_TRUE(Decode(Series(Len(3, Len(1, nested(97)))), &r).ok());
  EXPECT_FALSE(Decode(Series(Len(3, Len(1, nested(98)))), &r).ok());
}

struct BadCase {
  const char* name;
  std::string bytes;
  const char* reason;
};

TEST(Rw1DecodeTest, MalformedInputIsRefusedWithAReason) {
  const std::string ok_series = Series(Len(1, LabelMsg("a", "b")));
  const std::vector<BadCase> cases = {
      {"truncated tag", ok_series + "\x8a", "truncated tag"},
      {"tag over 5 bytes", std::string("\x8a\x80\x80\x80\x80\x00", 6), "tag longer"},
      {"field number 0", VarintField(0, 1), "field number 0"},
      {"tag zero", std::string(1, '\0'), "field number 0"},
      {"field 0 length-delimited", Len(0, "x"), "field number 0"},
      {"wire type 6", Tag(5, 6), "wire type 6"},
      {"wire type 7", Series(Tag(5, 7)), "wire type 7"},
      {"end group at top level", Tag(5, 4), "not started"},
      {"end group in a series", Series(Tag(5, 4)), "not started"},
      {"group without end", Tag(5, 3) + VarintField(1, 1), "without its end"},
      {"group ended by another field", Tag(5, 3) + Tag(6, 4), "another field"},
      {"group ended by tag 0", Tag(5, 3) + std::string(1, '\0'), "field number 0"},
      {"truncated varint", VarintField(9, 1).substr(0, 1) + "\x80", "truncated varint"},
      {"varint over 10 bytes", Tag(9, 0) + std::string(10, '\x80') + '\x01',
       "longer than 10"},
      {"varint over 10 bytes, zero", Tag(9, 0) + std::string(10, '\x80') + '\x00',
       "longer than 10"},
      {"timestamp over 10 bytes",
       Series(Len(2, Tag(2, 0) + std::string(10, '\xff') + '\x01')), "longer than 10"},
      {"truncated fixed64", Series(Len(2, Tag(1, 1) + "1234567")), "truncated fixed64"},
      {"truncated unknown fixed64", Tag(9, 1) + "1234", "truncated fixed64"},
      {"truncated fixed32", Tag(9, 5) + "12", "truncated fixed32"},
      {"length past the end", Tag(1, 2) + Varint(5) + "1234", "past the end"},
      {"length past the end of the parent",
       Series(Tag(1, 2) + Varint(9) + LabelMsg("a", "b")) + VarintField(9, 0),
       "past the end"},
      {"truncated length", Tag(11, 2) + "\x80", "truncated length"},
      {"length 2 GiB", Tag(11, 2) + std::string("\x80\x80\x80\x80\x08", 5), "2 GiB"},
      {"length over 5 bytes", Tag(11, 2) + std::string("\x80\x80\x80\x80\x80\x00", 6),
       "2 GiB"},
      {"huge length", Tag(11, 2) + std::string("\xff\xff\xff\xff\x07", 5), "2 GiB"},
      {"varint running past a sample",
       Series(Len(2, Tag(2, 0) + "\x80") + VarintField(9, 1)), "truncated varint"},
  };
  for (const BadCase& c : cases) {
    Rw1Request r;
    absl::Status s = Decode(c.bytes, &r);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.name << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.reason)) << c.name;
    EXPECT_THAT(s.message(), HasSubstr("at byte")) << c.name;
  }
}

TEST(Rw1DecodeTest, DecodeClearsAReusedRequest) {
  Rw1Request r;
  ASSERT_TRUE(Decode(Series(Len(1, LabelMsg("a", "b")) + Len(2, SampleMsg(1, 1))), &r).ok());
  ASSERT_TRUE(Decode(Series(Len(1, LabelMsg("c", "d"))), &r).ok());
  ASSERT_EQ(r.series.size(), 1u);
  EXPECT_EQ(r.labels.size(), 1u);
  EXPECT_TRUE(r.samples.empty());
}

// --- HandleRemoteWrite through the decoder ---

class RecordingAppender : public Appender {
 public:
  absl::Status Append(const Labels& labels, int64_t t, double v) override {
    // Labels are checked as the Appender contract says (every series is new here).
    if (absl::Status s = Labels::Validate(labels.items()); !s.ok()) {
      return StatusOf(RejectReason::kInvalidLabels, std::string(s.message()));
    }
    pending_.push_back({labels.ToString(), t, v});
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    committed.insert(committed.end(), pending_.begin(), pending_.end());
    pending_.clear();
    return absl::OkStatus();
  }
  void Rollback() override { pending_.clear(); }
  size_t pending() const override { return pending_.size(); }

  struct Entry {
    std::string series;
    int64_t t;
    double v;
  };
  std::vector<Entry> committed;

 private:
  std::vector<Entry> pending_;
};

std::string Snappy(const std::string& raw) {
  std::string out;
  snappy::Compress(raw.data(), raw.size(), &out);
  return out;
}

TEST(Rw1HandleTest, LabelStringsRecycledAcrossSeriesOfDifferentShapes) {
  // Label counts go up and down and values cross the small-string size, so recycled strings
  // are both reused, shrunk and kept aside.
  const std::string long_value(40, 'x');
  std::string raw;
  std::vector<std::string> want;
  const int counts[] = {3, 1, 5, 2, 5, 1};
  for (int s = 0; s < 6; ++s) {
    std::string ts;
    std::vector<std::pair<std::string, std::string>> labels;
    labels.emplace_back("__name__", s % 2 ? "m" : "metric_with_a_long_name_" + long_value);
    for (int k = 1; k < counts[s]; ++k) {
      labels.emplace_back("l" + std::to_string(k), (k + s) % 2 ? "v" : long_value + "_" +
                                                                        std::to_string(s));
    }
    for (const auto& [n, v] : labels) ts += Len(1, LabelMsg(n, v));
    ts += Len(2, SampleMsg(s, 1000 + s));
    raw += Series(ts);
    std::vector<Label> l;
    for (const auto& [n, v] : labels) l.push_back(Label{n, v});
    want.push_back(Labels::FromUnsorted(std::move(l)).ToString());
  }
  RecordingAppender appender;
  WriteResult r = HandleRemoteWrite(Snappy(raw), "snappy", WriteLimits{}, appender);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.series, 6);
  EXPECT_EQ(r.samples_accepted, 6);
  ASSERT_EQ(appender.committed.size(), 6u);
  for (int s = 0; s < 6; ++s) {
    EXPECT_EQ(appender.committed[static_cast<size_t>(s)].series, want[static_cast<size_t>(s)]);
    EXPECT_EQ(appender.committed[static_cast<size_t>(s)].t, 1000 + s);
  }
}

TEST(Rw1HandleTest, MalformedProtobufNamesTheProblem) {
  RecordingAppender appender;
  // A valid series, then a truncated one: nothing is appended (the whole request is decoded
  // before the first append).
  const std::string raw = Series(Len(1, LabelMsg("__name__", "up")) + Len(2, SampleMsg(1, 1))) +
                          Tag(1, 2) + Varint(50) + "short";
  WriteResult r = HandleRemoteWrite(Snappy(raw), "snappy", WriteLimits{}, appender);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status));
  EXPECT_THAT(r.status.message(), HasSubstr("not a valid prometheus.WriteRequest"));
  EXPECT_THAT(r.status.message(), HasSubstr("past the end"));
  EXPECT_EQ(r.series, 0);
  EXPECT_EQ(r.samples_rejected, 0);
  EXPECT_TRUE(appender.committed.empty());
  EXPECT_EQ(appender.pending(), 0u);
}

TEST(Rw1HandleTest, InvalidUtf8LabelValueIsRefusedNamingTheLabel) {
  RecordingAppender appender;
  const std::string raw = Series(Len(1, LabelMsg("__name__", "up")) +
                                 Len(1, LabelMsg("job", std::string("\xff\xfe", 2))) +
                                 Len(2, SampleMsg(1, 1)));
  WriteResult r = HandleRemoteWrite(Snappy(raw), "snappy", WriteLimits{}, appender);
  EXPECT_TRUE(absl::IsInvalidArgument(r.status));
  EXPECT_EQ(r.reject_reason, RejectReason::kInvalidLabels);
  EXPECT_THAT(r.status.message(), HasSubstr("job"));
  EXPECT_TRUE(appender.committed.empty());
}

}  // namespace
}  // namespace tidemark::ingest::internal
