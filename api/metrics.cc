#include "api/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

#ifndef TIDEMARK_VERSION
#define TIDEMARK_VERSION "0.0.0"
#endif
#ifndef TIDEMARK_REVISION
#define TIDEMARK_REVISION "unknown"
#endif
#ifndef TIDEMARK_BRANCH
#define TIDEMARK_BRANCH "unknown"
#endif

namespace tidemark::api {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return kBuckets;
}

}  // namespace

const BuildInfo& CurrentBuild() {
  static const BuildInfo kBuild = {TIDEMARK_VERSION, TIDEMARK_REVISION, TIDEMARK_BRANCH, "", __DATE__};
  return kBuild;
}

ServerMetrics::ServerMetrics(const BuildInfo& build)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  http_requests_ = &prometheus::BuildCounter()
                        .Name("tidemark_http_requests_total")
                        .Help("HTTP requests by handler and status code.")
                        .Register(r);
  http_duration_ = &prometheus::BuildHistogram()
                        .Name("tidemark_http_request_duration_seconds")
                        .Help("HTTP request latency by handler.")
                        .Register(r);
  query_duration_ = &prometheus::BuildHistogram()
                         .Name("tidemark_query_duration_seconds")
                         .Help("PromQL evaluation time by endpoint.")
                         .Register(r);
  appended_ = &prometheus::BuildCounter()
                   .Name("tidemark_samples_appended_total")
                   .Help("Samples committed to storage, by tenant.")
                   .Register(r);
  rejected_ = &prometheus::BuildCounter()
                   .Name("tidemark_samples_rejected_total")
                   .Help("Samples refused, by reason.")
                   .Register(r);
  remote_write_ = &prometheus::BuildCounter()
                       .Name("tidemark_remote_write_requests_total")
                       .Help("Remote write requests by status code.")
                       .Register(r);
  auto gauge = [&r](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
  };
  active_series_ = gauge("tidemark_active_series", "Series with an open head chunk.");
  series_ = gauge("tidemark_series", "Series known to the index (estimate).");
  head_series_ = gauge("tidemark_head_series", "Series held in the in-memory head.");
  head_chunks_ = gauge("tidemark_head_chunks", "Open chunks in the in-memory head.");
  head_samples_ = gauge("tidemark_head_samples", "Samples in the in-memory head.");
  wal_bytes_ = gauge("tidemark_wal_bytes", "Write-ahead log bytes not yet released.");
  head_checkpoints_ = gauge("tidemark_head_checkpoints",
                            "Head checkpoints written since the database was opened.");
  checkpoint_series_ = gauge("tidemark_head_checkpoint_series",
                             "Series in the head checkpoint last written or loaded.");
  storage_bytes_ = gauge("tidemark_storage_bytes", "Bytes of all RocksDB files.");
  ready_ = gauge("tidemark_ready", "1 once the database is open and recovered.");
  memory_budget_ = gauge("tidemark_memory_budget_bytes",
                         "Memory budget shared by the head, memtables and block cache.");
  block_cache_capacity_ = gauge("tidemark_block_cache_capacity_bytes",
                                "RocksDB block cache capacity: half the memory budget, less "
                                "what the head takes over its half, down to three eighths.");
  auto& memory = prometheus::BuildGauge()
                     .Name("tidemark_memory_bytes")
                     .Help("Estimated memory in use, by component.")
                     .Register(r);
  memory_head_ = &memory.Add({{"component", "head"}});
  memory_memtables_ = &memory.Add({{"component", "memtables"}});
  memory_block_cache_ = &memory.Add({{"component", "block_cache"}});
  memory_series_bounds_ = &memory.Add({{"component", "series_bounds"}});
  auto& head_parts = prometheus::BuildGauge()
                         .Name("tidemark_head_memory_bytes")
                         .Help("Parts of the head's estimated memory (tidemark_memory_bytes "
                               "component=\"head\"), by part.")
                         .Register(r);
  memory_head_chunks_ = &head_parts.Add({{"part", "open_chunks"}});
  memory_head_labels_ = &head_parts.Add({{"part", "labels"}});
  query_series_skipped_ = gauge("tidemark_query_series_skipped",
                                "Series selected by queries' postings and dropped by their end "
                                "time without being read, since the database was opened.");
  prometheus::BuildGauge()
      .Name("tidemark_build_info")
      .Help("Build information; the value is always 1.")
      .Register(r)
      .Add({{"version", build.version}, {"revision", build.revision}, {"branch", build.branch}})
      .Set(1);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::ObserveRequest(std::string_view handler, int code, double seconds) {
  std::string h(handler);
  http_requests_->Add({{"handler", h}, {"code", std::to_string(code)}}).Increment();
  http_duration_->Add({{"handler", h}}, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::ObserveQuery(std::string_view endpoint, double seconds) {
  query_duration_->Add({{"endpoint", std::string(endpoint)}}, LatencyBuckets()).Observe(seconds);
}

void ServerMetrics::AddAppended(std::string_view tenant, int64_t samples) {
  appended_->Add({{"tenant", std::string(tenant)}}).Increment(static_cast<double>(samples));
}

void ServerMetrics::AddRejected(std::string_view reason, int64_t samples) {
  rejected_->Add({{"reason", std::string(reason)}}).Increment(static_cast<double>(samples));
}

void ServerMetrics::CountRemoteWrite(int code) {
  remote_write_->Add({{"code", std::to_string(code)}}).Increment();
}

std::string ServerMetrics::Render(const Stats* stats) {
  ready_->Set(stats != nullptr ? 1 : 0);
  if (stats != nullptr) {
    active_series_->Set(static_cast<double>(stats->active_series));
    series_->Set(static_cast<double>(stats->series));
    head_series_->Set(static_cast<double>(stats->head_series));
    memory_budget_->Set(static_cast<double>(stats->memory_budget_bytes));
    block_cache_capacity_->Set(static_cast<double>(stats->block_cache_capacity));
    memory_head_->Set(static_cast<double>(stats->head_bytes));
    memory_memtables_->Set(static_cast<double>(stats->memtable_bytes));
    memory_block_cache_->Set(static_cast<double>(stats->block_cache_bytes));
    memory_series_bounds_->Set(static_cast<double>(stats->series_bounds_bytes));
    memory_head_chunks_->Set(static_cast<double>(stats->head_chunk_bytes));
    memory_head_labels_->Set(static_cast<double>(stats->head_label_bytes));
    query_series_skipped_->Set(static_cast<double>(stats->query_series_skipped));
    head_chunks_->Set(static_cast<double>(stats->head_chunks));
    head_samples_->Set(static_cast<double>(stats->head_samples));
    wal_bytes_->Set(static_cast<double>(stats->wal_bytes));
    head_checkpoints_->Set(static_cast<double>(stats->head_checkpoints));
    checkpoint_series_->Set(static_cast<double>(stats->checkpoint_series));
    storage_bytes_->Set(static_cast<double>(stats->disk_bytes));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace tidemark::api
