// DBImpl: the RocksDB-backed implementation of DB (internal to storage/).
//
// Column families and their keys are in storage/FORMAT.md. Commits are serialised by
// commit_mu_: each writes one RocksDB batch (series index, postings, one WAL record), then
// applies its samples to the head. Sealing a head chunk writes the chunk before it leaves the
// head, so a reader that copies the head and then reads the chunks misses nothing.
#ifndef TIDEMARK_STORAGE_DB_IMPL_H_
#define TIDEMARK_STORAGE_DB_IMPL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "storage/db.h"
#include "storage/head.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace tidemark::internal {

// Samples of one series buffered by an appender.
struct PendingSeries {
  Labels labels;
  std::vector<Sample> samples;
};

class DBImpl : public DB {
 public:
  explicit DBImpl(const Options& options);
  ~DBImpl() override;

  // Opens RocksDB, checks the format version, loads tenants and replays the WAL.
  absl::Status Open();

  std::unique_ptr<Appender> NewAppender(std::string_view tenant) override;
  absl::StatusOr<std::unique_ptr<Querier>> NewQuerier(std::string_view tenant, int64_t mint_ms,
                                                      int64_t maxt_ms) override;
  std::unique_ptr<Queryable> ForTenant(std::string_view tenant) override;
  Stats GetStats() override;
  absl::Status Compact() override;
  absl::Status DeleteBefore(int64_t cutoff_ms) override;
  absl::Status Close() override;

  // Metadata, exemplars and ingest state (db_side.cc).
  absl::Status PutMetadata(std::string_view tenant, std::string_view metric,
                           const MetricMetadata& metadata) override;
  absl::StatusOr<std::vector<std::pair<std::string, MetricMetadata>>> GetMetadata(
      std::string_view tenant, std::string_view metric, int64_t limit) override;
  absl::Status AppendExemplars(std::string_view tenant, const Labels& series,
                               std::span<const Exemplar> exemplars) override;
  absl::StatusOr<std::vector<SeriesExemplars>> QueryExemplars(
      std::string_view tenant, const std::vector<std::vector<LabelMatcher>>& selectors,
      int64_t mint_ms, int64_t maxt_ms) override;
  absl::Status PutState(std::string_view tenant, std::string_view key,
                        std::string_view value) override;
  absl::StatusOr<std::optional<std::string>> GetState(std::string_view tenant,
                                                      std::string_view key) override;

  // Test hook: drops the RocksDB handle without sealing the head or trimming the WAL, as a
  // crash would. The DB answers only errors afterwards.
  void SimulateCrashForTesting();

  // --- Used by the appender and querier. ---
  const Options& options() const { return options_; }
  std::optional<uint32_t> FindTenant(std::string_view tenant);
  // The head series of `labels`, loaded from RocksDB when stored but not yet in the head;
  // nullptr when the series does not exist.
  absl::StatusOr<MemSeries*> FindSeries(uint32_t tenant, const Labels& labels);
  // The head series of `labels` if it is in the head; never reads RocksDB.
  MemSeries* FindHeadSeries(uint32_t tenant, const Labels& labels);
  // True when the series stores a sample equal (bit for bit) to `sample` at its timestamp: a
  // resent sample older than the series' newest, ignored so that retried requests succeed.
  absl::StatusOr<bool> StoredIdentical(MemSeries* series, const Sample& sample);
  // Commits buffered samples atomically (see Appender::Commit).
  absl::Status CommitPending(std::string_view tenant, std::vector<PendingSeries>& pending);

  Head& head() { return head_; }
  rocksdb::DB* rocks() { return db_; }
  rocksdb::ColumnFamilyHandle* meta_cf() { return cfs_[1]; }
  rocksdb::ColumnFamilyHandle* series_cf() { return cfs_[2]; }
  rocksdb::ColumnFamilyHandle* postings_cf() { return cfs_[3]; }
  rocksdb::ColumnFamilyHandle* chunks_cf() { return cfs_[4]; }
  rocksdb::ColumnFamilyHandle* wal_cf() { return cfs_[5]; }
  // The side column families; nullptr when opened read-only on a directory that predates them.
  rocksdb::ColumnFamilyHandle* exemplars_cf() { return cfs_[6]; }
  rocksdb::ColumnFamilyHandle* metadata_cf() { return cfs_[7]; }
  rocksdb::ColumnFamilyHandle* state_cf() { return cfs_[8]; }
  bool closed() const { return closed_.load(); }

 private:
  absl::Status CheckFormat();
  absl::Status LoadCounters();
  absl::Status ReplayWal();
  // Reads the series' newest sealed sample into `s` (fields last/has_last/sealed_max_t).
  absl::Status LoadSealedTail(MemSeries* s);
  // Seals the chunks ChunkCuts picks from s->open: writes them, then drops them from the head.
  // `seq` is the WAL record that just added `added` samples (0 when none).
  absl::Status SealLocked(MemSeries* s, bool force, uint64_t seq, size_t added);
  absl::Status SealAll(bool force_all, int64_t idle_before, uint64_t* min_open_seq);
  absl::Status DeleteBeforeImpl(int64_t cutoff_ms);
  // Retention for exemplars (db_side.cc): drops every exemplar with a timestamp before the cutoff.
  absl::Status DeleteExemplarsBefore(int64_t cutoff_ms);
  void NoteTime(int64_t t);
  // The id of `tenant`, creating the tenant (durably) when it is new.
  absl::StatusOr<uint32_t> TenantForWrite(std::string_view tenant);
  absl::Status CheckWritable();
  void CloseRocks();

  const Options options_;
  rocksdb::DB* db_ = nullptr;
  // default, meta, series, postings, chunks, wal, exemplars, metadata, state
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  std::atomic<bool> closed_{true};

  Head head_;

  absl::Mutex tenants_mu_;
  absl::flat_hash_map<std::string, uint32_t> tenants_ ABSL_GUARDED_BY(tenants_mu_);

  absl::Mutex commit_mu_ ABSL_ACQUIRED_BEFORE(tenants_mu_);
  uint32_t next_tenant_id_ ABSL_GUARDED_BY(commit_mu_) = 1;
  uint64_t next_series_id_ ABSL_GUARDED_BY(commit_mu_) = 1;
  uint64_t next_wal_seq_ ABSL_GUARDED_BY(commit_mu_) = 1;

  // Sizes of the WAL records not yet released, for Stats::wal_bytes.
  absl::Mutex wal_mu_ ABSL_ACQUIRED_AFTER(commit_mu_);
  std::deque<std::pair<uint64_t, int64_t>> wal_sizes_ ABSL_GUARDED_BY(wal_mu_);
  std::atomic<int64_t> wal_bytes_{0};
  void NoteWalRecord(uint64_t seq, int64_t bytes);
  void ReleaseWal(uint64_t below);

  // Per-tenant exemplar ring bounds [first, next) of sequence numbers, loaded on first use.
  struct ExemplarRing {
    uint64_t first = 1;
    uint64_t next = 1;
  };
  absl::Mutex exemplars_mu_ ABSL_ACQUIRED_AFTER(commit_mu_);
  absl::flat_hash_map<uint32_t, ExemplarRing> exemplar_rings_ ABSL_GUARDED_BY(exemplars_mu_);
  // Serialises metadata and state read-modify-writes.
  absl::Mutex side_mu_ ABSL_ACQUIRED_AFTER(commit_mu_);

  std::atomic<int64_t> samples_appended_{0};
  std::atomic<int64_t> chunks_sealed_{0};
  std::atomic<int64_t> min_time_{std::numeric_limits<int64_t>::max()};
  std::atomic<int64_t> max_time_{std::numeric_limits<int64_t>::min()};
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_DB_IMPL_H_
