// Remote write 1.0 decode: libprotobuf (prompb::WriteRequest in an arena, every label copied
// into a std::string, as ingest did before) next to the in-place decoder of ingest/rw1_decode.h
// (string_views into the decoded body); then whole requests through HandleRemoteWrite.
//
// The request: 2,000 samples, 10 per series over 200 series of 10 Kubernetes-style labels
// (cAdvisor/kubelet metrics of pods), as one remote-write shard's batch.
//
//   remote_write_bench --benchmark_counters_tabular=true
// `time_per_sample` is CPU time per sample, bytes_per_second is over the decoded (uncompressed)
// protobuf, items_per_second is samples/s.
//
// Handle/* run HandleRemoteWrite on the snappy body: into a no-op appender (ingest CPU only) and
// into a real DB (fresh temporary directory, fsync off), each request 10 scrapes later than the
// one before on the same series. LibprotobufPath/* does what HandleRemoteWrite did before the
// in-place decoder (snappy, arena parse, labels moved out of the messages, validated, appended),
// for comparison in the same run.
#include <benchmark/benchmark.h>
#include <google/protobuf/arena.h>
#include <snappy.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ingest/proto/remote_write.pb.h"
#include "ingest/remote_write.h"
#include "ingest/rw1_decode.h"
#include "storage/appender.h"
#include "storage/db.h"
#include "storage/labels.h"

namespace tidemark::ingest {
namespace {

constexpr int kSeries = 200;
constexpr int kSamplesPerSeries = 10;
constexpr int kSamples = kSeries * kSamplesPerSeries;
constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kStepMs = 15'000;

class NoopAppender : public Appender {
 public:
  absl::Status Append(const Labels&, int64_t, double) override {
    ++pending_;
    return absl::OkStatus();
  }
  absl::Status Commit() override {
    pending_ = 0;
    return absl::OkStatus();
  }
  void Rollback() override { pending_ = 0; }
  size_t pending() const override { return pending_; }

 private:
  size_t pending_ = 0;
};

// The request of `request_index` (timestamps move on by kSamplesPerSeries steps per request).
prompb::WriteRequest MakeRequest(int64_t request_index) {
  static const char* const kMetrics[] = {
      "container_cpu_usage_seconds_total",      "container_memory_working_set_bytes",
      "container_network_receive_bytes_total",  "container_network_transmit_bytes_total",
      "container_fs_reads_bytes_total",         "container_fs_writes_bytes_total",
      "container_cpu_cfs_throttled_periods_total", "container_memory_rss",
      "container_spec_memory_limit_bytes",      "container_last_seen"};
  static const char* const kNamespaces[] = {"payments", "checkout", "monitoring", "kube-system"};
  prompb::WriteRequest req;
  for (int s = 0; s < kSeries; ++s) {
    const int pod = s / 10;
    auto* ts = req.add_timeseries();
    auto add = [&](const std::string& n, const std::string& v) {
      auto* l = ts->add_labels();
      l->set_name(n);
      l->set_value(v);
    };
    // Sorted by name, as Prometheus sends them.
    add("__name__", kMetrics[s % 10]);
    add("container", "app-" + std::to_string(pod % 7));
    add("endpoint", "https-metrics");
    add("instance", "10.42." + std::to_string(pod % 5) + ".17:10250");
    add("job", "kubelet");
    add("metrics_path", "/metrics/cadvisor");
    add("namespace", kNamespaces[pod % 4]);
    add("node", "ip-10-0-" + std::to_string(pod % 5) + "-17.eu-west-1.compute.internal");
    add("pod", std::string(kNamespaces[pod % 4]) + "-api-7d9f8b6c5-" +
                   std::to_string(10000 + pod * 7919 % 90000));
    add("service", "kubelet");
    for (int k = 0; k < kSamplesPerSeries; ++k) {
      auto* sample = ts->add_samples();
      const int64_t step = request_index * kSamplesPerSeries + k;
      sample->set_timestamp(kT0 + step * kStepMs);
      sample->set_value(static_cast<double>(s * 1000 + step) * 1.25);
    }
  }
  return req;
}

std::string Snappy(const std::string& raw) {
  std::string out;
  snappy::Compress(raw.data(), raw.size(), &out);
  return out;
}

void SetCounters(benchmark::State& state, size_t decoded_bytes) {
  state.SetItemsProcessed(state.iterations() * kSamples);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(decoded_bytes));
  state.counters["time_per_sample"] = benchmark::Counter(
      kSamples, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

const std::string& RawRequest() {
  static const std::string raw = MakeRequest(0).SerializeAsString();
  return raw;
}

// --- decode only ---

void BM_Decode_Libprotobuf(benchmark::State& state) {
  const std::string& raw = RawRequest();
  for (auto _ : state) {
    google::protobuf::Arena arena;
    auto* req = google::protobuf::Arena::CreateMessage<prompb::WriteRequest>(&arena);
    if (!req->ParseFromArray(raw.data(), static_cast<int>(raw.size()))) std::abort();
    benchmark::DoNotOptimize(req);
  }
  SetCounters(state, raw.size());
}
BENCHMARK(BM_Decode_Libprotobuf);

void BM_Decode_Rw1(benchmark::State& state) {
  const std::string& raw = RawRequest();
  for (auto _ : state) {
    internal::Rw1Request req;  // fresh per request, as HandleRemoteWrite does
    if (!internal::DecodeRw1WriteRequest(raw, &req).ok()) std::abort();
    benchmark::DoNotOptimize(req.samples.data());
  }
  SetCounters(state, raw.size());
}
BENCHMARK(BM_Decode_Rw1);

void BM_Decode_Rw1Reused(benchmark::State& state) {
  const std::string& raw = RawRequest();
  internal::Rw1Request req;  // arrays keep their capacity from request to request
  for (auto _ : state) {
    if (!internal::DecodeRw1WriteRequest(raw, &req).ok()) std::abort();
    benchmark::DoNotOptimize(req.samples.data());
  }
  SetCounters(state, raw.size());
}
BENCHMARK(BM_Decode_Rw1Reused);

// --- whole requests ---

// What HandleRemoteWrite did with libprotobuf (no exemplars or metadata in this request).
absl::Status LibprotobufPath(const std::string& body, Appender& appender) {
  size_t n = 0;
  if (!snappy::GetUncompressedLength(body.data(), body.size(), &n)) std::abort();
  std::string decoded(n, '\0');
  if (!snappy::RawUncompress(body.data(), body.size(), decoded.data())) std::abort();
  google::protobuf::Arena arena;
  auto* req = google::protobuf::Arena::CreateMessage<prompb::WriteRequest>(&arena);
  if (!req->ParseFromArray(decoded.data(), static_cast<int>(decoded.size()))) std::abort();
  std::vector<Label> raw;
  for (prompb::TimeSeries& ts : *req->mutable_timeseries()) {
    raw.clear();
    raw.reserve(ts.labels_size());
    for (prompb::Label& l : *ts.mutable_labels()) {
      raw.push_back(Label{std::move(*l.mutable_name()), std::move(*l.mutable_value())});
    }
    if (absl::Status s = Labels::Validate(raw); !s.ok()) return s;
    const Labels labels = Labels::FromSortedUnchecked(std::move(raw));
    for (const prompb::Sample& sample : ts.samples()) {
      if (absl::Status s = appender.Append(labels, sample.timestamp(), sample.value()); !s.ok()) {
        return s;
      }
    }
    raw = std::vector<Label>();
  }
  return appender.Commit();
}

// A DB in a fresh temporary directory, removed with it.
struct TempDb {
  std::filesystem::path dir;
  std::unique_ptr<DB> db;

  TempDb() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "remote_write_bench.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir = tmpl;
    Options options;
    options.path = (dir / "data").string();
    options.sync = SyncPolicy::kNever;
    options.retention_ms = 0;
    absl::StatusOr<std::unique_ptr<DB>> opened = DB::Open(options);
    if (!opened.ok()) {
      std::fprintf(stderr, "DB::Open: %s\n", opened.status().ToString().c_str());
      std::abort();
    }
    db = *std::move(opened);
  }
  ~TempDb() {
    db.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

// Runs `handle(body, appender)` once per iteration on requests that move on in time; the
// request is built and compressed with the timer paused. `into_db`: a real DB, else a no-op.
template <typename Handle>
void RunRequests(benchmark::State& state, bool into_db, Handle handle) {
  std::unique_ptr<TempDb> temp;
  std::unique_ptr<Appender> appender;
  if (into_db) {
    temp = std::make_unique<TempDb>();
    appender = temp->db->NewAppender(kDefaultTenant);
  } else {
    appender = std::make_unique<NoopAppender>();
  }
  prompb::WriteRequest req = MakeRequest(0);
  size_t decoded_bytes = 0;
  int64_t index = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (prompb::TimeSeries& ts : *req.mutable_timeseries()) {
      for (int k = 0; k < ts.samples_size(); ++k) {
        ts.mutable_samples(k)->set_timestamp(kT0 + (index * kSamplesPerSeries + k) * kStepMs);
      }
    }
    ++index;
    const std::string raw = req.SerializeAsString();
    decoded_bytes = raw.size();
    const std::string body = Snappy(raw);
    state.ResumeTiming();
    if (absl::Status s = handle(body, *appender); !s.ok()) {
      std::fprintf(stderr, "request %lld: %s\n", static_cast<long long>(index),
                   s.ToString().c_str());
      std::abort();
    }
  }
  SetCounters(state, decoded_bytes);
}

absl::Status ViaHandleRemoteWrite(const std::string& body, Appender& appender) {
  WriteResult r = HandleRemoteWrite(body, "snappy", WriteLimits{}, appender);
  if (r.status.ok() && r.samples_accepted != kSamples) std::abort();
  return r.status;
}

void BM_Handle_Noop(benchmark::State& state) { RunRequests(state, false, ViaHandleRemoteWrite); }
BENCHMARK(BM_Handle_Noop);
void BM_LibprotobufPath_Noop(benchmark::State& state) {
  RunRequests(state, false, LibprotobufPath);
}
BENCHMARK(BM_LibprotobufPath_Noop);
void BM_Handle_Db(benchmark::State& state) { RunRequests(state, true, ViaHandleRemoteWrite); }
BENCHMARK(BM_Handle_Db)->Unit(benchmark::kMicrosecond);
void BM_LibprotobufPath_Db(benchmark::State& state) { RunRequests(state, true, LibprotobufPath); }
BENCHMARK(BM_LibprotobufPath_Db)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tidemark::ingest

BENCHMARK_MAIN();
