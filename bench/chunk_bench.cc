// Chunk codec microbenchmarks: encode and decode time per sample, and bytes per sample, for
// the shapes of data a Prometheus scrape produces (the series of bench/loadgen.cc's pods, one
// shape at a time, plus a whole pod's mix).
//
//   build/bench/chunk_bench --benchmark_counters_tabular=true
//   build/bench/chunk_bench --benchmark_filter=BM_Encode   # bytes/sample per shape
#include <benchmark/benchmark.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "storage/chunk.h"

namespace tidemark {
namespace {

enum Shape : int {
  kConstantRegular = 0,   // up{} : 1 every 15 s
  kCounterRegular,        // a counter increasing by small integers, every 15 s
  kCounterJitter,         // the same with ±3 ms of scrape jitter
  kGaugeJitter,           // a smooth float gauge with 2 decimals
  kRandomBits,            // incompressible values
  kConstantJitter,        // a constant on ±2 ms jittered timestamps: the timestamp cost alone
  kIntCounterResets,      // http_requests_total: integer counter with a reset, ±2 ms jitter
  kConstantStep,          // a counter increasing by exactly 15 each scrape
  kGauge2Dec,             // app_load_average: random walk rounded to 2 decimals
  kMemGauge,              // container_memory_working_set_bytes: multiples of 4096
  kFloatCounterNoise,     // container_cpu_usage_seconds_total: full float noise, increasing
  kGaugeNoise,            // app_gc_pause_ewma_seconds: full float noise
  kHistogramBucket,       // a classic histogram bucket counter
  kGaugeStaleEnd,         // a 2-decimal gauge whose pod goes away: stale markers at the end
  kNumShapes,
};

constexpr int64_t kT0 = 1700000000000;

int64_t Jitter(std::mt19937_64& rng, int ms) {
  return static_cast<int64_t>(rng() % (2 * ms + 1)) - ms;
}

double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

std::vector<Sample> MakeSamples(int shape, size_t n, uint64_t seed = 0) {
  std::mt19937_64 rng(42 + shape + 1000 * seed);
  std::normal_distribution<double> normal(0, 1);
  std::vector<Sample> s(n);
  double v = 1000;
  double w = 0;
  const size_t reset_at = n / 3;
  for (size_t i = 0; i < n; ++i) {
    int64_t t = kT0 + static_cast<int64_t>(i) * 15000;
    switch (shape) {
      case kConstantRegular:
      case kCounterRegular:
      case kRandomBits:
        break;
      case kCounterJitter:
      case kGaugeJitter:
        t += Jitter(rng, 3);
        break;
      default:
        t += Jitter(rng, 2);
        break;
    }
    s[i].t = t;
    switch (shape) {
      case kConstantRegular:
      case kConstantJitter:
        s[i].v = 1;
        break;
      case kCounterRegular:
      case kCounterJitter:
        s[i].v = v;
        v += static_cast<double>(rng() % 6);
        break;
      case kGaugeJitter:
        s[i].v = std::round(50 + 20 * std::sin(i / 7.0) * 100) / 100;
        break;
      case kIntCounterResets:
        if (i == reset_at) v = 0;
        s[i].v = v;
        v += static_cast<double>(std::llround(4.5 * 15 * 0.7 * (0.7 + 0.6 * Uniform(rng))));
        break;
      case kConstantStep:
        s[i].v = v;
        v += 15;
        break;
      case kGauge2Dec:
      case kGaugeStaleEnd:
        if (i == 0) w = 0.5 + 2 * Uniform(rng);
        w = std::max(0.0, w + 0.08 * normal(rng));
        s[i].v = std::round(w * 100) / 100;
        if (shape == kGaugeStaleEnd && i + 3 >= n) s[i].v = StaleNaN();
        break;
      case kMemGauge:
        if (i == 0) v = 180 * 1024.0 * 1024.0;
        if (Uniform(rng) < 0.7) v = std::max(16.0 * 1024 * 1024, v + 4096.0 * std::round(normal(rng) * 60));
        s[i].v = v;
        break;
      case kFloatCounterNoise:
        if (i == 0) v = 0;
        v += 0.8 * 15 * (0.5 + Uniform(rng));
        s[i].v = v;
        break;
      case kGaugeNoise:
        if (i == 0) w = 0.0015;
        w = 0.9 * w + 0.1 * 0.001 * std::exp(0.5 * normal(rng));
        s[i].v = w;
        break;
      case kHistogramBucket:
        if (i == 0) v = 0;
        v += std::round(Uniform(rng) * 30);
        s[i].v = v;
        break;
      default:
        s[i].v = std::bit_cast<double>(rng());
        break;
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
    case kRandomBits: return "random_bits";
    case kConstantJitter: return "constant_jitter2ms";
    case kIntCounterResets: return "int_counter_resets";
    case kConstantStep: return "constant_step";
    case kGauge2Dec: return "gauge_2dec";
    case kMemGauge: return "mem_gauge_4096";
    case kFloatCounterNoise: return "float_counter_noise";
    case kGaugeNoise: return "gauge_noise";
    case kHistogramBucket: return "histogram_bucket";
    case kGaugeStaleEnd: return "gauge_stale_end";
    default: return "?";
  }
}

void BM_Encode(benchmark::State& state) {
  const int shape = static_cast<int>(state.range(0));
  const std::vector<Sample> samples = MakeSamples(shape, static_cast<size_t>(state.range(1)));
  // The encoder reuses the timestamp column of the chunk it encoded last when the timestamps
  // are the same (the series of one scrape target): alternating with a copy a millisecond later
  // measures a series on its own. BM_PodMix measures a pod's series together.
  std::vector<Sample> later = samples;
  for (Sample& x : later) ++x.t;
  std::string out;
  bool odd = false;
  for (auto _ : state) {
    out.clear();
    odd = !odd;
    absl::Status s = EncodeChunk(odd ? later : samples, &out);
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

// One loadgen pod: its 24 series (4 integer counters, a float counter, memory, a constant
// request, load average, a noisy gauge, up, 12 histogram buckets, the histogram's sum and
// count) in 120-sample chunks, all on the same jittered timestamps.
void BM_PodMix(benchmark::State& state) {
  const size_t n = 120;
  std::vector<std::vector<Sample>> series;
  auto add = [&](int shape, uint64_t seed) {
    std::vector<Sample> s = MakeSamples(shape, n, seed);
    // Same scrape timestamps for every series of the pod.
    std::vector<Sample> ts = MakeSamples(kConstantJitter, n);
    for (size_t i = 0; i < n; ++i) s[i].t = ts[i].t;
    series.push_back(std::move(s));
  };
  for (int i = 0; i < 4; ++i) add(kIntCounterResets, i);
  add(kFloatCounterNoise, 5);
  add(kMemGauge, 6);
  add(kConstantJitter, 7);
  add(kGauge2Dec, 8);
  add(kGaugeNoise, 9);
  add(kConstantJitter, 10);
  for (int i = 0; i < 12; ++i) add(kHistogramBucket, 11 + i);
  add(kFloatCounterNoise, 23);
  add(kHistogramBucket, 24);
  size_t bytes = 0, samples = 0;
  std::string out;
  for (auto _ : state) {
    bytes = samples = 0;
    for (const std::vector<Sample>& s : series) {
      out.clear();
      if (!EncodeChunk(s, &out).ok()) state.SkipWithError("encode failed");
      bytes += out.size();
      samples += s.size();
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel("pod_mix_24_series");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * samples);
  state.counters["bytes/sample"] = static_cast<double>(bytes) / samples;
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int shape = kConstantRegular; shape < kNumShapes; ++shape) b->Args({shape, 120});
  b->Args({kCounterJitter, 1000});
}

BENCHMARK(BM_Encode)->Apply(Shapes);
BENCHMARK(BM_Decode)->Apply(Shapes);
BENCHMARK(BM_PodMix);

}  // namespace
}  // namespace tidemark

BENCHMARK_MAIN();
