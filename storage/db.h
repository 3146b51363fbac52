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
  // Open for reading only (a CLI beside a running server): no appends, no background work.
  bool read_only = false;
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
  int64_t disk_bytes = 0;        // all RocksDB files
  int64_t min_time_ms = 0;       // oldest and newest sample time (0 when empty)
  int64_t max_time_ms = 0;
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

  // Seals head chunks that are full or idle, writes them to RocksDB and releases the write-ahead
  // log they no longer need. The server calls it periodically; safe at any time.
  virtual absl::Status Compact() = 0;

  // Deletes data older than `cutoff_ms` for all tenants, dropping whole time partitions where
  // it can rather than scanning samples.
  virtual absl::Status DeleteBefore(int64_t cutoff_ms) = 0;

  // Seals every head chunk, flushes and closes. After Close the DB answers only errors.
  virtual absl::Status Close() = 0;
};

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_DB_H_
