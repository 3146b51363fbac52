// DB: an embedded Tidemark database in one directory.
//
//   auto db = tidemark::DB::Open({.path = "./data"});
//   auto app = (*db)->NewAppender("tenant-a");
//   app->Append(labels, t, v); app->Commit();
//   auto q = (*db)->NewQuerier("tenant-a", mint, maxt);
//
// Every key in the directory begins with the tenant, so tenants never see each other's data.
// A DB is thread-safe: appenders and queriers may be used from many threads at once (each
// appender or querier by one thread at a time). Samples live first in an in-memory head, made
// durable through a write-ahead log, and are sealed into compressed chunks in RocksDB. The
// on-disk format is documented in storage/FORMAT.md.
#ifndef TIDEMARK_STORAGE_DB_H_
#define TIDEMARK_STORAGE_DB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/appender.h"
#include "storage/querier.h"

namespace tidemark {

inline constexpr std::string_view kDefaultTenant = "anonymous";

// When a committed append reaches the disk.
enum class SyncPolicy : uint8_t {
  kAlways,  // fsync before Commit returns (default: nothing acknowledged is ever lost)
  kNever,   // leave it to the OS: a kill -9 is survived, a power loss may lose recent samples
};

struct Options {
  std::string path = "./data";
  SyncPolicy sync = SyncPolicy::kAlways;
  // Data older than this (relative to the newest sample seen) is deleted; 0 keeps everything.
  int64_t retention_ms = 15LL * 24 * 3600 * 1000;
  // A head chunk is sealed once it holds this many samples or spans this long.
  int max_samples_per_chunk = 120;
  int64_t max_chunk_span_ms = 2LL * 3600 * 1000;
  // A new series' first chunk is cut at a length of its own, a quarter to five quarters of
  // max_samples_per_chunk (by the time of its first sample), so that series that start together
  // (a server or a scraper starting) do not fill their chunks in step: the head then holds about
  // half a chunk per series, not a whole one of each at the same moment (storage/TUNING.md,
  // "Head memory").
  bool stagger_first_chunks = true;
  // Out-of-order window, as Prometheus's out_of_order_time_window: a sample older than its
  // series' newest is accepted when it is no older than this before the newest sample of the
  // database (0: such samples are refused as out of order). Late samples land in the open chunk
  // or are merged into the sealed chunk of their time.
  int64_t out_of_order_window_ms = 0;
  // Open for reading only (a CLI beside a running server): no appends, no background work.
  bool read_only = false;
  // Exemplars kept per tenant; the oldest are dropped first beyond this (at least 1).
  int64_t max_exemplars_per_tenant = 100000;
  // Memory the database plans for (bytes; at least 16 MiB is used). RocksDB's block cache and
  // memtables share half of it (memtables at most a quarter); the head, which holds the open
  // chunk of every active series, is expected to fit in the rest and is reported in Stats.
  // How the shares were chosen: storage/TUNING.md.
  int64_t memory_budget_bytes = 256LL << 20;
  // When the write-ahead log still needed exceeds this many bytes, the maintenance pass
  // (Compact) writes a head checkpoint (every open head chunk as it is) and releases the log
  // below it, which bounds the replay on open (storage/FORMAT.md). 0: never.
  int64_t checkpoint_wal_bytes = 128LL << 20;
};

// What a metric is, as ingest learns it (remote write metadata, OTLP): per tenant and metric
// family name. `type` is Prometheus's lower-case name: counter, gauge, histogram, summary,
// gaugehistogram, info, stateset, unknown.
struct MetricMetadata {
  std::string type;
  std::string help;
  std::string unit;
  friend bool operator==(const MetricMetadata&, const MetricMetadata&) = default;
};

// An exemplar: a sample of a series with labels of its own (trace_id, span_id, ...).
struct Exemplar {
  Labels labels;
  double value = 0;
  int64_t t_ms = 0;
};

struct SeriesExemplars {
  Labels series;
  std::vector<Exemplar> exemplars;  // increasing time
};

struct Stats {
  int64_t tenants = 0;
  int64_t series = 0;           // series known to the index
  int64_t active_series = 0;    // series with an open head chunk
  int64_t head_chunks = 0;
  int64_t head_samples = 0;
  int64_t samples_appended = 0;  // since open
  int64_t chunks_sealed = 0;     // since open
  int64_t wal_bytes = 0;         // write-ahead log not yet released
  int64_t head_checkpoints = 0;  // head checkpoints written since open
  int64_t checkpoint_series = 0;  // series in the last one written or loaded
  int64_t disk_bytes = 0;        // all RocksDB files
  int64_t min_time_ms = 0;       // oldest and newest sample time (0 when empty)
  int64_t max_time_ms = 0;
  // Memory, in bytes (estimates): where the budget goes.
  int64_t head_series = 0;             // series held in the head (active or recently active)
  int64_t head_bytes = 0;              // the head: series, labels, open chunks, map slots
  int64_t head_chunk_bytes = 0;        // of which open chunks' buffers
  int64_t head_label_bytes = 0;        // of which labels: pair ids, and the label pool's pairs
  int64_t memtable_bytes = 0;          // RocksDB memtables (all column families)
  int64_t block_cache_bytes = 0;       // RocksDB block cache in use (includes memtable charge)
  int64_t block_cache_capacity = 0;    // its capacity now (shrinks while the head is over its share)
  int64_t memory_budget_bytes = 0;     // Options::memory_budget_bytes as applied
  int64_t series_evicted = 0;          // inactive series dropped from the head since open
  int64_t series_bounds_bytes = 0;     // end times of sealed series (storage/series_bounds.h)
  // Series a query's postings selected and dropped by their end time, without reading them.
  int64_t query_series_skipped = 0;
};

class DB {
 public:
  virtual ~DB() = default;

  // Opens (creating if needed) the database at options.path and replays the write-ahead log.
  // Fails with FailedPrecondition for a directory of another format version, with the reason.
  static absl::StatusOr<std::unique_ptr<DB>> Open(const Options& options);

  // A new appender for `tenant` (kDefaultTenant when the request names none).
  virtual std::unique_ptr<Appender> NewAppender(std::string_view tenant) = 0;

  // A snapshot querier over [mint_ms, maxt_ms] for `tenant`. An unknown tenant gives an empty
  // querier, not an error.
  virtual absl::StatusOr<std::unique_ptr<Querier>> NewQuerier(std::string_view tenant,
                                                              int64_t mint_ms,
                                                              int64_t maxt_ms) = 0;

  // The same, as a Queryable for the PromQL engine. The DB must outlive it.
  virtual std::unique_ptr<Queryable> ForTenant(std::string_view tenant) = 0;

  virtual Stats GetStats() = 0;

  // Records the metadata of `metric` for `tenant`, replacing what was there. Durable like a
  // commit.
  virtual absl::Status PutMetadata(std::string_view tenant, std::string_view metric,
                                   const MetricMetadata& metadata) = 0;

  // Metadata of `tenant`, sorted by metric name: of one metric when `metric` is non-empty, and
  // at most `limit` metrics when limit > 0.
  virtual absl::StatusOr<std::vector<std::pair<std::string, MetricMetadata>>> GetMetadata(
      std::string_view tenant, std::string_view metric, int64_t limit) = 0;

  // Stores exemplars of the series `series`. The store is bounded per tenant (the oldest go
  // first); an exemplar identical to a stored one is ignored.
  virtual absl::Status AppendExemplars(std::string_view tenant, const Labels& series,
                                       std::span<const Exemplar> exemplars) = 0;

  // Exemplars in [mint_ms, maxt_ms] of series matching any one of `selectors` (each a list of
  // matchers that must all match), sorted by series labels.
  virtual absl::StatusOr<std::vector<SeriesExemplars>> QueryExemplars(
      std::string_view tenant, const std::vector<std::vector<LabelMatcher>>& selectors,
      int64_t mint_ms, int64_t maxt_ms) = 0;

  // Small durable key-value state of ingest (e.g. OTLP delta-to-cumulative running sums),
  // per tenant, under a namespace chosen by the caller. Put with an empty value deletes.
  virtual absl::Status PutState(std::string_view tenant, std::string_view key,
                                std::string_view value) = 0;
  virtual absl::StatusOr<std::optional<std::string>> GetState(std::string_view tenant,
                                                              std::string_view key) = 0;

  // Seals head chunks that are full or idle, writes them to RocksDB and releases the write-ahead
  // log they no longer need. The server calls it periodically; safe at any time.
  virtual absl::Status Compact() = 0;

  // Deletes data older than `cutoff_ms` for all tenants, dropping whole time partitions where
  // it can rather than scanning samples.
  virtual absl::Status DeleteBefore(int64_t cutoff_ms) = 0;

  // Deletes the samples in [mint_ms, maxt_ms] of every series of `tenant` that matches any one
  // of `selectors` (each a list of matchers that must all match), from the head and the sealed
  // chunks, durably (a deletion record in the write-ahead log keeps replay from bringing back
  // what the head held). Appends wait while it runs. Series stay in the index (label names and
  // values may still list them); a series with no sample left in a range is not selected there.
  // Returns the number of series that matched.
  virtual absl::StatusOr<int64_t> DeleteSeries(
      std::string_view tenant, const std::vector<std::vector<LabelMatcher>>& selectors,
      int64_t mint_ms, int64_t maxt_ms) = 0;

  // Seals every head chunk, flushes and closes. After Close the DB answers only errors.
  virtual absl::Status Close() = 0;
};

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_DB_H_
