// loadgen: a deterministic, realistic remote-write 1.0 load for the side-by-side benchmark
// (bench/run.py). Two steps, so that every peer receives byte-identical requests and the
// generator's own CPU is not spent while a server is being measured:
//
//   loadgen generate --out=DIR [--series=10000] [--hours=6] [--interval-s=15]
//       [--connections=4] [--batch=2000] [--seed=42] [--end-ms=<now>] [--churn=0.2]
//       [--jitter-ms=2] [--sync-steps=20] [--churn-lifetime-min=30] [--churn-lifetime-max=120]
//     writes DIR/conn-<c>.bin (one file per connection) and DIR/manifest.json.
//
//   loadgen send --dir=DIR --url=http://127.0.0.1:9090/api/v1/write [--timeout-s=120]
//     sends every file over its own keep-alive connection, concurrently, and prints one JSON
//     line with what was sent and how long it took.
//
// The load models Kubernetes pods scraped every --interval-s. Each pod exposes 24 series:
//   http_requests_total{method,code}            4 integer counters (reset when the pod restarts)
//   container_cpu_usage_seconds_total           float counter with full float noise
//   container_memory_working_set_bytes          integer gauge (pages of 4096 bytes)
//   kube_pod_container_resource_requests        constant gauge
//   app_load_average                            gauge with 2 decimals
//   app_gc_pause_ewma_seconds                   gauge with full float noise
//   up                                          constant 1
//   http_request_duration_seconds_{bucket,sum,count}  classic histogram, 12 buckets incl. +Inf
// with labels namespace, pod (ReplicaSet hash + random suffix), container, node, job, instance.
// A --churn fraction of pod slots is replaced every --churn-lifetime-min .. --churn-lifetime-max
// minutes (30 .. 120 by default; each pod's lifetime is uniform in between): the old pod's series
// get a Prometheus stale marker and a new pod (new name, IP and maybe node) starts from zero.
// The manifest reports the distinct series (series_total), the series that replaced others
// (series_new, and per hour of the span) and the distinct series with samples in the last hour.
//
// Time is stepped for all series together (every step of every series before the next step),
// and the connections meet at a barrier every --sync-steps steps, so each peer sees data in
// time order across all series (Prometheus rejects samples older than its head allows).
// Series are partitioned by pod slot over the connections, which keeps per-series order.
//
// File format (per connection): records of [u32 little-endian length][snappy-compressed
// WriteRequest]; a record of length 0 is a barrier. Every file has the same number of barriers.
#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <numbers>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "httplib.h"
#include "ingest/proto/remote_write.pb.h"
#include "snappy.h"

namespace {

namespace prompb = tidemark::ingest::prompb;

constexpr int kSeriesPerPod = 24;
constexpr uint64_t kStaleNaNBits = 0x7ff0000000000002ULL;
constexpr double kBucketBounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                    0.5,   1,    2.5,   5,    10};  // then +Inf
constexpr int kBuckets = 12;

// ---- flags ----

using FlagMap = std::map<std::string, std::string>;

bool ParseFlags(int argc, char** argv, int first, FlagMap* kv) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    auto eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "bad argument " << a << " (want --name=value)\n";
      return false;
    }
    (*kv)[a.substr(2, eq - 2)] = a.substr(eq + 1);
  }
  return true;
}

int64_t IntFlag(const FlagMap& kv, const char* name, int64_t def) {
  auto it = kv.find(name);
  return it == kv.end() ? def : std::strtoll(it->second.c_str(), nullptr, 10);
}

double DoubleFlag(const FlagMap& kv, const char* name, double def) {
  auto it = kv.find(name);
  return it == kv.end() ? def : std::strtod(it->second.c_str(), nullptr);
}

std::string StringFlag(const FlagMap& kv, const char* name, const std::string& def = "") {
  auto it = kv.find(name);
  return it == kv.end() ? def : it->second;
}

// ---- deterministic randomness (same stream on every platform) ----

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(SplitMix(seed) | 1) {}
  uint64_t Next() {  // xorshift64*
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545f4914f6cdd1dULL;
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)
  int64_t Below(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }
  double Normal() {  // Box-Muller
    double u1 = Uniform();
    double u2 = Uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
  }

 private:
  uint64_t s_;
};

uint64_t Mix(uint64_t a, uint64_t b, uint64_t c = 0) {
  return SplitMix(a ^ SplitMix(b ^ SplitMix(c)));
}

// ---- the modelled cluster ----

const char* const kNamespaces[] = {"default",  "kube-system", "monitoring", "payments",
                                   "checkout", "search",      "auth",       "ingest",
                                   "frontend", "backend",     "data",       "ml-serving"};
const char* const kDeployments[] = {"api",     "web",       "worker",   "cache-proxy",
                                    "gateway", "scheduler", "notifier", "indexer",
                                    "billing", "session",   "render",   "exporter"};
constexpr char kPodAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";

std::string RandomName(Rng& rng, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(kPodAlphabet[rng.Below(sizeof(kPodAlphabet) - 1)]);
  return s;
}

struct Config {
  int64_t series = 10000;
  int64_t steps = 0;
  int64_t interval_ms = 15000;
  int64_t start_ms = 0;
  int connections = 4;
  int64_t batch = 2000;
  uint64_t seed = 42;
  double churn = 0.2;
  int64_t jitter_ms = 2;
  int64_t sync_steps = 20;
  int64_t churn_lifetime_min_ms = 30 * 60 * 1000;
  int64_t churn_lifetime_max_ms = 2 * 3600 * 1000;
  int64_t pods = 0;
  int64_t nodes = 0;
};

// One pod slot: a long-lived pod, or (if churning) a sequence of pods replacing each other.
class PodSlot {
 public:
  PodSlot(const Config& cfg, int64_t slot) : cfg_(cfg), slot_(slot) {
    Rng rng(Mix(cfg.seed, 1, slot));
    int64_t deployments = std::max<int64_t>(1, cfg.pods / 4);  // about 4 replicas each
    int64_t dep = rng.Below(deployments);
    Rng dep_rng(Mix(cfg.seed, 2, dep));
    ns_ = kNamespaces[dep_rng.Below(std::size(kNamespaces))];
    container_ = kDeployments[dep % std::size(kDeployments)];
    if (dep >= static_cast<int64_t>(std::size(kDeployments))) {
      container_ += "-" + std::to_string(dep / std::size(kDeployments));
    }
    rs_hash_ = RandomName(dep_rng, 9 + static_cast<int>(dep_rng.Below(2)));
    churning_ = rng.Uniform() < cfg.churn;
    restart_p_ = 1.0 / 4000;
    if (churning_) {
      lifetime_min_ = std::max<int64_t>(2, cfg.churn_lifetime_min_ms / cfg.interval_ms);
      lifetime_max_ =
          std::max<int64_t>(lifetime_min_ + 1, cfg.churn_lifetime_max_ms / cfg.interval_ms);
      // The first pod is already part way through its life.
      end_step_ = 1 + rng.Below(lifetime_max_);
    } else {
      end_step_ = INT64_MAX;
    }
    StartGeneration(0);
  }

  int64_t generations() const { return generation_ + 1; }
  int64_t generation() const { return generation_; }

  // Appends this slot's samples of step k to req; returns how many.
  int64_t AppendStep(int64_t k, prompb::WriteRequest* req) {
    int64_t n = 0;
    if (k == end_step_) {
      // The pod went away: stale markers at the scrape that no longer found it, then its
      // replacement starts from zero in the same scrape.
      int64_t t = Timestamp(k);
      double stale;
      std::memcpy(&stale, &kStaleNaNBits, sizeof stale);
      for (int j = 0; j < kSeriesPerPod; ++j) n += Add(req, j, t, stale);
      Rng life(Mix(cfg_.seed, 3 + (static_cast<uint64_t>(generation_) << 8), slot_));
      end_step_ = k + lifetime_min_ + life.Below(lifetime_max_ - lifetime_min_);
      StartGeneration(generation_ + 1);
    }
    int64_t t = Timestamp(k);
    Advance();
    for (int j = 0; j < kSeriesPerPod; ++j) n += Add(req, j, t, values_[j]);
    return n;
  }

 private:
  void StartGeneration(int64_t g) {
    generation_ = g;
    rng_ = Rng(Mix(cfg_.seed, 4 + static_cast<uint64_t>(g), slot_));
    std::string pod = container_ + "-" + rs_hash_ + "-" + RandomName(rng_, 5);
    std::string ip = "10." + std::to_string(rng_.Below(4)) + "." +
                     std::to_string(rng_.Below(256)) + "." + std::to_string(1 + rng_.Below(254));
    int64_t node = rng_.Below(cfg_.nodes);
    char node_name[64];
    std::snprintf(node_name, sizeof node_name, "ip-10-0-%d-%d.ec2.internal",
                  static_cast<int>(node / 200), static_cast<int>(10 + node % 200));
    offset_ms_ = rng_.Below(std::max<int64_t>(1, cfg_.interval_ms - 2 * cfg_.jitter_ms - 1));
    // Per-pod characteristics.
    req_rate_ = std::exp(1.5 + rng_.Normal());  // requests per second, lognormal
    latency_mu_ = std::log(0.03) + 0.8 * rng_.Normal();
    cores_ = 0.05 + 1.5 * rng_.Uniform();
    mem_ = (50 + rng_.Below(400)) * 1024.0 * 1024.0;
    static constexpr double kRequests[] = {0.1, 0.25, 0.5, 1, 2};
    request_cpu_ = kRequests[rng_.Below(std::size(kRequests))];
    load_ = 0.5 + 2 * rng_.Uniform();
    gc_ = 0.001 * (1 + rng_.Uniform());
    ResetCounters();

    // Labels, sorted by name, as Prometheus sends them.
    static const char* const kMethodCode[4][2] = {
        {"GET", "200"}, {"GET", "500"}, {"POST", "200"}, {"POST", "500"}};
    auto base = [&](const std::string& name) {
      return std::vector<std::pair<std::string, std::string>>{
          {"__name__", name}, {"container", container_}, {"instance", ip + ":8080"},
          {"job", "kubernetes-pods"}, {"namespace", ns_}, {"node", node_name}, {"pod", pod}};
    };
    labels_.clear();
    for (auto& mc : kMethodCode) {
      auto l = base("http_requests_total");
      l.push_back({"code", mc[1]});
      l.push_back({"method", mc[0]});
      labels_.push_back(std::move(l));
    }
    labels_.push_back(base("container_cpu_usage_seconds_total"));
    labels_.push_back(base("container_memory_working_set_bytes"));
    auto r = base("kube_pod_container_resource_requests");
    r.push_back({"resource", "cpu"});
    labels_.push_back(std::move(r));
    labels_.push_back(base("app_load_average"));
    labels_.push_back(base("app_gc_pause_ewma_seconds"));
    labels_.push_back(base("up"));
    for (int b = 0; b < kBuckets; ++b) {
      auto l = base("http_request_duration_seconds_bucket");
      char le[32];
      if (b + 1 < kBuckets) {
        std::snprintf(le, sizeof le, "%g", kBucketBounds[b]);
      } else {
        std::snprintf(le, sizeof le, "+Inf");
      }
      l.push_back({"le", le});
      labels_.push_back(std::move(l));
    }
    labels_.push_back(base("http_request_duration_seconds_sum"));
    labels_.push_back(base("http_request_duration_seconds_count"));
    for (auto& l : labels_) std::sort(l.begin(), l.end());
  }

  void ResetCounters() {
    for (double& c : counters_) c = 0;
    for (double& b : buckets_) b = 0;
    cpu_ = 0;
    hsum_ = 0;
  }

  int64_t Timestamp(int64_t k) const {
    int64_t jitter = 0;
    if (cfg_.jitter_ms > 0) {
      jitter = static_cast<int64_t>(Mix(cfg_.seed, slot_ * 7919 + 5, k) %
                                    static_cast<uint64_t>(2 * cfg_.jitter_ms + 1)) -
               cfg_.jitter_ms;
    }
    return cfg_.start_ms + k * cfg_.interval_ms + cfg_.jitter_ms + offset_ms_ + jitter;
  }

  void Advance() {
    if (rng_.Uniform() < restart_p_) ResetCounters();  // the container restarted
    double secs = cfg_.interval_ms / 1000.0;
    double n = req_rate_ * secs * (0.7 + 0.6 * rng_.Uniform());
    static constexpr double kShare[4] = {0.70, 0.004, 0.29, 0.006};
    int64_t total = 0;
    for (int i = 0; i < 4; ++i) {
      auto inc = static_cast<int64_t>(std::llround(n * kShare[i] * (0.8 + 0.4 * rng_.Uniform())));
      counters_[i] += static_cast<double>(inc);
      total += inc;
    }
    // Histogram of this step's requests: simulate up to 64 observations, scale the rest.
    int64_t sim = std::min<int64_t>(total, 64);
    double scale = sim > 0 ? static_cast<double>(total) / static_cast<double>(sim) : 0;
    double counts[kBuckets] = {0};
    double sum = 0;
    for (int64_t i = 0; i < sim; ++i) {
      double lat = std::exp(latency_mu_ + 0.7 * rng_.Normal());
      sum += lat;
      int b = 0;
      while (b + 1 < kBuckets && lat > kBucketBounds[b]) ++b;
      counts[b] += 1;
    }
    double cumulative = 0;
    for (int b = 0; b < kBuckets; ++b) {
      cumulative += std::round(counts[b] * scale);
      buckets_[b] += cumulative;  // cumulative over le, accumulated over time
    }
    hsum_ += sum * scale;
    cpu_ += cores_ * secs * (0.5 + rng_.Uniform());
    if (rng_.Uniform() < 0.7) {
      mem_ = std::max(16.0 * 1024 * 1024, mem_ + 4096.0 * std::round(rng_.Normal() * 60));
    }
    load_ = std::max(0.0, load_ + 0.08 * rng_.Normal());
    gc_ = 0.9 * gc_ + 0.1 * 0.001 * std::exp(0.5 * rng_.Normal());

    for (int i = 0; i < 4; ++i) values_[i] = counters_[i];
    values_[4] = cpu_;
    values_[5] = mem_;
    values_[6] = request_cpu_;
    values_[7] = std::round(load_ * 100) / 100;
    values_[8] = gc_;
    values_[9] = 1;
    for (int b = 0; b < kBuckets; ++b) values_[10 + b] = buckets_[b];
    values_[22] = hsum_;
    values_[23] = buckets_[kBuckets - 1];
  }

  int64_t Add(prompb::WriteRequest* req, int j, int64_t t, double v) {
    auto* ts = req->add_timeseries();
    for (const auto& [name, value] : labels_[j]) {
      auto* l = ts->add_labels();
      l->set_name(name);
      l->set_value(value);
    }
    auto* s = ts->add_samples();
    s->set_timestamp(t);
    s->set_value(v);
    return 1;
  }

  const Config& cfg_;
  int64_t slot_;
  std::string ns_, container_, rs_hash_;
  bool churning_ = false;
  double restart_p_ = 0;
  int64_t lifetime_min_ = 0, lifetime_max_ = 0;
  int64_t end_step_ = 0;
  int64_t generation_ = 0;
  Rng rng_{0};
  int64_t offset_ms_ = 0;
  double req_rate_ = 0, latency_mu_ = 0, cores_ = 0, mem_ = 0, request_cpu_ = 0, load_ = 0,
         gc_ = 0;
  double counters_[4] = {0};
  double buckets_[kBuckets] = {0};
  double cpu_ = 0, hsum_ = 0;
  double values_[kSeriesPerPod] = {0};
  std::vector<std::vector<std::pair<std::string, std::string>>> labels_;
};

struct ConnTotals {
  int64_t samples = 0;
  int64_t requests = 0;
  int64_t bytes = 0;
  int64_t generations = 0;
  int64_t generations_last_hour = 0;  // pods with a sample in the last hour of the span
  int64_t slots = 0;
};

void WriteRecord(std::ofstream& out, const std::string& data) {
  uint32_t len = static_cast<uint32_t>(data.size());
  unsigned char hdr[4] = {static_cast<unsigned char>(len), static_cast<unsigned char>(len >> 8),
                          static_cast<unsigned char>(len >> 16),
                          static_cast<unsigned char>(len >> 24)};
  out.write(reinterpret_cast<const char*>(hdr), 4);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

void GenerateConnection(const Config& cfg, int conn, const std::string& path, ConnTotals* out) {
  std::vector<std::unique_ptr<PodSlot>> slots;
  for (int64_t s = conn; s < cfg.pods; s += cfg.connections) {
    slots.push_back(std::make_unique<PodSlot>(cfg, s));
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) {
    std::cerr << "cannot write " << path << "\n";
    std::exit(1);
  }
  prompb::WriteRequest req;
  std::string raw, compressed;
  int64_t pending = 0;
  auto flush = [&] {
    if (pending == 0) return;
    req.SerializeToString(&raw);
    compressed.clear();
    snappy::Compress(raw.data(), raw.size(), &compressed);
    WriteRecord(file, compressed);
    out->requests++;
    out->bytes += static_cast<int64_t>(compressed.size());
    req.Clear();
    pending = 0;
  };
  if (conn == 0) {  // metric metadata, as Prometheus sends it once in a while
    static const std::pair<const char*, prompb::MetricMetadata::MetricType> kMeta[] = {
        {"http_requests_total", prompb::MetricMetadata::COUNTER},
        {"container_cpu_usage_seconds_total", prompb::MetricMetadata::COUNTER},
        {"container_memory_working_set_bytes", prompb::MetricMetadata::GAUGE},
        {"kube_pod_container_resource_requests", prompb::MetricMetadata::GAUGE},
        {"app_load_average", prompb::MetricMetadata::GAUGE},
        {"app_gc_pause_ewma_seconds", prompb::MetricMetadata::GAUGE},
        {"up", prompb::MetricMetadata::GAUGE},
        {"http_request_duration_seconds", prompb::MetricMetadata::HISTOGRAM}};
    for (const auto& [name, type] : kMeta) {
      auto* m = req.add_metadata();
      m->set_type(type);
      m->set_metric_family_name(name);
      m->set_help(std::string("Benchmark metric ") + name + ".");
    }
    pending = 1;
    flush();
  }
  // The last hour starts at this step; a pod alive when it starts (even if it only gets its
  // stale marker then) and every pod started later have samples in it.
  int64_t last_hour_step = std::max<int64_t>(0, cfg.steps - 3600 * 1000 / cfg.interval_ms);
  std::vector<int64_t> generation_at_last_hour(slots.size(), 0);
  for (int64_t k = 0; k < cfg.steps; ++k) {
    if (k == last_hour_step) {
      for (size_t i = 0; i < slots.size(); ++i) {
        generation_at_last_hour[i] = slots[i]->generation();
      }
    }
    for (auto& slot : slots) {
      int64_t n = slot->AppendStep(k, &req);
      pending += n;
      out->samples += n;
      if (pending >= cfg.batch) flush();
    }
    if ((k + 1) % cfg.sync_steps == 0 || k + 1 == cfg.steps) {
      flush();
      WriteRecord(file, std::string());  // barrier
    }
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    out->generations += slots[i]->generations();
    out->generations_last_hour += slots[i]->generations() - generation_at_last_hour[i];
  }
  out->slots = static_cast<int64_t>(slots.size());
  file.close();
  if (!file) {
    std::cerr << "error writing " << path << "\n";
    std::exit(1);
  }
}

int Generate(const FlagMap& kv) {
  Config cfg;
  std::string dir = StringFlag(kv, "out");
  if (dir.empty()) {
    std::cerr << "--out is required\n";
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  cfg.series = IntFlag(kv, "series", 10000);
  double hours = DoubleFlag(kv, "hours", 6);
  cfg.interval_ms = static_cast<int64_t>(DoubleFlag(kv, "interval-s", 15) * 1000);
  cfg.connections = static_cast<int>(IntFlag(kv, "connections", 4));
  cfg.batch = IntFlag(kv, "batch", 2000);
  cfg.seed = static_cast<uint64_t>(IntFlag(kv, "seed", 42));
  cfg.churn = DoubleFlag(kv, "churn", 0.2);
  cfg.jitter_ms = IntFlag(kv, "jitter-ms", 2);
  cfg.sync_steps = std::max<int64_t>(1, IntFlag(kv, "sync-steps", 20));
  double lifetime_min = DoubleFlag(kv, "churn-lifetime-min", 30);  // minutes
  double lifetime_max = DoubleFlag(kv, "churn-lifetime-max", 120);
  cfg.churn_lifetime_min_ms = static_cast<int64_t>(lifetime_min * 60 * 1000);
  cfg.churn_lifetime_max_ms = static_cast<int64_t>(lifetime_max * 60 * 1000);
  if (cfg.interval_ms <= 0 || cfg.connections < 1 || cfg.batch < 1 || cfg.series < 1 ||
      cfg.jitter_ms * 2 + 2 >= cfg.interval_ms) {
    std::cerr << "bad --interval-s, --connections, --batch, --series or --jitter-ms\n";
    return 2;
  }
  if (!(lifetime_min > 0) || !(lifetime_max > lifetime_min)) {
    std::cerr << "want 0 < --churn-lifetime-min < --churn-lifetime-max (minutes)\n";
    return 2;
  }
  cfg.steps = static_cast<int64_t>(hours * 3600 * 1000) / cfg.interval_ms;
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  int64_t end_ms = IntFlag(kv, "end-ms", now - now % cfg.interval_ms);
  cfg.start_ms = end_ms - cfg.steps * cfg.interval_ms;
  cfg.pods = (cfg.series + kSeriesPerPod - 1) / kSeriesPerPod;
  cfg.nodes = std::max<int64_t>(3, cfg.pods / 30);

  std::vector<ConnTotals> totals(static_cast<size_t>(cfg.connections));
  std::vector<std::thread> threads;
  unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  for (int c0 = 0; c0 < cfg.connections; c0 += static_cast<int>(workers)) {
    for (int c = c0; c < std::min<int>(cfg.connections, c0 + static_cast<int>(workers)); ++c) {
      threads.emplace_back(GenerateConnection, std::cref(cfg), c,
                           dir + "/conn-" + std::to_string(c) + ".bin", &totals[c]);
    }
    for (auto& t : threads) t.join();
    threads.clear();
  }
  ConnTotals sum;
  for (const auto& t : totals) {
    sum.samples += t.samples;
    sum.requests += t.requests;
    sum.bytes += t.bytes;
    sum.generations += t.generations;
    sum.generations_last_hour += t.generations_last_hour;
  }
  int64_t series_new = (sum.generations - cfg.pods) * kSeriesPerPod;
  double span_hours = static_cast<double>(cfg.steps * cfg.interval_ms) / 3.6e6;
  std::ostringstream m;
  m << "{\"series_active\": " << cfg.pods * kSeriesPerPod
    << ", \"series_total\": " << sum.generations * kSeriesPerPod << ", \"pods\": " << cfg.pods
    << ", \"samples\": " << sum.samples << ", \"requests\": " << sum.requests
    << ", \"request_bytes\": " << sum.bytes << ", \"steps\": " << cfg.steps
    << ", \"interval_ms\": " << cfg.interval_ms << ", \"start_ms\": " << cfg.start_ms
    << ", \"end_ms\": " << end_ms << ", \"connections\": " << cfg.connections
    << ", \"batch\": " << cfg.batch << ", \"seed\": " << cfg.seed << ", \"churn\": " << cfg.churn
    << ", \"jitter_ms\": " << cfg.jitter_ms << ", \"churn_lifetime_min_minutes\": " << lifetime_min
    << ", \"churn_lifetime_max_minutes\": " << lifetime_max << ", \"series_new\": " << series_new
    << ", \"series_new_per_hour\": "
    << (span_hours > 0 ? std::llround(static_cast<double>(series_new) / span_hours) : 0)
    << ", \"series_last_hour\": " << sum.generations_last_hour * kSeriesPerPod << "}";
  std::ofstream(dir + "/manifest.json") << m.str() << "\n";
  std::cout << m.str() << std::endl;
  return 0;
}

// ---- send ----

bool SplitUrl(const std::string& url, std::string* base, std::string* path) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return false;
  auto slash = url.find('/', scheme + 3);
  *base = url.substr(0, slash);
  *path = slash == std::string::npos ? "/" : url.substr(slash);
  return true;
}

struct SendTotals {
  int64_t requests = 0;
  int64_t rejected = 0;  // 4xx answers (kept going)
  int64_t retries = 0;
  bool failed = false;
  std::string error;
};

void SendConnection(const std::string& base, const std::string& path, const std::string& file,
                    int timeout_s, std::barrier<>* sync, SendTotals* out) {
  std::ifstream in(file, std::ios::binary);
  httplib::Client client(base);
  client.set_keep_alive(true);
  // As Go's (Prometheus's) client: the body goes out without waiting for the ACK of the
  // headers, which a server's delayed ACK holds back ~40 ms on a kept-alive connection.
  client.set_tcp_nodelay(true);
  client.set_connection_timeout(10);
  client.set_read_timeout(timeout_s);
  client.set_write_timeout(timeout_s);
  httplib::Headers headers = {{"Content-Encoding", "snappy"},
                              {"X-Prometheus-Remote-Write-Version", "0.1.0"},
                              {"User-Agent", "tidemark-loadgen"}};
  std::string body;
  unsigned char hdr[4];
  while (in.read(reinterpret_cast<char*>(hdr), 4)) {
    uint32_t len = hdr[0] | (hdr[1] << 8) | (hdr[2] << 16) | (static_cast<uint32_t>(hdr[3]) << 24);
    if (len == 0) {
      sync->arrive_and_wait();
      continue;
    }
    body.resize(len);
    in.read(body.data(), len);
    if (out->failed) continue;  // keep meeting the barriers so the others finish
    for (int attempt = 0;; ++attempt) {
      auto res = client.Post(path, headers, body, "application/x-protobuf");
      if (res && res->status / 100 == 2) break;
      bool retry = !res || res->status >= 500 || res->status == 429;
      if (!retry) {
        if (out->rejected < 3) {
          std::cerr << "HTTP " << res->status << ": " << res->body.substr(0, 300) << "\n";
        }
        out->rejected++;
        break;
      }
      if (attempt >= 20) {
        out->failed = true;
        out->error = res ? "HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 300)
                         : httplib::to_string(res.error());
        break;
      }
      out->retries++;
      std::this_thread::sleep_for(std::chrono::milliseconds(50 * (attempt + 1)));
    }
    out->requests++;
  }
}

int Send(const FlagMap& kv) {
  std::string dir = StringFlag(kv, "dir");
  std::string url = StringFlag(kv, "url");
  std::string base, path;
  if (dir.empty() || !SplitUrl(url, &base, &path)) {
    std::cerr << "--dir and --url=http://host:port/path are required\n";
    return 2;
  }
  int timeout_s = static_cast<int>(IntFlag(kv, "timeout-s", 120));
  std::vector<std::string> files;
  for (int c = 0;; ++c) {
    std::string f = dir + "/conn-" + std::to_string(c) + ".bin";
    if (!std::ifstream(f).good()) break;
    files.push_back(f);
  }
  if (files.empty()) {
    std::cerr << "no " << dir << "/conn-0.bin: run `loadgen generate` first\n";
    return 2;
  }
  std::barrier<> sync(static_cast<std::ptrdiff_t>(files.size()));
  std::vector<SendTotals> totals(files.size());
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (size_t c = 0; c < files.size(); ++c) {
    threads.emplace_back(SendConnection, base, path, files[c], timeout_s, &sync, &totals[c]);
  }
  for (auto& t : threads) t.join();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  SendTotals sum;
  for (const auto& t : totals) {
    sum.requests += t.requests;
    sum.rejected += t.rejected;
    sum.retries += t.retries;
    if (t.failed && !sum.failed) {
      sum.failed = true;
      sum.error = t.error;
    }
  }
  std::string err;
  for (char ch : sum.error) {
    if (ch == '"' || ch == '\\') err.push_back('\\');
    if (ch >= 0x20) err.push_back(ch);
  }
  std::cout << "{\"requests\": " << sum.requests << ", \"rejected_requests\": " << sum.rejected
            << ", \"retries\": " << sum.retries << ", \"failed\": " << (sum.failed ? "true" : "false")
            << ", \"error\": \"" << err << "\", \"wall_seconds\": " << wall << "}" << std::endl;
  return sum.failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: loadgen generate|send --name=value ...\n";
    return 2;
  }
  FlagMap kv;
  if (!ParseFlags(argc, argv, 2, &kv)) return 2;
  std::string cmd = argv[1];
  if (cmd == "generate") return Generate(kv);
  if (cmd == "send") return Send(kv);
  std::cerr << "unknown command " << cmd << "\n";
  return 2;
}
