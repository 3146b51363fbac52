// ServerMetrics: Tidemark's own telemetry, rendered at GET /metrics in the Prometheus text format.
//
// Counters and histograms are updated by the request handlers; the storage gauges are refreshed
// from DB::GetStats() at every scrape. Thread-safe.
#ifndef TIDEMARK_API_METRICS_H_
#define TIDEMARK_API_METRICS_H_

#include <memory>
#include <string>
#include <string_view>

#include "storage/db.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace tidemark::api {

struct BuildInfo {
  std::string version;
  std::string revision;
  std::string branch;
  std::string build_user;
  std::string build_date;
};

// The build of this binary (version from CMake, revision from git when built in a checkout).
const BuildInfo& CurrentBuild();

class ServerMetrics {
 public:
  explicit ServerMetrics(const BuildInfo& build);
  ~ServerMetrics();

  void ObserveRequest(std::string_view handler, int code, double seconds);
  void ObserveQuery(std::string_view endpoint, double seconds);
  void AddAppended(std::string_view tenant, int64_t samples);
  void AddRejected(std::string_view reason, int64_t samples);
  void CountRemoteWrite(int code);

  // The text exposition; `stats` (when not null) refreshes the storage gauges first.
  std::string Render(const Stats* stats);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Histogram>* http_duration_;
  prometheus::Family<prometheus::Histogram>* query_duration_;
  prometheus::Family<prometheus::Counter>* appended_;
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Family<prometheus::Counter>* remote_write_;
  prometheus::Gauge* active_series_;
  prometheus::Gauge* series_;
  prometheus::Gauge* head_series_;
  prometheus::Gauge* memory_budget_;
  prometheus::Gauge* block_cache_capacity_;
  prometheus::Gauge* memory_head_;
  prometheus::Gauge* memory_memtables_;
  prometheus::Gauge* memory_block_cache_;
  prometheus::Gauge* memory_series_bounds_;
  prometheus::Gauge* memory_head_chunks_;
  prometheus::Gauge* memory_head_labels_;
  prometheus::Gauge* query_series_skipped_;
  prometheus::Gauge* head_chunks_;
  prometheus::Gauge* head_samples_;
  prometheus::Gauge* wal_bytes_;
  prometheus::Gauge* head_checkpoints_;
  prometheus::Gauge* checkpoint_series_;
  prometheus::Gauge* storage_bytes_;
  prometheus::Gauge* ready_;
};

}  // namespace tidemark::api

#endif  // TIDEMARK_API_METRICS_H_
