#include "storage/chunk.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "storage/bit_stream.h"

namespace tidemark {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kT0 = 1700000000000;  // a realistic epoch-ms start

std::string Encode(const std::vector<Sample>& samples) {
  std::string out;
  absl::Status s = EncodeChunk(samples, &out);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

struct Decoded {
  std::vector<Sample> samples;
  absl::Status status;
};

Decoded Decode(std::string_view chunk) {
  Decoded d;
  ChunkIterator it(chunk);
  while (it.Next()) d.samples.push_back(it.At());
  d.status = it.status();
  return d;
}

std::string Hex(uint64_t bits) {
  char buf[19];
  snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(bits));
  return buf;
}

// Round-trips `samples` and checks every timestamp and every float bit.
void ExpectRoundTrip(const std::vector<Sample>& samples) {
  std::string chunk = Encode(samples);
  Decoded d = Decode(chunk);
  ASSERT_TRUE(d.status.ok()) << d.status;
  ASSERT_EQ(d.samples.size(), samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(d.samples[i].t, samples[i].t) << "sample " << i;
    EXPECT_EQ(Hex(std::bit_cast<uint64_t>(d.samples[i].v)),
              Hex(std::bit_cast<uint64_t>(samples[i].v)))
        << "sample " << i;
  }
  absl::StatusOr<ChunkInfo> info = ReadChunkInfo(chunk);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->num_samples, samples.size());
  EXPECT_EQ(info->min_time_ms, samples.front().t);
  EXPECT_EQ(info->max_time_ms, samples.back().t);
}

ChunkInfo Info(const std::string& chunk) {
  absl::StatusOr<ChunkInfo> info = ReadChunkInfo(chunk);
  EXPECT_TRUE(info.ok()) << info.status();
  return info.ok() ? *info : ChunkInfo();
}

std::vector<Sample> Regular(size_t n, int64_t start, int64_t step, double v0, double dv) {
  std::vector<Sample> s;
  for (size_t i = 0; i < n; ++i) s.push_back({start + static_cast<int64_t>(i) * step, v0 + dv * i});
  return s;
}

// A Prometheus-like scrape: 15 s interval, a few ms of jitter, a counter that increases by
// small integers.
std::vector<Sample> JitteredCounter(size_t n, std::mt19937_64& rng) {
  std::vector<Sample> s;
  std::uniform_int_distribution<int> jitter(-3, 3), inc(0, 5);
  double v = 12345;
  for (size_t i = 0; i < n; ++i) {
    s.push_back({kT0 + static_cast<int64_t>(i) * 15000 + jitter(rng), v});
    v += inc(rng);
  }
  return s;
}

TEST(ChunkTest, EmptyAndUnorderedInputIsRejectedAndOutputUntouched) {
  std::string out = "keep";
  absl::Status s = EncodeChunk({}, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out, "keep");

  std::vector<Sample> dup = {{10, 1}, {10, 2}};
  EXPECT_EQ(EncodeChunk(dup, &out).code(), absl::StatusCode::kInvalidArgument);
  std::vector<Sample> back = {{10, 1}, {20, 2}, {15, 3}};
  s = EncodeChunk(back, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("sample 2"), std::string::npos) << s;
  EXPECT_EQ(out, "keep");
}

TEST(ChunkTest, TooManySamplesRejectedAndTheLimitRoundTrips) {
  std::vector<Sample> s = Regular(kMaxSamplesPerChunk + 1, 0, 1, 0, 1);
  std::string out;
  EXPECT_EQ(EncodeChunk(s, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.empty());
  s.pop_back();
  ExpectRoundTrip(s);
}

TEST(ChunkTest, EncoderAppendsToExistingBytes) {
  std::vector<Sample> s = Regular(5, kT0, 1000, 1, 1);
  std::string alone = Encode(s);
  std::string out = "prefix";
  ASSERT_TRUE(EncodeChunk(s, &out).ok());
  EXPECT_EQ(out, "prefix" + alone);
}

TEST(ChunkTest, OneSample) {
  std::vector<Sample> s = {{kT0, 42.5}};
  ExpectRoundTrip(s);
  ChunkInfo info = Info(Encode(s));
  EXPECT_EQ(info.timestamps, TimestampEncoding::kRegular);
  EXPECT_EQ(info.values, ValueEncoding::kConstant);
  ExpectRoundTrip({{kMin, -1}});
  ExpectRoundTrip({{kMax, StaleNaN()}});
  ExpectRoundTrip({{0, 0}});
}

TEST(ChunkTest, TwoAndThreeSamples) {
  ExpectRoundTrip({{1, 1}, {2, 2}});
  ExpectRoundTrip({{-5, 1}, {7, 1}});
  ExpectRoundTrip({{kT0, 1}, {kT0 + 15000, 3}, {kT0 + 30000, 2}});
  ExpectRoundTrip({{kT0, 1}, {kT0 + 15000, 1}, {kT0 + 30001, 1}});
  std::vector<Sample> irregular = {{kT0, 1}, {kT0 + 1, 2}, {kT0 + 100000, 3}};
  ExpectRoundTrip(irregular);
  EXPECT_EQ(Info(Encode(irregular)).timestamps, TimestampEncoding::kDeltaOfDelta);
  std::vector<Sample> two = {{kT0, 1}, {kT0 + 999999, 2}};
  EXPECT_EQ(Info(Encode(two)).timestamps, TimestampEncoding::kRegular);
}

TEST(ChunkTest, Int64ExtremeTimestamps) {
  ExpectRoundTrip({{kMin, 1}, {kMax, 2}});
  ExpectRoundTrip({{kMin, 1}, {kMin + 1, 2}, {kMax, 3}});
  ExpectRoundTrip({{kMin, 1}, {kMax - 1, 2}, {kMax, 3}});
  ExpectRoundTrip({{kMin, 1}, {0, 2}, {kMax, 3}});  // regular with interval ~2^63
  ExpectRoundTrip({{kMin, 1}, {-1, 2}, {0, 3}, {kMax, 4}});
  ExpectRoundTrip({{kMax - 2, 1}, {kMax - 1, 2}, {kMax, 3}});
  ExpectRoundTrip({{kMin, 1}, {kMin + 1, 2}, {kMin + 2, 3}});
  ExpectRoundTrip({{-3, 1}, {-2, 2}, {kMax / 2, 3}, {kMax / 2 + 1, 4}, {kMax, 5}});
  // Big jumps in both directions of the delta-of-delta.
  std::vector<Sample> s;
  int64_t t = kMin;
  for (int i = 0; i < 40; ++i) {
    s.push_back({t, static_cast<double>(i)});
    uint64_t room = static_cast<uint64_t>(kMax) - static_cast<uint64_t>(t);
    uint64_t step = (i % 3 == 0) ? room / 4 : (i % 3 == 1 ? 1 : 1ULL << 40);
    if (step == 0 || room < step) break;
    t = static_cast<int64_t>(static_cast<uint64_t>(t) + step);
  }
  ExpectRoundTrip(s);
  EXPECT_NE(Info(Encode(s)).timestamps, TimestampEncoding::kRegular);
}

TEST(ChunkTest, SpecialFloatsBitForBit) {
  const double specials[] = {
      std::numeric_limits<double>::infinity(),
      -std::numeric_limits<double>::infinity(),
      std::numeric_limits<double>::quiet_NaN(),
      std::bit_cast<double>(uint64_t{0xfff8000000000001}),  // negative NaN with payload
      std::bit_cast<double>(uint64_t{0x7ff0000000000001}),  // signalling NaN
      StaleNaN(),
      -0.0,
      0.0,
      std::numeric_limits<double>::denorm_min(),
      std::numeric_limits<double>::max(),
      -std::numeric_limits<double>::lowest(),
      1.0,
  };
  std::vector<Sample> s;
  int64_t t = kT0;
  for (double a : specials) {
    for (double b : specials) {
      s.push_back({t++, a});
      s.push_back({t++, b});
    }
  }
  ExpectRoundTrip(s);
  EXPECT_EQ(Info(Encode(s)).values, ValueEncoding::kXor);

  // -0.0 and +0.0 differ in bits, so they are not a constant chunk.
  std::vector<Sample> zeros = {{1, 0.0}, {2, -0.0}};
  ExpectRoundTrip(zeros);
  EXPECT_EQ(Info(Encode(zeros)).values, ValueEncoding::kXor);
  for (double v : specials) {
    std::vector<Sample> c = Regular(10, kT0, 15000, 0, 0);
    for (Sample& x : c) x.v = v;
    ExpectRoundTrip(c);
    EXPECT_EQ(Info(Encode(c)).values, ValueEncoding::kConstant) << v;
  }
  // A stale marker and an ordinary NaN stay distinguishable.
  Decoded d = Decode(Encode({{1, StaleNaN()}, {2, std::numeric_limits<double>::quiet_NaN()}}));
  ASSERT_EQ(d.samples.size(), 2u);
  EXPECT_TRUE(IsStaleNaN(d.samples[0].v));
  EXPECT_FALSE(IsStaleNaN(d.samples[1].v));
}

TEST(ChunkTest, ChoosesTheEncodingThatFits) {
  std::mt19937_64 rng(7);
  // Regular scrape, constant value.
  std::string c = Encode(Regular(120, kT0, 15000, 1, 0));
  EXPECT_EQ(Info(c).timestamps, TimestampEncoding::kRegular);
  EXPECT_EQ(Info(c).values, ValueEncoding::kConstant);
  // Regular scrape, a counter: integers are decimals with exponent 0.
  c = Encode(Regular(120, kT0, 15000, 1, 1));
  EXPECT_EQ(Info(c).timestamps, TimestampEncoding::kRegular);
  EXPECT_EQ(Info(c).values, ValueEncoding::kDecimal);
  // Jitter: offsets from the 15 s grid, packed.
  std::vector<Sample> j = JitteredCounter(120, rng);
  for (Sample& s : j) s.v = 3;
  c = Encode(j);
  EXPECT_EQ(Info(c).timestamps, TimestampEncoding::kPacked);
  EXPECT_EQ(Info(c).values, ValueEncoding::kConstant);
  // Gaussian noise: no decimals; the smaller of XOR and the float bits as integers.
  std::normal_distribution<double> noise(0, 1);
  std::vector<Sample> n = Regular(120, kT0, 15000, 0, 0);
  for (Sample& s : n) s.v = noise(rng);
  c = Encode(n);
  EXPECT_EQ(Info(c).timestamps, TimestampEncoding::kRegular);
  EXPECT_TRUE(Info(c).values == ValueEncoding::kXor ||
              Info(c).values == ValueEncoding::kFloatBits);
  // (XOR is still chosen where it wins: see SpecialFloatsBitForBit. A frame of reference with
  // a multiplier catches values that differ only in sign and exponent bits.)
  // Positive noise drifting slowly: the float bits as integers.
  double w = 0.0015;
  for (Sample& s : n) {
    w = 0.9 * w + 0.1 * 0.001 * std::exp(0.5 * noise(rng));
    s.v = w;
  }
  EXPECT_EQ(Info(Encode(n)).values, ValueEncoding::kFloatBits);
  // Timestamps with wild deltas: Gorilla's delta-of-delta is still there for them.
  std::vector<Sample> wild;
  int64_t t = 0;
  for (int i = 0; i < 60; ++i) {
    wild.push_back({t, 1});
    t += 1 + static_cast<int64_t>(rng() % (uint64_t{1} << (rng() % 40)));
  }
  c = Encode(wild);
  EXPECT_NE(Info(c).timestamps, TimestampEncoding::kRegular);
}

// The shapes of bench/loadgen.cc, 120 samples (one chunk) on ±2 ms jittered 15 s scrapes.
enum class Shape {
  kIntCounterWithReset,  // http_requests_total: integer increments, a reset to 0
  kGauge2Decimals,       // app_load_average: random walk rounded to 2 decimals
  kFullNoiseGauge,       // app_gc_pause_ewma_seconds
  kFloatCounterNoise,    // container_cpu_usage_seconds_total
  kHistogramBucket,      // cumulative bucket counter
  kMemoryGauge,          // multiples of 4096
  kConstantStep,         // +15 every scrape
  kConstant,             // up
};

std::vector<Sample> MakeShape(Shape shape, std::mt19937_64& rng, size_t n = 120) {
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> normal(0, 1);
  std::vector<Sample> s(n);
  double v = 0, w = 1.5;
  if (shape == Shape::kMemoryGauge) v = 180 * 1048576.0;
  if (shape == Shape::kFullNoiseGauge) w = 0.0015;
  for (size_t i = 0; i < n; ++i) {
    s[i].t = kT0 + static_cast<int64_t>(i) * 15000 + static_cast<int64_t>(rng() % 5) - 2;
    switch (shape) {
      case Shape::kIntCounterWithReset:
        if (i == n / 3) v = 0;
        s[i].v = v;
        v += std::round(47 * (0.7 + 0.6 * u(rng)));
        break;
      case Shape::kGauge2Decimals:
        w = std::max(0.0, w + 0.08 * normal(rng));
        s[i].v = std::round(w * 100) / 100;
        break;
      case Shape::kFullNoiseGauge:
        w = 0.9 * w + 0.1 * 0.001 * std::exp(0.5 * normal(rng));
        s[i].v = w;
        break;
      case Shape::kFloatCounterNoise:
        v += 12 * (0.5 + u(rng));
        s[i].v = v;
        break;
      case Shape::kHistogramBucket:
        v += std::round(30 * u(rng));
        s[i].v = v;
        break;
      case Shape::kMemoryGauge:
        if (u(rng) < 0.7) v += 4096 * std::round(60 * normal(rng));
        s[i].v = v;
        break;
      case Shape::kConstantStep:
        s[i].v = 1000 + 15.0 * static_cast<double>(i);
        break;
      case Shape::kConstant:
        s[i].v = 1;
        break;
    }
  }
  return s;
}

// Sizes are pinned so that a compression regression fails: the bound is the measured size
// plus ~10% (measured values in comments, bytes for 120 samples including the ~14-byte
// header). The lower bounds catch a codec that drops information.
// The encoder reuses the timestamp column of the last chunk it encoded when the timestamps are
// the same (the series of one scrape target): the bytes must be those a fresh encoder writes,
// and a chunk whose timestamps differ by one millisecond must not get the old column.
TEST(ChunkTest, ReusedTimestampColumnIsTheOneAFreshEncoderWrites) {
  std::mt19937_64 rng(7);
  const std::vector<Sample> counter = JitteredCounter(120, rng);
  std::vector<Sample> gauge = counter;
  for (size_t i = 0; i < gauge.size(); ++i) gauge[i].v = 0.25 * static_cast<double>(i % 7);
  std::vector<Sample> moved = gauge;
  moved[60].t += 1;
  std::vector<Sample> short_one(gauge.begin(), gauge.end() - 1);

  const std::vector<const std::vector<Sample>*> chunks = {&counter, &gauge, &moved, &short_one};
  std::vector<std::string> fresh;  // each encoded by a thread that encoded nothing before
  for (const auto* samples : chunks) {
    std::thread([&] { fresh.push_back(Encode(*samples)); }).join();
  }
  std::vector<std::string> in_turn;  // one after the other on this thread
  for (const auto* samples : chunks) {
    in_turn.push_back(Encode(*samples));
    ExpectRoundTrip(*samples);
  }
  EXPECT_EQ(in_turn, fresh);
}

TEST(ChunkTest, EncodedSizeWithinBand) {
  struct Band {
    Shape shape;
    ValueEncoding values;
    size_t min_bytes, max_bytes;
  };
  const Band bands[] = {
      // Timestamps alone: 3 bits a sample for ±2 ms of jitter (Gorilla: ~7 bits).
      {Shape::kConstant, ValueEncoding::kConstant, 60, 80},                // measured: 74
      {Shape::kConstantStep, ValueEncoding::kDecimal, 66, 83},             // measured: 75
      {Shape::kIntCounterWithReset, ValueEncoding::kDecimal, 120, 167},    // measured: 152
      {Shape::kGauge2Decimals, ValueEncoding::kDecimal, 120, 182},         // measured: 165
      {Shape::kHistogramBucket, ValueEncoding::kDecimal, 120, 165},        // measured: 149
      {Shape::kMemoryGauge, ValueEncoding::kDecimal, 150, 225},            // measured: 204
      {Shape::kFloatCounterNoise, ValueEncoding::kFloatBits, 700, 950},    // measured: 864
      {Shape::kFullNoiseGauge, ValueEncoding::kFloatBits, 700, 935},       // measured: 846
  };
  for (const Band& b : bands) {
    std::mt19937_64 rng(1);
    std::vector<Sample> s = MakeShape(b.shape, rng);
    std::string c = Encode(s);
    SCOPED_TRACE(testing::Message() << "shape " << static_cast<int>(b.shape) << ": " << c.size()
                                    << " bytes");
    ExpectRoundTrip(s);
    EXPECT_EQ(Info(c).timestamps, TimestampEncoding::kPacked);
    EXPECT_EQ(Info(c).values, b.values);
    EXPECT_GE(c.size(), b.min_bytes);
    EXPECT_LE(c.size(), b.max_bytes);
  }

  std::mt19937_64 rng(1);
  // Constant value, regular timestamps: the header plus 8 bytes, whatever the length.
  std::string c = Encode(Regular(120, kT0, 15000, 1, 0));
  EXPECT_LE(c.size(), 24u) << c.size();  // measured: 22
  // A constant step on regular timestamps: delta of delta is all zeros, width 0.
  c = Encode(Regular(120, kT0, 15000, 1000, 15));
  EXPECT_LE(c.size(), 28u) << c.size();  // measured: 25
  EXPECT_EQ(Info(c).values, ValueEncoding::kDecimal);

  // 120 samples, regular 15 s timestamps, a counter increasing by small integers.
  std::vector<Sample> counter = Regular(120, kT0, 15000, 0, 0);
  std::uniform_int_distribution<int> inc(0, 5);
  double v = 12345;
  for (Sample& s : counter) {
    s.v = v;
    v += inc(rng);
  }
  c = Encode(counter);
  double per_sample = static_cast<double>(c.size()) / counter.size();
  EXPECT_LT(per_sample, 0.63) << c.size();  // measured: 68 bytes (Gorilla XOR: 147)
  EXPECT_GT(per_sample, 0.4) << c.size();   // 3 bits a sample of information

  // Jittered timestamps on top.
  std::vector<Sample> jit = JitteredCounter(120, rng);
  c = Encode(jit);
  per_sample = static_cast<double>(c.size()) / jit.size();
  EXPECT_LT(per_sample, 1.1) << c.size();  // measured: 120 bytes (Gorilla: 272)

  // Random doubles cannot compress below 8 bytes a sample; the overhead stays small.
  std::vector<Sample> noise = Regular(120, kT0, 15000, 0, 0);
  for (Sample& s : noise) s.v = std::bit_cast<double>(rng());
  c = Encode(noise);
  EXPECT_LT(c.size(), 1060u) << c.size();  // measured: 988 bytes
  EXPECT_GE(c.size(), 960u) << c.size();
}

// Values that are not decimals ride along as exceptions and come back bit for bit.
TEST(ChunkTest, DecimalExceptionsBitForBit) {
  std::mt19937_64 rng(5);
  const double odd[] = {
      StaleNaN(),
      std::numeric_limits<double>::quiet_NaN(),
      std::bit_cast<double>(uint64_t{0xfff8000000000001}),
      std::bit_cast<double>(uint64_t{0x7ff0000000000001}),
      std::numeric_limits<double>::infinity(),
      -std::numeric_limits<double>::infinity(),
      -0.0,
      0.1 + 0.2,                                   // 0.30000000000000004: noise
      9007199254740993.0,                          // 2^53 + 1 (rounds to 2^53): beyond exact
      static_cast<double>(kMax),                   // 2^63
      static_cast<double>(kMin),                   // -2^63
      std::numeric_limits<double>::denorm_min(),
      std::numeric_limits<double>::max(),
      std::numeric_limits<double>::lowest(),
      1e-300,
  };
  for (double x : odd) {
    std::vector<Sample> s = MakeShape(Shape::kGauge2Decimals, rng);
    s[0].v = x;         // leading exception
    s[50].v = x;        // in the middle
    s.back().v = x;     // trailing
    SCOPED_TRACE(Hex(std::bit_cast<uint64_t>(x)));
    ExpectRoundTrip(s);
    std::string c = Encode(s);
    EXPECT_EQ(Info(c).values, ValueEncoding::kDecimal);
    // Three exceptions cost their 8 bytes and a position each, nothing more.
    std::vector<Sample> plain = s;
    plain[0].v = plain[1].v;
    plain[50].v = plain[49].v;
    plain.back().v = plain[plain.size() - 2].v;
    EXPECT_LE(c.size(), Encode(plain).size() + 3 * 9 + 2);
  }
  // A series that ends with stale markers (its target went away).
  std::vector<Sample> s = MakeShape(Shape::kIntCounterWithReset, rng);
  for (size_t i = 110; i < s.size(); ++i) s[i].v = StaleNaN();
  ExpectRoundTrip(s);
  EXPECT_EQ(Info(Encode(s)).values, ValueEncoding::kDecimal);
  // Integers near the exact limit of doubles, and exponents up to the bound.
  ExpectRoundTrip({{1, 9007199254740991.0}, {2, -9007199254740991.0}, {3, 0}, {4, 1}});
  ExpectRoundTrip({{1, 1e-15}, {2, 2e-15}, {3, 3.5e-15}, {4, 1e-16}, {5, 0.1}});
  ExpectRoundTrip({{1, 123456.789012}, {2, 123456.789013}, {3, 1e15}, {4, 1e300}});
}

// Int64 extremes through the integer columns: float bits of every sign and magnitude, and
// timestamps at both ends of the int64 range with jitter.
TEST(ChunkTest, IntegerColumnExtremes) {
  std::mt19937_64 rng(11);
  const uint64_t edge[] = {0, 1, ~uint64_t{0}, uint64_t{1} << 63, (uint64_t{1} << 63) - 1,
                           (uint64_t{1} << 63) + 1, 0x7ff0000000000002, 0xfff0000000000000};
  std::vector<Sample> s;
  for (int i = 0; i < 200; ++i) {
    s.push_back({kT0 + i * 1000, std::bit_cast<double>(edge[rng() % std::size(edge)])});
  }
  ExpectRoundTrip(s);
  for (int64_t start : {kMin, kMax - 200 * 15004}) {
    std::vector<Sample> t;
    for (int i = 0; i < 200; ++i) {
      t.push_back({start + i * 15000 + static_cast<int64_t>(rng() % 5),
                   static_cast<double>(i)});
    }
    ExpectRoundTrip(t);
    EXPECT_EQ(Info(Encode(t)).timestamps, TimestampEncoding::kPacked);
  }
  // A missed scrape and a late one: a gap is one exception among the deltas.
  std::vector<Sample> gap = MakeShape(Shape::kConstant, rng);
  for (size_t i = 60; i < gap.size(); ++i) gap[i].t += 15000;
  gap[90].t += 7000;
  ExpectRoundTrip(gap);
  EXPECT_EQ(Info(Encode(gap)).timestamps, TimestampEncoding::kPacked);
  EXPECT_LE(Encode(gap).size(), 100u) << Encode(gap).size();  // measured: 85

  // The packed integer block directly: every order, widths 0..64, exceptions at both ends.
  for (int iter = 0; iter < 300; ++iter) {
    size_t n = 1 + rng() % 200;
    int width = static_cast<int>(rng() % 65);
    std::vector<uint64_t> xs(n);
    uint64_t base = rng();
    for (uint64_t& x : xs) {
      x = base + (width == 64 ? rng() : (rng() & ((uint64_t{1} << width) - 1)));
      if (rng() % 50 == 0) x = edge[rng() % std::size(edge)];
      if (iter % 3 == 1) x = base + (&x - xs.data()) * 7;  // a constant step
    }
    std::string col;
    std::vector<uint64_t> scratch[2];
    internal::AppendIntColumn(xs, &col, scratch);
    internal::IntColumnReader r;
    ASSERT_TRUE(r.Init(col, static_cast<uint32_t>(n))) << iter;
    for (size_t i = 0; i < n; ++i) {
      uint64_t got;
      ASSERT_TRUE(r.Next(&got)) << iter << " " << i;
      ASSERT_EQ(got, xs[i]) << iter << " " << i;
    }
    EXPECT_TRUE(r.Finished()) << iter;
    // Every truncation fails somewhere, never reads past the end.
    for (size_t len = 0; len < col.size(); ++len) {
      std::string cut = col.substr(0, len);
      internal::IntColumnReader rc;
      bool ok = rc.Init(cut, static_cast<uint32_t>(n));
      for (size_t i = 0; ok && i < n; ++i) {
        uint64_t got;
        ok = rc.Next(&got);
      }
      EXPECT_FALSE(ok && rc.Finished()) << iter << " prefix " << len;
    }
  }
}

TEST(ChunkTest, RandomRoundTrips) {
  std::mt19937_64 rng(20240601);
  std::uniform_int_distribution<int> len(1, 300);
  for (int iter = 0; iter < 2000; ++iter) {
    size_t n = len(rng);
    std::vector<Sample> s(n);
    int ts_kind = iter % 4, val_kind = (iter / 4) % 7;
    int64_t t = static_cast<int64_t>(rng() % (uint64_t{1} << 50)) - (int64_t{1} << 49);
    int64_t step = 1 + static_cast<int64_t>(rng() % 60000);
    double v = static_cast<double>(rng() % 1000);
    for (size_t i = 0; i < n; ++i) {
      s[i].t = t;
      switch (ts_kind) {
        case 0: t += step; break;
        case 1: t += step + static_cast<int64_t>(rng() % 7); break;
        case 2: t += 1 + static_cast<int64_t>(rng() % (uint64_t{1} << (rng() % 40))); break;
        default: t += 1 + static_cast<int64_t>(rng() % 3); break;
      }
      switch (val_kind) {
        case 0: s[i].v = v; break;
        case 1: s[i].v = v; v += static_cast<double>(rng() % 10); break;
        case 2: s[i].v = std::bit_cast<double>(rng()); break;
        case 3: s[i].v = static_cast<double>(rng() % 100) / 10.0; break;
        case 4: {
          const double pick[] = {StaleNaN(), -0.0, 0.0, INFINITY, -INFINITY, NAN, v};
          s[i].v = pick[rng() % 7];
          break;
        }
        case 5: s[i].v = std::sin(static_cast<double>(i) / 10) * 1e6; break;
        default: {  // 2-decimal values with a few specials: decimal exceptions
          const double pick[] = {StaleNaN(), -0.0, INFINITY, NAN, 0.1 + 0.2};
          s[i].v = rng() % 20 == 0 ? pick[rng() % 5] : static_cast<double>(rng() % 10000) / 100;
          break;
        }
      }
    }
    SCOPED_TRACE(testing::Message() << "iteration " << iter << " n=" << n);
    ExpectRoundTrip(s);
    if (HasFatalFailure() || HasNonfatalFailure()) return;
  }
}

TEST(ChunkTest, SeekNeverGoesBackwards) {
  std::vector<Sample> s = Regular(10, 100, 10, 0, 1);  // t = 100, 110, ..., 190
  s[5].t = 151;                                         // make it delta-of-delta too
  for (bool irregular : {false, true}) {
    std::vector<Sample> in = s;
    if (!irregular) in[5].t = 150;
    std::string chunk = Encode(in);
    ChunkIterator it(chunk);
    // Before the first Next(): starts from the beginning.
    ASSERT_TRUE(it.Seek(kMin));
    EXPECT_EQ(it.At().t, 100);
    ASSERT_TRUE(it.Seek(100));
    EXPECT_EQ(it.At().t, 100);
    ASSERT_TRUE(it.Seek(125));
    EXPECT_EQ(it.At().t, 130);
    EXPECT_EQ(it.At().v, 3);
    // Backwards: stays put.
    ASSERT_TRUE(it.Seek(101));
    EXPECT_EQ(it.At().t, 130);
    ASSERT_TRUE(it.Next());
    EXPECT_EQ(it.At().t, 140);
    ASSERT_TRUE(it.Seek(in[5].t));
    EXPECT_EQ(it.At().t, in[5].t);
    ASSERT_TRUE(it.Seek(190));
    EXPECT_EQ(it.At().t, 190);
    EXPECT_FALSE(it.Next());
    EXPECT_FALSE(it.Seek(0));
    EXPECT_TRUE(it.status().ok()) << it.status();

    // Past the end.
    it.Reset(chunk);
    EXPECT_FALSE(it.Seek(191));
    EXPECT_FALSE(it.Next());
    EXPECT_TRUE(it.status().ok());
    it.Reset(chunk);
    ASSERT_TRUE(it.Next());
    EXPECT_FALSE(it.Seek(kMax));
    EXPECT_TRUE(it.status().ok());
  }
}

TEST(ChunkTest, ResetReusesTheIterator) {
  std::string a = Encode(Regular(3, 0, 5, 1, 1));
  std::string b = Encode({{7, 9}, {8, 10}, {20, 11}, {21, -1}});
  ChunkIterator it(a);
  ASSERT_TRUE(it.Next());
  it.Reset(b);
  std::vector<Sample> got;
  while (it.Next()) got.push_back(it.At());
  EXPECT_TRUE(it.status().ok());
  EXPECT_EQ(got, (std::vector<Sample>{{7, 9}, {8, 10}, {20, 11}, {21, -1}}));
  it.Reset("garbage");
  EXPECT_FALSE(it.Next());
  EXPECT_EQ(it.status().code(), absl::StatusCode::kDataLoss);
  it.Reset(a);
  EXPECT_TRUE(it.Next());
  EXPECT_TRUE(it.status().ok());
}

std::vector<std::vector<Sample>> CorpusForCorruption() {
  std::mt19937_64 rng(99);
  std::vector<std::vector<Sample>> corpus;
  corpus.push_back({{kT0, 1}});
  corpus.push_back(Regular(120, kT0, 15000, 1, 0));
  corpus.push_back(Regular(120, kT0, 15000, 1, 2.5));
  corpus.push_back(JitteredCounter(120, rng));
  corpus.push_back({{kMin, StaleNaN()}, {kMin + 1, -0.0}, {0, INFINITY}, {kMax, NAN}});
  std::vector<Sample> noise = JitteredCounter(50, rng);
  for (Sample& s : noise) s.v = std::bit_cast<double>(rng());
  corpus.push_back(noise);
  // The integer-column encodings: packed timestamps, decimals with exceptions, float bits.
  std::vector<Sample> dec = MakeShape(Shape::kIntCounterWithReset, rng, 60);
  dec[3].v = StaleNaN();
  dec[40].v = -0.0;
  dec[41].t += 15000;  // a gap: an exception among the timestamp deltas
  for (size_t i = 42; i < dec.size(); ++i) dec[i].t += 15000;
  corpus.push_back(dec);
  corpus.push_back(MakeShape(Shape::kGauge2Decimals, rng, 40));
  corpus.push_back(MakeShape(Shape::kFullNoiseGauge, rng, 30));
  corpus.push_back(MakeShape(Shape::kMemoryGauge, rng, 30));
  return corpus;
}

TEST(ChunkTest, EveryTruncationIsDataLoss) {
  for (const std::vector<Sample>& samples : CorpusForCorruption()) {
    std::string chunk = Encode(samples);
    for (size_t len = 0; len < chunk.size(); ++len) {
      std::string cut = chunk.substr(0, len);  // own buffer, so ASan would see over-reads
      Decoded d = Decode(cut);
      EXPECT_EQ(d.status.code(), absl::StatusCode::kDataLoss) << "prefix " << len;
      // Whatever came out before the error is a prefix of the truth.
      ASSERT_LE(d.samples.size(), samples.size());
      for (size_t i = 0; i < d.samples.size(); ++i) EXPECT_EQ(d.samples[i], samples[i]);
    }
    // An extra byte at the end is caught too: a constant column is exactly 8 bytes and a bit
    // stream may not end with a whole unread byte.
    Decoded d = Decode(chunk + '\0');
    EXPECT_EQ(d.status.code(), absl::StatusCode::kDataLoss);
  }
}

// Corrupt bytes either decode to a well-formed sequence or end with DataLoss; never a crash.
void CheckCorrupt(const std::string& bytes) {
  Decoded d = Decode(bytes);
  if (!d.status.ok()) {
    ASSERT_EQ(d.status.code(), absl::StatusCode::kDataLoss) << d.status;
    return;
  }
  absl::StatusOr<ChunkInfo> info = ReadChunkInfo(bytes);
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(d.samples.size(), info->num_samples);
  EXPECT_EQ(d.samples.front().t, info->min_time_ms);
  EXPECT_EQ(d.samples.back().t, info->max_time_ms);
  for (size_t i = 1; i < d.samples.size(); ++i) {
    ASSERT_LT(d.samples[i - 1].t, d.samples[i].t);
  }
  // Seek on the same bytes agrees.
  ChunkIterator it(bytes);
  ASSERT_TRUE(it.Seek(d.samples.back().t));
  EXPECT_EQ(it.At(), d.samples.back());
}

TEST(ChunkTest, BitFlipsAndRandomBytesNeverCrash) {
  std::mt19937_64 rng(12345);
  for (const std::vector<Sample>& samples : CorpusForCorruption()) {
    std::string chunk = Encode(samples);
    // Every single-bit flip.
    for (size_t bit = 0; bit < chunk.size() * 8; ++bit) {
      std::string c = chunk;
      c[bit / 8] ^= static_cast<char>(1 << (bit % 8));
      CheckCorrupt(c);
      if (HasFatalFailure()) return;
    }
    // Random multi-byte damage.
    for (int i = 0; i < 500; ++i) {
      std::string c = chunk;
      int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) c[rng() % c.size()] = static_cast<char>(rng());
      CheckCorrupt(c);
      if (HasFatalFailure()) return;
    }
  }
  // Random garbage of every small length.
  for (int i = 0; i < 3000; ++i) {
    std::string c(rng() % 40, '\0');
    for (char& ch : c) ch = static_cast<char>(rng());
    if (!c.empty() && rng() % 2) c[0] = 1;  // get past the version byte
    CheckCorrupt(c);
    if (HasFatalFailure()) return;
  }
}

// Builds a header by hand: version 1, n, zigzag min, span, encodings, ts_len.
std::string Header(uint64_t n, int64_t min_t, uint64_t span, uint8_t ts_enc, uint8_t val_enc,
                   uint64_t ts_len) {
  std::string h(1, '\x01');
  internal::PutVarint64(&h, n);
  internal::PutVarint64(&h, internal::ZigZagEncode(min_t));
  internal::PutVarint64(&h, span);
  h.push_back(static_cast<char>(ts_enc));
  h.push_back(static_cast<char>(val_enc));
  internal::PutVarint64(&h, ts_len);
  return h;
}

void ExpectDataLoss(const std::string& bytes, std::string_view what) {
  Decoded d = Decode(bytes);
  EXPECT_EQ(d.status.code(), absl::StatusCode::kDataLoss) << what << ": " << d.status;
  EXPECT_NE(d.status.message().find(std::string(what)), std::string::npos) << d.status;
}

TEST(ChunkTest, HeaderFieldsAreCheckedAgainstLimits) {
  const std::string eight(8, '\0');
  // Sanity: the hand-built header decodes when it is right.
  Decoded ok = Decode(Header(3, 10, 20, 2, 2, 0) + eight);
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.samples, (std::vector<Sample>{{10, 0}, {20, 0}, {30, 0}}));

  std::string v2 = Header(3, 10, 20, 2, 2, 0) + eight;
  v2[0] = 2;
  ExpectDataLoss(v2, "version");
  ExpectDataLoss(Header(0, 10, 0, 2, 2, 0) + eight, "sample count");
  ExpectDataLoss(Header(kMaxSamplesPerChunk + 1, 10, 1 << 20, 2, 2, 0) + eight, "sample count");
  ExpectDataLoss(Header(3, 10, 20, 4, 2, 0) + eight, "unknown timestamp encoding");
  ExpectDataLoss(Header(3, 10, 20, 0, 2, 0) + eight, "unknown timestamp encoding");
  ExpectDataLoss(Header(3, 10, 20, 2, 0, 0) + eight, "unknown value encoding");
  ExpectDataLoss(Header(3, 10, 20, 2, 5, 0) + eight, "unknown value encoding");
  ExpectDataLoss(Header(3, 10, 20, 3, 2, 1) + "\x01" + eight, "packed timestamp column too short");
  ExpectDataLoss(Header(3, 10, 20, 2, 3, 0) + "\x00\x00\x00", "value column too short");
  ExpectDataLoss(Header(3, 10, 20, 2, 4, 0) + "\x00\x00\x00", "value column too short");
  ExpectDataLoss(Header(3, kMax - 5, 20, 2, 2, 0) + eight, "overflows");
  ExpectDataLoss(Header(3, 10, 1, 2, 2, 0) + eight, "span too short");
  ExpectDataLoss(Header(1, 10, 1, 2, 2, 0) + eight, "one sample");
  ExpectDataLoss(Header(3, 10, 21, 2, 2, 0) + eight, "irregular");
  ExpectDataLoss(Header(3, 10, 20, 2, 2, 1) + eight, "not empty");
  ExpectDataLoss(Header(3, 10, 20, 1, 2, 100) + eight, "past the end");
  ExpectDataLoss(Header(3, 10, 20, 2, 2, 0) + eight + "x", "8 bytes");
  ExpectDataLoss(Header(3, 10, 20, 2, 1, 0) + eight, "value column too short");
  // An over-long varint.
  ExpectDataLoss(std::string("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 11), "sample count");
}

TEST(ChunkTest, CorruptColumnsAreDataLoss) {
  // A '10' (reuse window) before any window was set.
  std::string col;
  {
    internal::BitWriter w(&col);
    w.WriteBits(0, 64);
    w.WriteBits(0b10, 2);
    w.WriteBits(0, 6);
    w.Finish();
  }
  ExpectDataLoss(Header(2, 0, 1, 2, 1, 0) + col, "reused before");
  // A window of 40 leading + 40 meaningful bits.
  col.clear();
  {
    internal::BitWriter w(&col);
    w.WriteBits(0, 64);
    w.WriteBits(0b11, 2);
    w.WriteBits(40, 6);
    w.WriteBits(39, 6);
    w.WriteBits(0, 40);
    w.Finish();
  }
  ExpectDataLoss(Header(2, 0, 1, 2, 1, 0) + col, "wider than 64");
  // Delta-of-delta whose timestamps stop before the max time: deltas 1, 1 but span 5.
  std::string ts;
  {
    internal::BitWriter w(&ts);
    w.WriteBits(0b10, 2);
    w.WriteBits(1, 5);
    w.WriteBit(false);
    w.Finish();
  }
  ExpectDataLoss(Header(3, 0, 5, 1, 2, ts.size()) + ts + std::string(8, '\0'), "max time");
  // A zero delta (timestamps not increasing): dod = 0 from d[0] = 0, span 2 for 3 samples.
  ts.clear();
  {
    internal::BitWriter w(&ts);
    w.WriteBit(false);
    w.WriteBit(false);
    w.Finish();
  }
  ExpectDataLoss(Header(3, 0, 2, 1, 2, ts.size()) + ts + std::string(8, '\0'), "not increasing");
  // Delta beyond the max time.
  ts.clear();
  {
    internal::BitWriter w(&ts);
    w.WriteBits(0b110, 3);
    w.WriteBits(60, 12);
    w.WriteBit(false);
    w.Finish();
  }
  ExpectDataLoss(Header(3, 0, 5, 1, 2, ts.size()) + ts + std::string(8, '\0'), "not increasing");
}

TEST(BitStreamTest, WidthsRoundTrip) {
  std::mt19937_64 rng(3);
  std::vector<std::pair<uint64_t, int>> written;
  std::string buf;
  internal::BitWriter w(&buf);
  for (int i = 0; i < 5000; ++i) {
    int n = static_cast<int>(rng() % 65);
    uint64_t v = n == 64 ? rng() : (rng() & ((uint64_t{1} << n) - 1));
    w.WriteBits(v, n);
    written.push_back({v, n});
  }
  w.Finish();
  internal::BitReader r(buf);
  for (auto [v, n] : written) {
    uint64_t got;
    ASSERT_TRUE(r.ReadBits(n, &got));
    ASSERT_EQ(got, v) << n;
  }
  EXPECT_LT(r.remaining_bits(), 8u);
  uint64_t got;
  EXPECT_FALSE(r.ReadBits(8, &got));
}

TEST(BitStreamTest, VarintsAndZigZag) {
  for (int64_t v : {kMin, kMin + 1, int64_t{-1}, int64_t{0}, int64_t{1}, kT0, kMax}) {
    EXPECT_EQ(internal::ZigZagDecode(internal::ZigZagEncode(v)), v);
    std::string buf;
    internal::PutVarint64(&buf, internal::ZigZagEncode(v));
    std::string_view in = buf;
    uint64_t got;
    ASSERT_TRUE(internal::GetVarint64(&in, &got));
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(internal::ZigZagDecode(got), v);
    std::string_view cut(buf.data(), buf.size() - 1);
    EXPECT_FALSE(internal::GetVarint64(&cut, &got));
  }
  EXPECT_EQ(internal::ZigZagEncode(-1), 1u);
  EXPECT_EQ(internal::ZigZagEncode(1), 2u);
}

}  // namespace
}  // namespace tidemark
