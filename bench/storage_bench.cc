// Storage microbenchmarks: head append through the public API (DB, Appender) and postings
// intersection (series selection by label matchers), on real DBs in temporary directories.
//
//   build/bench/storage_bench                                   # everything (~1 min)
//   build/bench/storage_bench --benchmark_filter=BM_HeadAppend
//   build/bench/storage_bench --benchmark_filter='BM_Postings/.*/postings'
//
// Head append: commits of 2,000 samples (a remote-write request) of Kubernetes-like series of
// 9-10 labels. `existing`: every series is in the head already (10,000 series per thread, one
// sample each per scrape round, open chunks staggered so that seals are spread evenly as in a
// steady state); `new`: every sample creates its series (series lookup miss, index keys, 10
// postings). Concurrent cases run one appender per thread on disjoint series, as remote-write
// connections do. items_per_second is samples/s over wall time (all threads together),
// s_per_sample its inverse.
//
// Postings: 100,000 series (20 namespaces x 100 pods x 5 containers x 10 cAdvisor metrics, 10
// labels each), built once per process and reopened so that the index is in SST files. Three
// ways to select, per selector: `postings` the index lookup and intersection alone (ids, before
// matchers that match the empty string), `match` Querier::LabelValues with the matchers (postings
// + each series' labels read and checked, no samples), `select` Querier::Select (the same plus
// each series' samples: one sealed chunk of 4). items_per_second is series/s, `series` the
// number of series selected.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/db.h"
#include "storage/db_impl.h"  // postings alone: internal::SelectPostings on the DB's RocksDB
#include "storage/index.h"
#include "storage/labels.h"
#include "storage/matcher.h"

namespace tidemark {
namespace {

constexpr int64_t kStep = 15'000;
constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int kSamplesPerCommit = 2'000;

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::abort();
  }
}

// A temporary directory with a DB in it, removed when destroyed.
class TempDb {
 public:
  explicit TempDb(SyncPolicy sync) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "storage_bench.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir_ = tmpl;
    options_.path = (dir_ / "data").string();
    options_.sync = sync;
    options_.retention_ms = 0;
    Open();
  }
  ~TempDb() {
    if (db_ != nullptr) (void)db_->Close();
    db_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempDb(const TempDb&) = delete;
  TempDb& operator=(const TempDb&) = delete;

  DB& db() { return *db_; }
  // Closes (sealing the head, flushing every column family) and opens again.
  void Reopen() {
    Check(db_->Close(), "Close");
    db_.reset();
    Open();
  }

 private:
  void Open() {
    absl::StatusOr<std::unique_ptr<DB>> db = DB::Open(options_);
    Check(db.status(), "DB::Open");
    db_ = *std::move(db);
  }

  std::filesystem::path dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

// One fixture alive at a time (the benchmarks of one kind run one after another), so a DB is
// removed before the next is built. Threads of one run share it; the first to ask builds it.
struct Fixture {
  virtual ~Fixture() = default;
  std::string key;
};

// Destroyed by ResetFixture() at the end of main: at static destruction RocksDB's own statics
// may be gone already.
std::mutex fixture_mu;
Fixture* fixture = nullptr;

void ResetFixture() {
  std::lock_guard<std::mutex> lock(fixture_mu);
  delete fixture;
  fixture = nullptr;
}

template <typename F, typename Build>
F& GetFixture(const std::string& key, Build build) {
  std::lock_guard<std::mutex> lock(fixture_mu);
  if (fixture == nullptr || fixture->key != key) {
    delete fixture;
    fixture = nullptr;
    fixture = build().release();
    fixture->key = key;
  }
  return static_cast<F&>(*fixture);
}

// ---------------------------------------------------------------------------------------------
// Head append.

struct PodMetric {
  const char* name;
  const char* extra_name;  // nullptr: no extra label
  const char* extra_value;
};

// A pod's 20 series, as an application's /metrics page plus cAdvisor would give them.
constexpr PodMetric kPodMetrics[] = {
    {"http_requests_total", "code", "200"},
    {"http_requests_total", "code", "404"},
    {"http_requests_total", "code", "500"},
    {"http_requests_total", "code", "503"},
    {"http_request_duration_seconds_bucket", "le", "0.05"},
    {"http_request_duration_seconds_bucket", "le", "0.1"},
    {"http_request_duration_seconds_bucket", "le", "0.25"},
    {"http_request_duration_seconds_bucket", "le", "0.5"},
    {"http_request_duration_seconds_bucket", "le", "1"},
    {"http_request_duration_seconds_bucket", "le", "2.5"},
    {"http_request_duration_seconds_bucket", "le", "+Inf"},
    {"http_request_duration_seconds_sum", nullptr, nullptr},
    {"http_request_duration_seconds_count", nullptr, nullptr},
    {"container_cpu_usage_seconds_total", "cpu", "total"},
    {"container_memory_working_set_bytes", nullptr, nullptr},
    {"kube_pod_container_resource_requests", "resource", "cpu"},
    {"kube_pod_container_resource_requests", "resource", "memory"},
    {"app_load_average", nullptr, nullptr},
    {"app_gc_pause_ewma_seconds", nullptr, nullptr},
    {"up", nullptr, nullptr},
};
constexpr int kSeriesPerPod = sizeof(kPodMetrics) / sizeof(kPodMetrics[0]);

std::string Base36(uint64_t x, size_t width) {
  std::string s(width, '0');
  for (size_t i = width; i-- > 0; x /= 36) s[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[x % 36];
  return s;
}

// The labels of series `metric` of the pod with unique number `pod`: __name__, container,
// endpoint, instance, job, namespace, node, pod, service and the metric's own label.
Labels PodSeries(uint64_t pod, int metric) {
  const PodMetric& m = kPodMetrics[metric];
  const uint64_t deployment = pod % 61;
  std::vector<Label> l = {
      {"__name__", m.name},
      {"container", "app"},
      {"endpoint", "http-metrics"},
      {"instance", "10." + std::to_string((pod >> 16) & 255) + "." +
                       std::to_string((pod >> 8) & 255) + "." + std::to_string(pod & 255) +
                       ":8080"},
      {"job", "kubernetes-pods"},
      {"namespace", "ns-" + std::to_string(pod % 20)},
      {"node", "node-" + std::to_string(pod % 40)},
      {"pod", "svc-" + std::to_string(deployment) + "-7d9f8c6b5-" + Base36(pod, 6)},
      {"service", "svc-" + std::to_string(deployment)},
  };
  if (m.extra_name != nullptr) l.push_back({m.extra_name, m.extra_value});
  return Labels::FromUnsorted(std::move(l));
}

constexpr int kMaxThreads = 4;
constexpr int kSeriesPerThread = 10'000;  // 500 pods: 5 requests per scrape round
constexpr int kChunkSamples = 120;        // Options::max_samples_per_chunk

// One thread's series and where its scrape rounds are.
struct Partition {
  std::vector<Labels> series;
  std::vector<double> values;
  size_t cursor = 0;  // next series to append
  int64_t t = kT0;    // timestamp of the current round
};

struct ExistingFixture : Fixture {
  explicit ExistingFixture(SyncPolicy sync) : temp(sync) {
    for (int p = 0; p < kMaxThreads; ++p) {
      Partition& part = parts[p];
      for (int i = 0; i < kSeriesPerThread; ++i) {
        part.series.push_back(PodSeries(static_cast<uint64_t>(p) * 100'000 + i / kSeriesPerPod,
                                        i % kSeriesPerPod));
        part.values.push_back(0);
      }
    }
    // Series i has (i % 120) + 1 samples in its open chunk before the measured rounds start,
    // so that its chunks are sealed at a different round from its neighbours'.
    std::unique_ptr<Appender> app = temp.db().NewAppender(kDefaultTenant);
    for (int back = kChunkSamples - 1; back >= 0; --back) {
      const int64_t t = kT0 - (back + 1) * kStep;
      for (Partition& part : parts) {
        for (size_t i = 0; i < part.series.size(); ++i) {
          if (static_cast<int>(i % kChunkSamples) < back) continue;
          Check(app->Append(part.series[i], t, part.values[i] += 1), "Append");
          if (app->pending() >= 50'000) Check(app->Commit(), "Commit");
        }
      }
    }
    Check(app->Commit(), "Commit");
    Check(temp.db().Compact(), "Compact");
  }
  TempDb temp;
  std::array<Partition, kMaxThreads> parts;
};

void SetAppendCounters(benchmark::State& state) {
  const double samples = static_cast<double>(state.iterations()) * kSamplesPerCommit;
  state.SetItemsProcessed(static_cast<int64_t>(samples));
  state.counters["s_per_sample"] =
      benchmark::Counter(samples, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Each iteration: one commit of 2,000 samples of series already in the head.
void BM_HeadAppendExisting(benchmark::State& state, SyncPolicy sync) {
  const std::string key =
      std::string("existing/") + (sync == SyncPolicy::kAlways ? "always" : "never");
  ExistingFixture& f = GetFixture<ExistingFixture>(
      key, [sync] { return std::make_unique<ExistingFixture>(sync); });
  // The server compacts every 30 s: release the WAL of the previous run, outside the timing
  // (the other threads wait at the start of the loop).
  if (state.thread_index() == 0) Check(f.temp.db().Compact(), "Compact");
  Partition& part = f.parts[state.thread_index()];
  std::unique_ptr<Appender> app = f.temp.db().NewAppender(kDefaultTenant);
  for (auto _ : state) {
    for (int n = 0; n < kSamplesPerCommit; ++n) {
      const size_t i = part.cursor;
      part.values[i] += static_cast<double>(1 + (i & 7));
      absl::Status s = app->Append(part.series[i], part.t, part.values[i]);
      if (!s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
      if (++part.cursor == part.series.size()) {
        part.cursor = 0;
        part.t += kStep;
      }
    }
    if (absl::Status s = app->Commit(); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  SetAppendCounters(state);
}

struct NewSeriesFixture : Fixture {
  explicit NewSeriesFixture(SyncPolicy sync) : temp(sync) {}
  TempDb temp;
  std::array<uint64_t, kMaxThreads> next_pod = {};
};

// Each iteration: one commit of 2,000 samples of 2,000 series never seen (100 new pods).
void BM_HeadAppendNew(benchmark::State& state, SyncPolicy sync) {
  const std::string key = std::string("new/") + (sync == SyncPolicy::kAlways ? "always" : "never");
  NewSeriesFixture& f = GetFixture<NewSeriesFixture>(
      key, [sync] { return std::make_unique<NewSeriesFixture>(sync); });
  const int thread = state.thread_index();
  uint64_t& next_pod = f.next_pod[thread];
  std::unique_ptr<Appender> app = f.temp.db().NewAppender(kDefaultTenant);
  std::vector<Labels> batch;
  batch.reserve(kSamplesPerCommit);
  for (auto _ : state) {
    state.PauseTiming();  // the labels a decoder would have built
    batch.clear();
    const int64_t t = kT0 + static_cast<int64_t>(next_pod / 100) * kStep;
    for (int n = 0; n < kSamplesPerCommit; n += kSeriesPerPod) {
      const uint64_t pod = (static_cast<uint64_t>(thread) << 32) + next_pod++;
      for (int m = 0; m < kSeriesPerPod; ++m) batch.push_back(PodSeries(pod, m));
    }
    state.ResumeTiming();
    for (const Labels& labels : batch) {
      absl::Status s = app->Append(labels, t, 1);
      if (!s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
    }
    if (absl::Status s = app->Commit(); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return;
    }
  }
  SetAppendCounters(state);
  state.counters["head_series"] = static_cast<double>(f.temp.db().GetStats().head_series);
}

// ---------------------------------------------------------------------------------------------
// Postings.

constexpr int kNamespaces = 20;
constexpr int kPodsPerNamespace = 100;
constexpr const char* kContainers[] = {"app", "sidecar", "istio-proxy", "log-shipper", "POD"};
constexpr const char* kCadvisorMetrics[] = {
    "container_cpu_usage_seconds_total",     "container_memory_working_set_bytes",
    "container_memory_rss",                  "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total", "container_fs_reads_bytes_total",
    "container_fs_writes_bytes_total",       "container_cpu_cfs_throttled_periods_total",
    "container_spec_cpu_shares",             "container_last_seen",
};
constexpr int kPostingsSamples = 4;

std::string CadvisorPod(int pod) {
  return "app-" + std::to_string(pod / 4 % 37) + "-5d8f7c9b6-" + Base36(pod * 7919ULL, 5);
}

struct PostingsFixture : Fixture {
  PostingsFixture() : temp(SyncPolicy::kNever) {
    std::vector<Labels> series;
    for (int ns = 0; ns < kNamespaces; ++ns) {
      for (int k = 0; k < kPodsPerNamespace; ++k) {
        const int pod = ns * kPodsPerNamespace + k;
        const int node = pod % 50;
        for (const char* container : kContainers) {
          for (const char* metric : kCadvisorMetrics) {
            series.push_back(Labels::FromUnsorted({
                {"__name__", metric},
                {"container", container},
                {"endpoint", "https-metrics"},
                {"instance", "10.0." + std::to_string(node) + ".1:10250"},
                {"job", "kubelet"},
                {"metrics_path", "/metrics/cadvisor"},
                {"namespace", "ns-" + std::to_string(ns)},
                {"node", "node-" + std::to_string(node)},
                {"pod", CadvisorPod(pod)},
                {"service", "kubelet"},
            }));
          }
        }
      }
    }
    std::unique_ptr<Appender> app = temp.db().NewAppender(kDefaultTenant);
    for (int s = 0; s < kPostingsSamples; ++s) {
      for (size_t i = 0; i < series.size(); ++i) {
        Check(app->Append(series[i], kT0 + s * kStep, static_cast<double>(i + s)), "Append");
        if (app->pending() >= 50'000) Check(app->Commit(), "Commit");
      }
    }
    Check(app->Commit(), "Commit");
    Check(temp.db().Compact(), "Compact");
    temp.Reopen();  // the index in SST files, the samples in sealed chunks
  }
  TempDb temp;
};

PostingsFixture& Postings() {
  return GetFixture<PostingsFixture>("postings", [] { return std::make_unique<PostingsFixture>(); });
}

struct MatcherSpec {
  MatchType type;
  const char* name;
  std::string value;
};

struct Selector {
  const char* name;
  std::vector<MatcherSpec> matchers;
};

std::vector<Selector> Selectors() {
  const std::string pod = CadvisorPod(1234);
  return {
      // 50 series: 5 containers x 10 metrics of one pod.
      {"rare_eq", {{MatchType::kEqual, "pod", pod}}},
      // 5 series: a 10,000-series metric AND the pod.
      {"rare_and_metric",
       {{MatchType::kEqual, "__name__", "container_cpu_usage_seconds_total"},
        {MatchType::kEqual, "pod", pod}}},
      // 50 series: the pod AND a label every series has (100,000 postings).
      {"rare_and_job", {{MatchType::kEqual, "job", "kubelet"}, {MatchType::kEqual, "pod", pod}}},
      // 1,000 series: a metric AND 2 of 20 namespaces by regex.
      {"eq_regex",
       {{MatchType::kEqual, "__name__", "container_memory_working_set_bytes"},
        {MatchType::kRegexMatch, "namespace", "ns-(3|7)"}}},
      // 8,000 series: a metric without the pause container (!= matches "": checked per series).
      {"eq_neg",
       {{MatchType::kEqual, "__name__", "container_cpu_usage_seconds_total"},
        {MatchType::kNotEqual, "container", "POD"}}},
      // 10,000 series: one metric name.
      {"metric_10k", {{MatchType::kEqual, "__name__", "container_cpu_usage_seconds_total"}}},
  };
}

std::vector<LabelMatcher> MakeMatchers(const Selector& sel) {
  std::vector<LabelMatcher> out;
  for (const MatcherSpec& m : sel.matchers) {
    absl::StatusOr<LabelMatcher> lm = LabelMatcher::Create(m.type, m.name, m.value);
    Check(lm.status(), "LabelMatcher::Create");
    out.push_back(*std::move(lm));
  }
  return out;
}

enum class SelectMode { kPostings, kMatch, kSelect };

void BM_Postings(benchmark::State& state, Selector sel, SelectMode mode) {
  PostingsFixture& f = Postings();
  const std::vector<LabelMatcher> matchers = MakeMatchers(sel);
  const int64_t mint = kT0 - 3600 * 1000, maxt = kT0 + 3600 * 1000;
  auto* impl = static_cast<internal::DBImpl*>(&f.temp.db());
  const internal::PostingsSource src{impl->rocks(), impl->postings_cf()};
  const std::optional<uint32_t> tenant = impl->FindTenant(kDefaultTenant);
  if (!tenant.has_value()) {
    state.SkipWithError("no tenant");
    return;
  }
  size_t series = 0;
  for (auto _ : state) {
    switch (mode) {
      case SelectMode::kPostings: {
        absl::StatusOr<std::vector<uint64_t>> ids =
            internal::SelectPostings(src, *tenant, mint, maxt, matchers);
        if (!ids.ok()) {
          state.SkipWithError(ids.status().ToString().c_str());
          return;
        }
        series = ids->size();
        benchmark::DoNotOptimize(ids->data());
        break;
      }
      case SelectMode::kMatch:
      case SelectMode::kSelect: {
        absl::StatusOr<std::unique_ptr<Querier>> q =
            f.temp.db().NewQuerier(kDefaultTenant, mint, maxt);
        if (!q.ok()) {
          state.SkipWithError(q.status().ToString().c_str());
          return;
        }
        if (mode == SelectMode::kMatch) {
          absl::StatusOr<std::vector<std::string>> values =
              (*q)->LabelValues("container", matchers);
          if (!values.ok()) {
            state.SkipWithError(values.status().ToString().c_str());
            return;
          }
          benchmark::DoNotOptimize(values->data());
        } else {
          absl::StatusOr<std::vector<Series>> result =
              (*q)->Select(matchers, SelectHints{mint, maxt});
          if (!result.ok()) {
            state.SkipWithError(result.status().ToString().c_str());
            return;
          }
          series = result->size();
          benchmark::DoNotOptimize(result->data());
        }
        break;
      }
    }
  }
  if (mode == SelectMode::kMatch) {
    // LabelValues returns values, not series: count the series once, outside the timing.
    absl::StatusOr<std::unique_ptr<Querier>> q = f.temp.db().NewQuerier(kDefaultTenant, mint, maxt);
    Check(q.status(), "NewQuerier");
    absl::StatusOr<std::vector<Series>> result = (*q)->Select(matchers, SelectHints{mint, maxt});
    Check(result.status(), "Select");
    series = result->size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * series));
  state.counters["series"] = static_cast<double>(series);
}

void RegisterAll() {
  using benchmark::RegisterBenchmark;
  for (SyncPolicy sync : {SyncPolicy::kNever, SyncPolicy::kAlways}) {
    const std::string suffix = sync == SyncPolicy::kAlways ? "fsync_always" : "fsync_never";
    auto* b = RegisterBenchmark(("BM_HeadAppend/existing/" + suffix).c_str(),
                                BM_HeadAppendExisting, sync);
    b->UseRealTime()->Unit(benchmark::kMicrosecond)->Threads(1);
    if (sync == SyncPolicy::kNever) b->Threads(2);
    b->Threads(4);
  }
  RegisterBenchmark("BM_HeadAppend/new/fsync_never", BM_HeadAppendNew, SyncPolicy::kNever)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond)
      ->Threads(1)
      ->Threads(2);
  const std::pair<const char*, SelectMode> modes[] = {{"postings", SelectMode::kPostings},
                                                      {"match", SelectMode::kMatch},
                                                      {"select", SelectMode::kSelect}};
  for (const Selector& sel : Selectors()) {
    for (const auto& [mode_name, mode] : modes) {
      RegisterBenchmark((std::string("BM_Postings/") + sel.name + "/" + mode_name).c_str(),
                        BM_Postings, sel, mode)
          ->Unit(benchmark::kMicrosecond);
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
  tidemark::ResetFixture();
  benchmark::Shutdown();
  return 0;
}
