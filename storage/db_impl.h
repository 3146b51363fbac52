// DBImpl: the RocksDB-backed implementation of DB (internal to storage/).
//
// Column families and their keys are in storage/FORMAT.md; RocksDB options in
// storage/TUNING.md. A commit (1) checks its samples against each series' tail and reserves
// them (per series, under the series' shard lock), (2) takes a WAL sequence number, (3) writes
// one RocksDB batch (series index, postings, one WAL record) with no lock held, so concurrent
// commits share RocksDB's group commit (one fsync for many), then (4) applies its samples to
// the head and seals full chunks. Sealing a head chunk writes the chunk before it leaves the
// head, so a reader that copies the head and then reads the chunks misses nothing. A WAL
// record is released (deleted) once no open head chunk and no commit in flight needs it.
#ifndef TIDEMARK_STORAGE_DB_IMPL_H_
#define TIDEMARK_STORAGE_DB_IMPL_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "storage/db.h"
#include "storage/head.h"
#include "storage/series_bounds.h"
#include "storage/series_chunks.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Cache;
class WriteBatch;
class WriteBufferManager;
}  // namespace rocksdb

namespace tidemark::internal {

enum class StoredKind : uint8_t { kNone, kIdentical, kDifferent };

// A chunks iterator that a querier keeps from one read to the next (making one per series read
// costs as much as the read), and the registry through which the DB takes them back when it
// closes: a querier may outlive its DB, a RocksDB iterator must not. The registry is shared, so
// a querier destroyed after the DB still finds it.
struct CachedChunkIterator {
  absl::Mutex mu;
  std::unique_ptr<rocksdb::Iterator> it ABSL_GUARDED_BY(mu);
  uint64_t writes ABSL_GUARDED_BY(mu) = 0;  // DBImpl::chunk_writes() read before `it` was made
  // Bytes of blocks `it` has read from files so far, and whether it puts the blocks it reads in
  // the block cache (DBImpl::query_cache_fill_bytes).
  uint64_t bytes_read ABSL_GUARDED_BY(mu) = 0;
  bool fills_cache ABSL_GUARDED_BY(mu) = true;
};

class ChunkIteratorRegistry {
 public:
  void Add(CachedChunkIterator* c) {
    absl::MutexLock lock(&mu_);
    live_.insert(c);
  }
  void Remove(CachedChunkIterator* c) {
    absl::MutexLock lock(&mu_);
    live_.erase(c);
  }
  // Drops every registered iterator (before RocksDB closes).
  void DropAll() {
    absl::MutexLock lock(&mu_);
    for (CachedChunkIterator* c : live_) {
      absl::MutexLock inner(&c->mu);
      c->it.reset();
    }
  }

 private:
  absl::Mutex mu_;
  std::set<CachedChunkIterator*> live_ ABSL_GUARDED_BY(mu_);
};

// What an appender's reservation of a series changed (DBImpl::FindSeriesForAppend), to be
// undone if it does not commit, and what the commit needs to know of the series.
struct Reservation {
  Sample sample;  // the reserved sample: the series' tail since
  Sample prev_tail;
  bool prev_has_tail = false;
  bool write_index = false;  // the series' index keys were not durable yet
  int32_t indexed_day = std::numeric_limits<int32_t>::min();
};

// Samples of one series buffered by an appender.
struct PendingSeries {
  // Held by the appender, nullptr when unknown at Append: pinned, or (when `reserved`) counted
  // in the series' `inflight`, which keeps it in the head just as a pin does.
  MemSeries* series = nullptr;
  uint64_t labels_hash = 0;  // LabelsHash(labels)
  Labels labels;             // kept only when series == nullptr (the commit creates it)
  absl::InlinedVector<Sample, 2> samples;
  // The usual case: the series' first sample in the appender was newer than its tail, and was
  // reserved at once, under the lock of the lookup, so that the commit need not visit the series
  // before its apply. Otherwise the commit checks and reserves the samples.
  bool reserved = false;
  Reservation reservation;
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
  absl::StatusOr<int64_t> DeleteSeries(std::string_view tenant,
                                       const std::vector<std::vector<LabelMatcher>>& selectors,
                                       int64_t mint_ms, int64_t maxt_ms) override;
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
  // The head series of `labels` (hash: LabelsHash(labels)), held, with `sample` checked against
  // its tail (*verdict); loaded from RocksDB when stored but not yet in the head; nullptr when
  // the series does not exist. With a `reservation` to fill, a sample newer than the tail
  // (kAccept) is reserved: the tail moves to it and the series' `inflight` counts it, which
  // holds the series (*reserved is set; release with Unreserve). Otherwise the series is pinned
  // (release with Unpin). Reservations need not come in the order of the WAL sequence numbers
  // their commits take (see MemSeries::last_apply_seq).
  absl::StatusOr<MemSeries*> FindSeriesForAppend(uint32_t tenant, uint64_t labels_hash,
                                                 LabelsArg labels, const Sample& sample,
                                                 Verdict* verdict, Reservation* reservation,
                                                 bool* reserved);
  // Undoes a reservation that will not be applied (the tail goes back unless a later one moved it).
  void Unreserve(MemSeries* s, const Reservation& r);
  // The series of `labels` from RocksDB into the head (or the head's, if it won a race),
  // pinned; created with a new id when `create`, else nullptr when it does not exist.
  absl::StatusOr<MemSeries*> LoadSeriesPinned(uint32_t tenant, uint64_t hash,
                                              const Labels& labels, bool create);
  void Unpin(MemSeries* s);
  // Calls fn(id, encoded labels, the same decoded) for each series of `tenant` that matches
  // every one of `matchers` and may have samples in [mint, maxt], in increasing id order (the
  // bytes and views are valid during the call). Before the first call, `candidates` (when given)
  // learns how many calls there will be at most. Defined in db_query.cc, as is:
  absl::Status ForEachMatchingSeries(
      uint32_t tenant, const std::vector<LabelMatcher>& matchers, int64_t mint, int64_t maxt,
      const std::function<void(uint64_t, std::string_view, std::span<const LabelView>)>& fn,
      const std::function<void(size_t)>& candidates = nullptr);
  // Ids and labels of the matching series (ForEachMatchingSeries).
  absl::StatusOr<std::vector<std::pair<uint64_t, Labels>>> MatchSeries(
      uint32_t tenant, const std::vector<LabelMatcher>& matchers, int64_t mint, int64_t maxt);
  // Copies the head samples in [mint, maxt] of series `id` (hash: SeriesHash), if in the head.
  // Returns whether it is, and then in *sealed_max_t the newest time its sealed chunks may hold
  // (min() when none): no chunk has samples after it.
  bool CopyHeadSamples(uint32_t tenant, uint64_t hash, uint64_t id, int64_t mint, int64_t maxt,
                       std::vector<Sample>* out, int64_t* sealed_max_t);
  // What the series stores at `sample`'s timestamp (head or sealed chunks): nothing, the same
  // sample bit for bit (a resent one, ignored so that retried requests succeed), or another.
  absl::StatusOr<StoredKind> StoredAt(MemSeries* series, const Sample& sample);
  // Merges late samples (increasing, each series' own) into the sealed chunks of their time,
  // and writes them (not synced: the WAL holds them until the records are released).
  absl::Status MergeLateSamples(std::span<const std::pair<MemSeries*, std::vector<Sample>>> late);
  // Commits buffered samples atomically (see Appender::Commit). Drops the pin of each series it
  // applied samples to and sets that entry's `series` to nullptr; the caller unpins the rest.
  absl::Status CommitPending(std::string_view tenant, std::vector<PendingSeries>& pending);

  Head& head() { return head_; }
  rocksdb::DB* rocks() { return db_; }
  rocksdb::ColumnFamilyHandle* meta_cf() { return cfs_[1]; }
  rocksdb::ColumnFamilyHandle* series_cf() { return cfs_[2]; }
  rocksdb::ColumnFamilyHandle* postings_cf() { return cfs_[3]; }
  rocksdb::ColumnFamilyHandle* chunks_cf() { return cfs_[4]; }
  const ChunkDays& chunk_days() const { return chunk_days_; }
  // Counts writes to `chunks`, each counted once it is done and before the head lets go of
  // what it wrote: a reader that copied a series' head samples and then sees the same count as
  // when it made its chunks iterator knows that iterator holds every chunk the head let go of.
  uint64_t chunk_writes() const { return chunk_writes_.load(); }
  // Writes a batch that touches `chunks` (and may hold other keys), then counts it: every
  // write to `chunks` goes through here.
  rocksdb::Status WriteChunks(const rocksdb::WriteOptions& options, rocksdb::WriteBatch* batch);
  const std::shared_ptr<ChunkIteratorRegistry>& chunk_iterators() { return chunk_iterators_; }
  // Bytes of blocks one query's reads of chunks (or of labels) bring into the block cache from
  // files before its further reads stop filling it: an eighth of the cache (blocks are about
  // twice as large in the cache, decompressed). A read larger than the cache (a dashboard panel
  // over hundreds of thousands of series) would only evict, block by block, what other queries
  // reuse, and keep the cache at its full size in RSS (storage/TUNING.md).
  uint64_t query_cache_fill_bytes() const { return query_cache_fill_bytes_; }
  rocksdb::ColumnFamilyHandle* wal_cf() { return cfs_[5]; }
  // The side column families; nullptr when opened read-only on a directory that predates them.
  rocksdb::ColumnFamilyHandle* exemplars_cf() { return cfs_[6]; }
  rocksdb::ColumnFamilyHandle* metadata_cf() { return cfs_[7]; }
  rocksdb::ColumnFamilyHandle* state_cf() { return cfs_[8]; }
  bool closed() const { return closed_.load(); }

 private:
  absl::Status CheckFormat();
  absl::Status LoadCounters();
  // Replays the WAL records from sequence `from` on (those below are in the head checkpoint).
  absl::Status ReplayWal(uint64_t from);
  // One thread's share of the replay: the series with id % parts == part.
  struct ReplayPart {
    absl::flat_hash_map<uint64_t, MemSeries*> by_id;
    std::map<MemSeries*, std::vector<Sample>> late;  // out-of-order samples of sealed times
  };
  absl::Status ReplayPartOfWal(uint64_t from, unsigned part, unsigned parts, ReplayPart* state);

  // The head checkpoint (db_checkpoint.cc, storage/FORMAT.md). Checkpoint writes every open
  // chunk and releases the WAL below it (maintenance_mu_ held); LoadCheckpoint puts the
  // checkpoint's series in the head and returns the first WAL sequence to replay (0 without
  // one); RemoveCheckpoint deletes it once every head chunk is sealed (Close).
  absl::Status Checkpoint();
  absl::StatusOr<uint64_t> LoadCheckpoint();
  absl::Status RemoveCheckpoint();
  std::string CheckpointPath() const;
  // Reads the series' newest sealed sample into `s` (fields last/has_last/sealed_max_t).
  absl::Status LoadSealedTail(MemSeries* s);
  // A seal in progress: chunks encoded from a series' open chunk (marked `sealing`) under its
  // shard lock, written with no lock held, then dropped from the head (FinishSeal).
  struct SealJob {
    MemSeries* series = nullptr;
    int64_t end_t = 0;  // samples at or before this time were sealed
    int chunks = 0;
  };
  // Encodes the chunks ChunkCuts picks into `batch` and marks the series; false when nothing
  // is to be sealed (or another seal of it is in progress).
  bool PrepareSealLocked(MemSeries* s, bool force, rocksdb::WriteBatch* batch, SealJob* job);
  void FinishSealLocked(const SealJob& job, bool written);
  // Adds a seal record of `jobs` to `batch` when a head checkpoint exists (see FORMAT.md).
  void AddSealRecord(const std::vector<SealJob>& jobs, rocksdb::WriteBatch* batch);
  // Records s's end time in bounds_ (the caller holds its shard's lock; nothing is open).
  void SetBoundLocked(MemSeries* s);
  // Seals (full, or all when force_all, or idle before `idle_before`) chunks of every series,
  // evicts series idle before `evict_before`, and lowers *min_open_seq to the lowest WAL record
  // an open chunk still needs.
  absl::Status SealAll(bool force_all, int64_t idle_before, int64_t evict_before,
                       uint64_t* min_open_seq);
  // Deletes WAL records below `below` (one range deletion) and forgets their sizes.
  absl::Status ReleaseWalBelow(uint64_t below);
  // Lowest sequence a commit in flight holds, or the next one.
  uint64_t MinInflightSeq();
  // Gives the block cache what the head leaves of the budget (storage/TUNING.md): half of it,
  // less what the head takes over its own half, and never less than three eighths (the
  // memtables' quarter, charged to the cache, and an eighth for what RocksDB reads).
  void FitBlockCache();
  int64_t MemoryBudget() const { return std::max<int64_t>(options_.memory_budget_bytes, 16LL << 20); }
  // The head's memory (Stats::head_bytes), walking every series.
  int64_t HeadMemoryBytes();
  absl::Status OpenRocks();
  absl::Status WriteFormatVersion();  // this binary's, synced
  absl::Status DeleteBeforeImpl(int64_t cutoff_ms);
  // Removes the samples in [mint, maxt] from a series' open chunk (deletion and its replay).
  static void DeleteOpenSamplesLocked(MemSeries* s, int64_t mint, int64_t maxt);
  // Rewrites the sealed chunks of one series without their samples in [mint, maxt] into `batch`.
  // Merges `late` (increasing) into the series' sealed chunks in `batch`: each sample goes into
  // the chunk that starts at or before it (the first chunk when none does); a sample at a time
  // already stored is dropped.
  absl::Status MergeIntoChunks(uint32_t tenant, uint64_t series_id, std::span<const Sample> late,
                               rocksdb::WriteBatch* batch);
  absl::Status DeleteChunkSamples(uint32_t tenant, uint64_t series_id, int64_t mint,
                                  int64_t maxt, rocksdb::WriteBatch* batch);
  // Retention for exemplars (db_side.cc): drops every exemplar with a timestamp before the cutoff.
  absl::Status DeleteExemplarsBefore(int64_t cutoff_ms);
  void NoteTime(int64_t t);
  // The id of `tenant`, creating the tenant (durably) when it is new.
  absl::StatusOr<uint32_t> TenantForWrite(std::string_view tenant);
  absl::Status CheckWritable();
  void CloseRocks();

  const Options options_;
  std::shared_ptr<rocksdb::Cache> block_cache_;
  uint64_t query_cache_fill_bytes_ = 0;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers_;
  rocksdb::DB* db_ = nullptr;
  // default, meta, series, postings, chunks, wal, exemplars, metadata, state
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  std::atomic<bool> closed_{true};

  Head head_;
  // End times of series whose samples are all sealed, for queries to skip them.
  SeriesBounds bounds_;
  // The day of the newest sample when Compact last looked, and the next series id then: bounds
  // of ids made before the previous day are forgotten (Compact).
  int32_t bounds_day_ = std::numeric_limits<int32_t>::min();
  uint64_t bounds_day_first_id_ = 0;

  absl::Mutex tenants_mu_;
  absl::flat_hash_map<std::string, uint32_t> tenants_ ABSL_GUARDED_BY(tenants_mu_);

  // Serialises tenant creation.
  absl::Mutex create_mu_ ABSL_ACQUIRED_BEFORE(tenants_mu_);
  uint32_t next_tenant_id_ ABSL_GUARDED_BY(create_mu_) = 1;
  std::atomic<uint64_t> next_series_id_{1};

  // Serialises Compact, DeleteBefore and Close with each other (not with commits).
  absl::Mutex maintenance_mu_;
  // Held while a commit checks and reserves its samples and takes its WAL sequence number, so
  // that per series, reservation order, time order and sequence order agree. No I/O under it.
  absl::Mutex reserve_mu_ ABSL_ACQUIRED_BEFORE(wal_mu_);

  // WAL sequence numbers, commits in flight and the sizes of unreleased records.
  absl::Mutex wal_mu_;
  uint64_t next_wal_seq_ ABSL_GUARDED_BY(wal_mu_) = 1;
  std::set<uint64_t> inflight_ ABSL_GUARDED_BY(wal_mu_);
  int64_t active_commits_ ABSL_GUARDED_BY(wal_mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(wal_mu_) = false;
  std::map<uint64_t, int64_t> wal_sizes_ ABSL_GUARDED_BY(wal_mu_);
  std::atomic<int64_t> wal_bytes_{0};
  void NoteWalRecordLocked(uint64_t seq, int64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(wal_mu_);
  // Admits a commit (false once Close has begun) / ends it.
  bool BeginCommit();
  void EndCommit();
  // Stops admitting commits and waits for those in flight.
  void DrainCommits();

  // Per-tenant exemplar ring bounds [first, next) of sequence numbers, loaded on first use.
  struct ExemplarRing {
    uint64_t first = 1;
    uint64_t next = 1;
  };
  absl::Mutex exemplars_mu_;
  absl::flat_hash_map<uint32_t, ExemplarRing> exemplar_rings_ ABSL_GUARDED_BY(exemplars_mu_);
  // Serialises metadata and state read-modify-writes.
  absl::Mutex side_mu_;

  // Head checkpoint: one is on disk (so seals write seal records); seals are held back while
  // one is taken; how many were written since open and how many series the last one held.
  std::atomic<bool> checkpoint_exists_{false};
  // The `covers` of the checkpoint on disk (0 before the first is written): the WAL at and
  // above it holds the seal records that make the file safe to load, so it is never released
  // while the file exists.
  std::atomic<uint64_t> checkpoint_covers_{0};
  std::atomic<bool> seals_blocked_{false};
  std::atomic<int64_t> checkpoints_written_{0};
  std::atomic<int64_t> checkpoint_series_{0};

  std::atomic<int64_t> samples_appended_{0};
  std::atomic<int64_t> chunks_sealed_{0};
  std::atomic<int64_t> series_evicted_{0};
  std::atomic<int64_t> query_series_skipped_{0};
  // The days that hold sealed chunks (storage/series_chunks.h).
  ChunkDays chunk_days_;
  std::atomic<uint64_t> chunk_writes_{0};
  std::shared_ptr<ChunkIteratorRegistry> chunk_iterators_ =
      std::make_shared<ChunkIteratorRegistry>();
  // Retention has dropped every day before this one (in this process).
  std::atomic<int32_t> retention_day_{std::numeric_limits<int32_t>::min()};
  std::atomic<int64_t> min_time_{std::numeric_limits<int64_t>::max()};
  std::atomic<int64_t> max_time_{std::numeric_limits<int64_t>::min()};
};

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_DB_IMPL_H_
