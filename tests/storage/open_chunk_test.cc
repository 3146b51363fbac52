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
  // Plain samples would take 16 bytes each (1,920 bytes). Random 2-decimal values are the worst
  // case for XOR coding (most mantissa bits change), still well below plain.
  EXPECT_LT(counter.MemoryBytes(), 120 * 4);
  EXPECT_LT(gauge.MemoryBytes(), 120 * 12);
}

}  // namespace
}  // namespace tidemark::internal
