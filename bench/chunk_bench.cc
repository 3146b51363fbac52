// Chunk codec microbenchmarks: encode and decode time per sample, and bytes per sample, for
// the shapes of data a Prometheus scrape produces.
//
//   build/bench/chunk_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "storage/chunk.h"

namespace tidemark {
namespace {

enum Shape : int {
  kConstantRegular = 0,  // up{} : 1 every 15 s
  kCounterRegular = 1,   // a counter increasing by small integers, every 15 s
  kCounterJitter = 2,    // the same with a few ms of scrape jitter
  kGaugeJitter = 3,      // a float gauge with 2 decimals
  kRandomBits = 4,       // incompressible values
};

std::vector<Sample> MakeSamples(int shape, size_t n) {
  std::mt19937_64 rng(42);
  std::vector<Sample> s(n);
  double v = 1000;
  for (size_t i = 0; i < n; ++i) {
    int64_t t = 1700000000000 + static_cast<int64_t>(i) * 15000;
    if (shape == kCounterJitter || shape == kGaugeJitter) t += static_cast<int64_t>(rng() % 7) - 3;
    s[i].t = t;
    switch (shape) {
      case kConstantRegular: s[i].v = 1; break;
      case kCounterRegular:
      case kCounterJitter: s[i].v = v; v += static_cast<double>(rng() % 6); break;
      case kGaugeJitter: s[i].v = std::round(50 + 20 * std::sin(i / 7.0) * 100) / 100; break;
      default: s[i].v = std::bit_cast<double>(rng()); break;
    }
  }
  return s;
}

const char* ShapeName(int shape) {
  switch (shape) {
    case kConstantRegular: return "constant_regular";
    case kCounterRegular: return "counter_regular";
    case kCounterJitter: return "counter_jitter";
    case kGaugeJitter: return "gauge_jitter";
    default: return "random_bits";
  }
}

void BM_Encode(benchmark::State& state) {
  const int shape = static_cast<int>(state.range(0));
  const std::vector<Sample> samples = MakeSamples(shape, static_cast<size_t>(state.range(1)));
  std::string out;
  for (auto _ : state) {
    out.clear();
    absl::Status s = EncodeChunk(samples, &out);
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(ShapeName(shape));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * samples.size());
  state.counters["s_per_sample"] = benchmark::Counter(
      static_cast<double>(state.iterations() * samples.size()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["bytes/sample"] = static_cast<double>(out.size()) / samples.size();
}

void BM_Decode(benchmark::State& state) {
  const int shape = static_cast<int>(state.range(0));
  const std::vector<Sample> samples = MakeSamples(shape, static_cast<size_t>(state.range(1)));
  std::string chunk;
  if (!EncodeChunk(samples, &chunk).ok()) {
    state.SkipWithError("encode failed");
    return;
  }
  ChunkIterator it;
  for (auto _ : state) {
    it.Reset(chunk);
    double sum = 0;
    while (it.Next()) sum += it.At().v;
    benchmark::DoNotOptimize(sum);
    if (!it.status().ok()) state.SkipWithError("decode failed");
  }
  state.SetLabel(ShapeName(shape));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * samples.size());
  state.counters["s_per_sample"] = benchmark::Counter(
      static_cast<double>(state.iterations() * samples.size()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["bytes/sample"] = static_cast<double>(chunk.size()) / samples.size();
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int shape = kConstantRegular; shape <= kRandomBits; ++shape) {
    b->Args({shape, 120});
  }
  b->Args({kCounterJitter, 1000});
}

BENCHMARK(BM_Encode)->Apply(Shapes);
BENCHMARK(BM_Decode)->Apply(Shapes);

}  // namespace
}  // namespace tidemark

BENCHMARK_MAIN();
