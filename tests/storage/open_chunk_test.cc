// OpenChunk: the encoded open head chunk behaves as a sorted vector of samples, bit for bit, and
// is much smaller than one.
#include "storage/open_chunk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace tidemark::internal {
namespace {

void ExpectSame(const OpenChunk& chunk, const std::vector<Sample>& model) {
  std::vector<Sample> got;
  chunk.Decode(&got);
  ASSERT_EQ(got.size(), model.size());
  ASSERT_EQ(chunk.size(), model.size());
  for (size_t i = 0; i < model.size(); ++i) {
    ASSERT_EQ(got[i].t, model[i].t) << i;
    ASSERT_EQ(std::bit_cast<uint64_t>(got[i].v), std::bit_cast<uint64_t>(model[i].v)) << i;
  }
  if (!model.empty()) {
    EXPECT_EQ(chunk.front(), model.front());
    EXPECT_EQ(chunk.back(), model.back());
  }
}

double Value(std::mt19937_64& rng, int kind, int i) {
  switch (kind) {
    case 0: return static_cast<double>(i / 3);                       // slow counter
    case 1: return std::round(std::uniform_real_distribution<>(0, 100)(rng) * 100) / 100;
    case 2: return std::uniform_real_distribution<>(-1e300, 1e300)(rng);  // full noise
    case 3: return std::bit_cast<double>(rng());                       // any bits, NaNs too
    default: return i % 7 == 0 ? StaleNaN() : 42.0;
  }
}

TEST(OpenChunkTest, AppendDecodeRoundTripsEveryKindOfValueAndTime) {
  std::mt19937_64 rng(1);
  for (int kind = 0; kind < 5; ++kind) {
    OpenChunk chunk;
    std::vector<Sample> model;
    int64_t t = kind == 3 ? std::numeric_limits<int64_t>::min() + 5 : 1'700'000'000'000;
    for (int i = 0; i < 300; ++i) {
      // Regular, jittered, and now and then a huge jump.
      int64_t step = 15000 + static_cast<int64_t>(rng() % 5) - 2;
      if (i % 50 == 49) step = int64_t{1} << 40;
      if (kind == 4) step = 1;
      t += step;
      const Sample s{t, Value(rng, kind, i)};
      chunk.Append(s);
      model.push_back(s);
    }
    ExpectSame(chunk, model);
  }
}

TEST(OpenChunkTest, EditsMatchASortedVector) {
  std::mt19937_64 rng(2);
  OpenChunk chunk;
  std::vector<Sample> model;
  for (int op = 0; op < 3000; ++op) {
    const int64_t t = static_cast<int64_t>(rng() % 2000) * 10;
    const double v = Value(rng, static_cast<int>(rng() % 4), op);
    switch (rng() % 10) {
      case 0: {
        const int64_t to = t + static_cast<int64_t>(rng() % 300);
        chunk.EraseRange(t, to);
        std::erase_if(model, [&](const Sample& s) { return s.t >= t && s.t <= to; });
        break;
      }
      case 1:
        chunk.EraseThrough(t / 4);
        std::erase_if(model, [&](const Sample& s) { return s.t <= t / 4; });
        break;
      default: {
        auto it = std::lower_bound(model.begin(), model.end(), t,
                                   [](const Sample& a, int64_t x) { return a.t < x; });
        const bool fresh = it == model.end() || it->t != t;
        EXPECT_EQ(chunk.Insert({t, v}), fresh);
        if (fresh) model.insert(it, Sample{t, v});
      }
    }
    if (op % 100 == 0) ExpectSame(chunk, model);
  }
  ExpectSame(chunk, model);
  // Lookups and ranges.
  for (int i = 0; i < 200; ++i) {
    const int64_t t = static_cast<int64_t>(rng() % 2000) * 10;
    auto it = std::lower_bound(model.begin(), model.end(), t,
                               [](const Sample& a, int64_t x) { return a.t < x; });
    std::optional<Sample> found = chunk.Find(t);
    if (it != model.end() && it->t == t) {
      ASSERT_TRUE(found.has_value()) << t;
      EXPECT_EQ(*found, *it);
    } else {
      EXPECT_FALSE(found.has_value()) << t;
    }
    std::vector<Sample> got;
    chunk.CopyRange(t, t + 500, &got);
    std::vector<Sample> want;
    for (const Sample& s : model) {
      if (s.t >= t && s.t <= t + 500) want.push_back(s);
    }
    EXPECT_EQ(got, want) << t;
  }
  chunk.Clear();
  EXPECT_TRUE(chunk.empty());
  EXPECT_EQ(chunk.MemoryBytes(), 0);
}

TEST(OpenChunkTest, TypicalSeriesTakeAFewBytesPerSample) {
  // 120 samples at 15 s with ±2 ms jitter: a counter and a 2-decimal gauge.
  std::mt19937_64 rng(3);
  OpenChunk counter, gauge;
  int64_t t = 1'700'000'000'000;
  double c = 1000;
  for (int i = 0; i < 120; ++i) {
    t += 15000 + static_cast<int64_t>(rng() % 5) - 2;
    c += static_cast<double>(rng() % 50);
    counter.Append({t, c});
    gauge.Append({t, std::round(std::uniform_real_distribution<>(0, 100)(rng) * 100) / 100});
  }
  // Plain samples would take 16 bytes each (1,920 bytes). The counter is coded as integers
  // (7 bits of jittered time, 8 or 15 of change in the increment); random 2-decimal values are the worst case
  // for XOR coding (most mantissa bits change), still well below plain.
  EXPECT_LT(counter.MemoryBytes(), 270);  // as XOR it took 363 with this timestamp coding
  EXPECT_LT(gauge.MemoryBytes(), 120 * 12);
}

TEST(OpenChunkTest, IntegerChunksTurnToFloatsAtTheFirstOtherValue) {
  constexpr double kBig = 9007199254740991.0;  // 2^53 - 1: the largest integer coded as such
  const std::vector<double> ints = {0, -3, kBig, -kBig, 7, 7, 7, 1e15, 12};
  const std::vector<double> others = {-0.0, 9007199254740992.0, 0.5, StaleNaN(),
                                      std::numeric_limits<double>::infinity()};
  for (double other : others) {
    OpenChunk chunk;
    std::vector<Sample> model;
    int64_t t = 1000;
    for (double v : ints) model.push_back({t += 15000, v});
    for (const Sample& s : model) chunk.Append(s);
    ExpectSame(chunk, model);
    const int64_t int_bytes = chunk.MemoryBytes();
    model.push_back({t += 15000, other});
    chunk.Append(model.back());
    model.push_back({t += 15000, 3});  // an integer again: the chunk stays floats
    chunk.Append(model.back());
    ExpectSame(chunk, model);
    EXPECT_GT(chunk.MemoryBytes(), int_bytes);
    // Edits re-choose the coding from what is left.
    chunk.EraseRange(model[ints.size()].t, model[ints.size()].t);
    model.erase(model.begin() + static_cast<std::ptrdiff_t>(ints.size()));
    ExpectSame(chunk, model);
  }
}

// Bits written most significant first, as OpenChunk's stream holds them.
struct BitWriter {
  std::string bytes;
  uint64_t acc = 0;
  int n = 0;
  void Put(uint64_t v, int bits) {
    for (int i = bits - 1; i >= 0; --i) {
      acc = (acc << 1) | ((v >> i) & 1);
      if (++n == 8) {
        bytes.push_back(static_cast<char>(acc));
        acc = 0;
        n = 0;
      }
    }
  }
};

void PutVarintForTest(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

TEST(OpenChunkTest, ReadsAVersion1CheckpointStateAndGoesOnFromIt) {
  // Version 1 (XOR values, timestamp buckets 7/12/20): three samples of 1.0 at 0, 15000 and
  // 30003 ms. Deltas of deltas 15000 (`1110` + 20 bits) and 3 (zigzag 6: `10` + 7 bits), each
  // value equal to the previous one (`0`).
  BitWriter w;
  w.Put(0b1110, 4);
  w.Put(30000, 20);
  w.Put(0, 1);
  w.Put(0b10, 2);
  w.Put(6, 7);
  w.Put(0, 1);
  std::string state;
  PutVarintForTest(&state, 3);
  auto put_sample = [&state](int64_t t, double v) {
    PutVarintForTest(&state, static_cast<uint64_t>(t) << 1);
    const uint64_t bits = std::bit_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) state.push_back(static_cast<char>(bits >> (8 * i)));
  };
  put_sample(0, 1.0);
  put_sample(30003, 1.0);
  PutVarintForTest(&state, 15003 << 1);
  state.push_back(static_cast<char>(0xff));  // no value window yet
  state.push_back(0);
  state.push_back(static_cast<char>(w.n));
  PutVarintForTest(&state, w.acc);
  PutVarintForTest(&state, w.bytes.size());
  state += w.bytes;

  std::string_view in(state);
  OpenChunk chunk;
  ASSERT_TRUE(chunk.Restore(&in, 1));
  EXPECT_TRUE(in.empty());
  std::vector<Sample> model = {{0, 1.0}, {15000, 1.0}, {30003, 1.0}};
  ExpectSame(chunk, model);
  model.push_back({45001, 2.5});
  chunk.Append(model.back());
  ExpectSame(chunk, model);
  // Saved again, it is a version 2 state.
  std::string saved;
  chunk.Save(&saved);
  std::string_view again(saved);
  OpenChunk copy;
  ASSERT_TRUE(copy.Restore(&again, 2));
  ExpectSame(copy, model);
}

TEST(OpenChunkTest, SaveRestoreKeepsEitherCoding) {
  for (bool ints : {true, false}) {
    OpenChunk chunk;
    std::vector<Sample> model;
    for (int i = 0; i < 50; ++i) model.push_back({i * 15000 + i % 3, ints ? i * 7.0 : i * 0.1});
    for (const Sample& s : model) chunk.Append(s);
    std::string saved;
    chunk.Save(&saved);
    std::string_view in(saved);
    OpenChunk copy;
    ASSERT_TRUE(copy.Restore(&in, 2));
    EXPECT_TRUE(in.empty());
    model.push_back({50 * 15000, ints ? 350.0 : 5.0});
    copy.Append(model.back());  // the encoder state goes on where it was
    ExpectSame(copy, model);
  }
}

}  // namespace
}  // namespace tidemark::internal
