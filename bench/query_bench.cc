// PromQL engine microbenchmarks: the Grafana dashboard shapes as range queries (1 h at 15 s
// and 30 s steps) and instant queries, over an in-memory store (MemoryStorage) and over a real
// DB in a temporary directory. Both hold the same data, built once per process: 220 pods (20 of
// them replacing pods that stop two thirds of the way, with a stale marker) x 20 series, 3 h at
// 15 s with ±2 ms scrape jitter; about 4,000 series and 2.5 M samples.
//
//   build/bench/query_bench                                  # everything (~1 min + DB build)
//   build/bench/query_bench --benchmark_filter='mem/.*/range15s'
//
// Time per query is the figure; `series` is the number of series in the result (so a change
// that alters answers shows).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "query/engine.h"
#include "storage/db.h"
#include "storage/labels.h"
#include "storage/memory_querier.h"
#include "storage/sample.h"

namespace tidemark {
namespace {

constexpr int64_t kStep = 15'000;
constexpr int64_t kT0 = 1'700'000'000'000;  // data starts here
constexpr int64_t kSpan = 3 * 3600 * 1000;   // 3 h of data
constexpr int64_t kEnd = kT0 + kSpan;
constexpr int kPods = 200;
constexpr int kReplacements = 20;  // pods 9, 19, ... stop at 2/3; pods 200.. start there
constexpr int kNamespaces = 10;

struct GeneratedSeries {
  Labels labels;
  std::vector<Sample> samples;
};

double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Every series of the load, deterministic (fixed seed per pod).
std::vector<GeneratedSeries> Generate() {
  std::vector<GeneratedSeries> out;
  static const char* const kLe[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                    "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};
  static const char* const kCodes[] = {"200", "404", "500", "503"};
  const int64_t switch_at = kT0 + kSpan * 2 / 3;
  for (int pod = 0; pod < kPods + kReplacements; ++pod) {
    std::mt19937_64 rng(1000 + pod);
    int64_t from = kT0, to = kEnd;  // [from, to)
    bool stops = false;
    if (pod < kPods && pod % 10 == 9) {
      to = switch_at;
      stops = true;
    } else if (pod >= kPods) {
      from = switch_at;
    }
    std::string ns = "ns-" + std::to_string(pod % kNamespaces);
    std::string name = "api-" + std::to_string(pod % 37) + "-7d9f8c6b5-" + std::to_string(pod);
    std::string instance = "10.1." + std::to_string(pod / 250) + "." + std::to_string(pod % 250) +
                           ":8080";
    const int64_t offset = static_cast<int64_t>(rng() % kStep);
    auto make = [&](const char* metric, const char* extra_name, std::string extra_value) {
      std::vector<Label> l = {{"__name__", metric},
                              {"namespace", ns},
                              {"pod", name},
                              {"instance", instance},
                              {"job", "kubernetes-pods"}};
      if (extra_name != nullptr) l.push_back({extra_name, std::move(extra_value)});
      out.push_back({Labels::FromUnsorted(std::move(l)), {}});
    };
    size_t first = out.size();
    for (const char* code : kCodes) make("http_requests_total", "code", code);
    for (const char* le : kLe) make("http_request_duration_seconds_bucket", "le", le);
    make("container_cpu_usage_seconds_total", nullptr, "");
    make("container_memory_working_set_bytes", nullptr, "");
    out.push_back({Labels::FromUnsorted({{"__name__", "app_build_info"},
                                         {"instance", instance},
                                         {"job", "kubernetes-pods"},
                                         {"version", "v1." + std::to_string(pod % 4)}}),
                   {}});
    std::vector<double> counters(out.size() - first, 0);
    double memory = 2e8 + static_cast<double>(rng() % 100) * 1e6;
    for (int64_t t = from + offset; t < to; t += kStep) {
      int64_t ts = t + static_cast<int64_t>(rng() % 5) - 2;
      size_t i = first;
      for (int c = 0; c < 4; ++c, ++i) {
        counters[i - first] += std::floor(Uniform(rng) * (c == 0 ? 300 : 8));
        out[i].samples.push_back({ts, counters[i - first]});
      }
      // Histogram: cumulative bucket counts of this scrape's observations.
      double observed = std::floor(Uniform(rng) * 200);
      for (int b = 0; b < 12; ++b, ++i) {
        double share = b == 11 ? 1.0 : std::min(1.0, 0.05 * (b + 1) * (b + 1) / 6.0);
        counters[i - first] += std::floor(observed * share);
        out[i].samples.push_back({ts, counters[i - first]});
      }
      counters[i - first] += Uniform(rng) * 3;
      out[i++].samples.push_back({ts, counters[i - 1 - first]});
      memory += (Uniform(rng) < 0.3 ? 0 : std::floor((Uniform(rng) - 0.5) * 64) * 4096);
      out[i++].samples.push_back({ts, memory});
      out[i++].samples.push_back({ts, 1});
    }
    if (stops) {
      for (size_t i = first; i < out.size(); ++i) {
        out[i].samples.push_back({out[i].samples.back().t + kStep, StaleNaN()});
      }
    }
  }
  return out;
}

const std::vector<GeneratedSeries>& Data() {
  static const auto* const data = new std::vector<GeneratedSeries>(Generate());
  return *data;
}

MemoryStorage& Memory() {
  static MemoryStorage* const storage = [] {
    auto* s = new MemoryStorage();
    for (const GeneratedSeries& g : Data()) {
      if (absl::Status st = s->Add(g.labels, g.samples); !st.ok()) {
        std::fprintf(stderr, "MemoryStorage::Add: %s\n", st.ToString().c_str());
        std::abort();
      }
    }
    return s;
  }();
  return *storage;
}

// The DB lives in a temporary directory removed at exit.
struct TempDb {
  std::filesystem::path dir;
  std::unique_ptr<DB> db;
  std::unique_ptr<Queryable> queryable;
  ~TempDb() {
    queryable.reset();
    db.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Queryable& Database() {
  static std::unique_ptr<TempDb> temp = [] {
    auto owned = std::make_unique<TempDb>();
    TempDb& t = *owned;
    std::string tmpl = (std::filesystem::temp_directory_path() / "query_bench.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    t.dir = tmpl;
    Options options;
    options.path = (t.dir / "data").string();
    options.sync = SyncPolicy::kNever;
    options.retention_ms = 0;
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(options);
    if (!db.ok()) {
      std::fprintf(stderr, "DB::Open: %s\n", db.status().ToString().c_str());
      std::abort();
    }
    t.db = *std::move(db);
    // Appended in time order across series, 5 minutes at a time, as a scraper would.
    const std::vector<GeneratedSeries>& data = Data();
    std::vector<size_t> pos(data.size(), 0);
    std::unique_ptr<Appender> app = t.db->NewAppender(kDefaultTenant);
    for (int64_t until = kT0 + 300'000;; until += 300'000) {
      bool more = false;
      for (size_t i = 0; i < data.size(); ++i) {
        const std::vector<Sample>& s = data[i].samples;
        for (; pos[i] < s.size() && s[pos[i]].t < until; ++pos[i]) {
          if (absl::Status st = app->Append(data[i].labels, s[pos[i]].t, s[pos[i]].v);
              !st.ok()) {
            std::fprintf(stderr, "Append: %s\n", st.ToString().c_str());
            std::abort();
          }
        }
        more = more || pos[i] < s.size();
      }
      if (absl::Status st = app->Commit(); !st.ok()) {
        std::fprintf(stderr, "Commit: %s\n", st.ToString().c_str());
        std::abort();
      }
      if (!more) break;
    }
    if (absl::Status st = t.db->Compact(); !st.ok()) {
      std::fprintf(stderr, "Compact: %s\n", st.ToString().c_str());
      std::abort();
    }
    t.queryable = t.db->ForTenant(kDefaultTenant);
    return owned;
  }();
  return *temp->queryable;
}

struct QueryCase {
  const char* name;
  const char* expr;
};

constexpr QueryCase kQueries[] = {
    {"rate_sum_by", "sum by (namespace) (rate(http_requests_total[1m0s]))"},
    {"hist_p99",
     "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"},
    {"topk", "topk(10, sum by (pod) (rate(container_cpu_usage_seconds_total[5m])))"},
    {"group_left",
     "rate(http_requests_total[5m]) * on (instance) group_left (version) app_build_info"},
    {"selector", "container_memory_working_set_bytes{namespace=\"ns-3\"}"},
    {"avg_over_time", "avg by (namespace) (avg_over_time(container_memory_working_set_bytes[5m]))"},
};

enum class Mode { kRange15s, kRange30s, kInstant };

void RunQuery(benchmark::State& state, Queryable* (*store)(), const char* expr, Mode mode) {
  Queryable& data = *store();
  promql::Engine engine;
  const int64_t end = kEnd - 60'000;
  const int64_t start = end - 3600 * 1000;
  size_t series = 0;
  for (auto _ : state) {
    absl::StatusOr<promql::QueryResult> r =
        mode == Mode::kInstant
            ? engine.Instant(data, expr, end)
            : engine.Range(data, expr, start, end, mode == Mode::kRange15s ? 15'000 : 30'000);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
    if (const auto* m = std::get_if<promql::Matrix>(&r->value)) series = m->size();
    if (const auto* v = std::get_if<promql::Vector>(&r->value)) series = v->size();
    benchmark::DoNotOptimize(r->value);
  }
  state.counters["series"] = static_cast<double>(series);
}

Queryable* MemoryStore() { return &Memory(); }
Queryable* DatabaseStore() { return &Database(); }

void RegisterAll() {
  struct Store {
    const char* name;
    Queryable* (*get)();
  };
  const Store stores[] = {{"mem", &MemoryStore}, {"db", &DatabaseStore}};
  const std::pair<const char*, Mode> modes[] = {
      {"range15s", Mode::kRange15s}, {"range30s", Mode::kRange30s}, {"instant", Mode::kInstant}};
  for (const Store& store : stores) {
    for (const QueryCase& q : kQueries) {
      for (const auto& [mode_name, mode] : modes) {
        std::string name = std::string("BM_Query/") + store.name + "/" + q.name + "/" + mode_name;
        benchmark::RegisterBenchmark(name.c_str(), RunQuery, store.get, q.expr, mode)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

}  // namespace
}  // namespace tidemark

int main(int argc, char** argv) {
  tidemark::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
