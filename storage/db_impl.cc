#include "storage/db_impl.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <span>
#include <system_error>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/write_buffer_manager.h"
#include "storage/chunk.h"
#include "storage/keys.h"
#include "storage/label_pool.h"
#include "storage/rocks_util.h"

namespace tidemark::internal {
namespace {

constexpr int64_t kIdleChunkMs = 3600 * 1000;

// What a shard's hash set takes besides its series: a slot pointer and a control byte each.
int64_t SetBytesLocked(const Head::Shard& shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
  return static_cast<int64_t>(shard.series.capacity() * (sizeof(void*) + 1));
}

}  // namespace

DBImpl::DBImpl(const Options& options) : options_(options) {}

DBImpl::~DBImpl() {
  if (!closed_.load()) (void)Close();
}

absl::Status DBImpl::Open() {
  absl::Status st = OpenRocks();
  if (!st.ok()) return st;
  closed_ = false;
  st = CheckFormat();
  if (st.ok()) st = ScanChunkDays(db_, chunks_cf(), &chunk_days_);
  if (st.ok()) st = LoadCounters();
  absl::StatusOr<uint64_t> from = st.ok() ? LoadCheckpoint() : uint64_t{0};
  if (!from.ok()) st = from.status();
  if (st.ok()) st = ReplayWal(*from);
  if (!st.ok()) CloseRocks();
  return st;
}

absl::Status DBImpl::OpenRocks() {
  // Memory shares and per-column-family options: storage/TUNING.md explains each choice.
  const int64_t budget = MemoryBudget();
  const size_t cache_bytes = static_cast<size_t>(budget / 2);
  const size_t memtable_bytes = static_cast<size_t>(budget / 4);
  // Half of the cache is kept for index and filter blocks (high priority), so that data blocks
  // read by a large query cannot evict them (storage/TUNING.md).
  block_cache_ = rocksdb::NewLRUCache(cache_bytes, /*num_shard_bits=*/-1,
                                      /*strict_capacity_limit=*/false,
                                      /*high_pri_pool_ratio=*/0.5);
  query_cache_fill_bytes_ = cache_bytes / 8;
  write_buffers_ = std::make_shared<rocksdb::WriteBufferManager>(memtable_bytes, block_cache_);

  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.write_buffer_manager = write_buffers_;
  // RocksDB's own log may hold at most about as much as the memtables: beyond that the column
  // families pinning the oldest log file are flushed, so log files are recycled.
  dbo.max_total_wal_size = memtable_bytes;
  dbo.max_background_jobs = 2;
  dbo.bytes_per_sync = 1 << 20;
  dbo.keep_log_file_num = 4;
  dbo.max_file_opening_threads = 2;

  const auto supported = rocksdb::GetSupportedCompressions();
  const bool zstd = std::find(supported.begin(), supported.end(), rocksdb::kZSTD) != supported.end();
  const bool lz4 = std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) !=
                   supported.end();
  // Index and filter blocks live in the block cache (bounded by the budget) at high priority,
  // partitioned so that a lookup loads one 4 KiB partition rather than a file's whole index or
  // filter (at a million series those are megabytes, and re-reading them for every series a
  // query selected made queries take minutes); the top level stays pinned.
  auto table = [&]() {
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = block_cache_;
    t.cache_index_and_filter_blocks = true;
    t.cache_index_and_filter_blocks_with_high_priority = true;
    t.pin_l0_filter_and_index_blocks_in_cache = true;
    t.pin_top_level_index_and_filter = true;
    t.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
    t.partition_filters = true;
    t.metadata_block_size = 4096;
    t.format_version = 5;
    return t;
  };
  auto base = [&](size_t write_buffer) {
    rocksdb::ColumnFamilyOptions o;
    o.write_buffer_size = write_buffer;
    o.max_write_buffer_number = 2;
    o.level_compaction_dynamic_level_bytes = true;
    o.compression = lz4 ? rocksdb::kLZ4Compression : rocksdb::kSnappyCompression;
    if (zstd) o.bottommost_compression = rocksdb::kZSTD;
    o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table()));
    return o;
  };
  const size_t mb = 1 << 20;
  auto options_for = [&](const std::string& name) {
    if (name == kSeriesCF) {
      // Point lookups of new series ('L' keys) mostly miss: a whole-key bloom filter answers them
      // without reading data blocks.
      rocksdb::ColumnFamilyOptions o = base(8 * mb);
      rocksdb::BlockBasedTableOptions t = table();
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      t.whole_key_filtering = true;
      o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
      return o;
    }
    if (name == kPostingsCF) return base(8 * mb);
    if (name == kChunksCF) {
      // Chunks are compressed by the codec, but blocks of many chunks still share a lot (the
      // same scrape times, neighbouring values of sibling series): ZSTD at its fastest level
      // takes another ~38% off (storage/TUNING.md). Large files and blocks: values are a few
      // hundred bytes, read in per-series runs. A bloom filter of each file's series-days
      // (`tenant day series`, the prefix every read of one series seeks within) lets a read
      // skip the files that hold nothing of its series: each flush holds the chunks of the
      // series sealed in its window only. Reads across series set total_order_seek.
      rocksdb::ColumnFamilyOptions o = base(16 * mb);
      o.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(kChunkSeriesPrefixSize));
      o.compression = zstd ? rocksdb::kZSTD : rocksdb::kNoCompression;
      o.compression_opts.level = 1;
      o.bottommost_compression = rocksdb::kDisableCompressionOption;
      o.target_file_size_base = 64 * mb;
      o.max_bytes_for_level_base = 256 * mb;
      rocksdb::BlockBasedTableOptions t = table();
      t.block_size = 32 * 1024;
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      t.whole_key_filtering = false;
      o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
      return o;
    }
    if (name == kWalCF) {
      // Records live until their samples are sealed and are then range-deleted: a flush or
      // compaction drops what a range deletion covers. Not compressed (short-lived).
      rocksdb::ColumnFamilyOptions o = base(16 * mb);
      o.compression = rocksdb::kNoCompression;
      o.bottommost_compression = rocksdb::kDisableCompressionOption;
      return o;
    }
    return base(2 * mb);
  };

  const std::vector<std::string> names = {
      rocksdb::kDefaultColumnFamilyName, kMetaCF, kSeriesCF,   kPostingsCF, kChunksCF,
      kWalCF,                            kExemplarsCF, kMetadataCF, kStateCF};
  // Read-only opens only the column families that exist: a directory written before the side
  // column families were added has none of them (their handles stay nullptr).
  std::vector<std::string> present = names;
  if (options_.read_only) {
    std::vector<std::string> existing;
    rocksdb::Status ls = rocksdb::DB::ListColumnFamilies(dbo, options_.path, &existing);
    if (!ls.ok()) return FromRocks(ls, absl::StrCat("open database at ", options_.path));
    present.clear();
    for (const std::string& name : names) {
      if (std::find(existing.begin(), existing.end(), name) != existing.end()) {
        present.push_back(name);
      }
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfds;
  for (const std::string& name : present) cfds.emplace_back(name, options_for(name));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s;
  if (options_.read_only) {
    s = rocksdb::DB::OpenForReadOnly(dbo, options_.path, cfds, &handles, &db_);
  } else {
    std::error_code ec;
    std::filesystem::create_directories(options_.path, ec);
    s = rocksdb::DB::Open(dbo, options_.path, cfds, &handles, &db_);
  }
  if (!s.ok()) {
    return FromRocks(s, absl::StrCat("open database at ", options_.path));
  }
  cfs_.assign(names.size(), nullptr);
  for (size_t i = 0; i < present.size(); ++i) {
    size_t slot = std::find(names.begin(), names.end(), present[i]) - names.begin();
    cfs_[slot] = handles[i];
  }
  for (size_t i = 0; i < 6; ++i) {
    if (cfs_[i] == nullptr) {
      CloseRocks();
      return absl::FailedPreconditionError(absl::StrCat(
          "database at ", options_.path, " has no column family \"", names[i], "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status DBImpl::CheckFormat() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf(), kMetaFormatVersion, &value);
  if (s.IsNotFound()) {
    if (options_.read_only) {
      return absl::FailedPreconditionError(
          absl::StrCat("database at ", options_.path, " has no format version"));
    }
    return WriteFormatVersion();
  }
  if (!s.ok()) return FromRocks(s, "read format version");
  if (value.size() != 4) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database at ", options_.path, " has a malformed format version (", value.size(),
        " bytes)"));
  }
  uint32_t version = GetU32BE(value);
  if (version == 1) {
    // Version 1 differs only in the chunk keys (FORMAT.md, "Upgrading from format version 1").
    if (options_.read_only) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database at ", options_.path,
          " has format version 1; open it once read-write to upgrade it to version ",
          kFormatVersion));
    }
    absl::Status st = UpgradeChunksFromV1(db_, chunks_cf());
    return st.ok() ? WriteFormatVersion() : st;
  }
  if (version != kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("database at ", options_.path, " has format version ", version,
                     "; this Tidemark reads format version ", kFormatVersion));
  }
  return absl::OkStatus();
}

absl::Status DBImpl::WriteFormatVersion() {
  std::string v;
  PutU32BE(&v, kFormatVersion);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Put(wo, meta_cf(), kMetaFormatVersion, v);
  return s.ok() ? absl::OkStatus() : FromRocks(s, "write format version");
}

absl::Status DBImpl::LoadCounters() {
  std::string value;
  uint64_t next_series = 1;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf(), kMetaNextSeriesId, &value);
  if (s.ok() && value.size() == 8) next_series = GetU64BE(value);
  else if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "read next series id");
  s = db_->Get(rocksdb::ReadOptions(), meta_cf(), kMetaTimeRange, &value);
  if (s.ok() && value.size() == 16) {
    NoteTime(GetI64Ordered(value));
    NoteTime(GetI64Ordered(std::string_view(value).substr(8)));
  } else if (!s.ok() && !s.IsNotFound()) {
    return FromRocks(s, "read time range");
  }
  s = db_->Get(rocksdb::ReadOptions(), meta_cf(), kMetaNextTenantId, &value);
  {
    absl::MutexLock create(&create_mu_);
    if (s.ok() && value.size() == 4) next_tenant_id_ = GetU32BE(value);
    else if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "read next tenant id");
  }

  std::vector<uint32_t> tenant_ids;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf()));
  {
    absl::MutexLock lock(&tenants_mu_);
    std::string_view prefix = kMetaTenantPrefix;
    for (it->Seek(kMetaTenantPrefix); it->Valid() && StartsWith(it->key(), prefix); it->Next()) {
      if (it->value().size() != 4) {
        return absl::DataLossError(absl::StrCat("meta key ", std::string(View(it->key())),
                                                ": tenant id of ", it->value().size(),
                                                " bytes"));
      }
      const uint32_t id = GetU32BE(View(it->value()));
      tenants_[std::string(View(it->key()).substr(prefix.size()))] = id;
      tenant_ids.push_back(id);
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "load tenants");

  // Concurrent commits write `next_series_id` in any order, so the stored value may lag: the
  // highest id in the series index (one seek per tenant) is authoritative.
  std::unique_ptr<rocksdb::Iterator> sit(db_->NewIterator(rocksdb::ReadOptions(), series_cf()));
  for (uint32_t tenant : tenant_ids) {
    const std::string prefix = SeriesByIdPrefix(tenant);
    sit->SeekForPrev(prefix + std::string(8, '\xff'));
    if (sit->Valid() && StartsWith(sit->key(), prefix) &&
        sit->key().size() == prefix.size() + 8) {
      next_series = std::max(next_series, GetU64BE(View(sit->key()).substr(prefix.size())) + 1);
    }
  }
  if (!sit->status().ok()) return FromRocks(sit->status(), "find last series id");
  next_series_id_ = next_series;

  std::unique_ptr<rocksdb::Iterator> wal(db_->NewIterator(rocksdb::ReadOptions(), wal_cf()));
  wal->SeekToLast();
  absl::MutexLock lock(&wal_mu_);
  if (wal->Valid() && wal->key().size() == 8) next_wal_seq_ = GetU64BE(View(wal->key())) + 1;
  if (!wal->status().ok()) return FromRocks(wal->status(), "read WAL end");
  return absl::OkStatus();
}

absl::Status DBImpl::LoadSealedTail(MemSeries* s) {
  std::string chunk;
  bool found = false;
  absl::Status st = NewestChunk(db_, chunks_cf(), s->tenant, s->id, chunk_days_, &chunk, &found);
  if (!st.ok() || !found) return st;
  ChunkIterator ci(chunk);
  bool any = false;
  Sample tail;
  while (ci.Next()) {
    tail = ci.At();
    any = true;
  }
  if (!ci.status().ok()) {
    return absl::DataLossError(absl::StrCat("decode last chunk of series ", s->id, " (",
                                            chunk.size(), " bytes): ", ci.status().message()));
  }
  if (any) {
    s->has_last = true;
    s->last = tail;
    s->sealed_max_t = tail.t;
  }
  return absl::OkStatus();
}

absl::Status DBImpl::ReplayWal(uint64_t from) {
  {
    // New records must sort after the ones the checkpoint covers, even when none is left.
    absl::MutexLock lock(&wal_mu_);
    next_wal_seq_ = std::max(next_wal_seq_, from);
  }
  // Replay is bound by memory latency (a hash probe and the series' open chunk per entry), so
  // it runs in parallel: each part reads every record and applies the entries of its own
  // series (by id), in sequence order, which is all the order replay needs.
  const unsigned parts = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  std::vector<ReplayPart> state(parts);
  for (Head::Shard& shard : head_.shards()) {  // the checkpoint's series
    absl::MutexLock lock(&shard.mu);
    for (MemSeries* s : shard.series) state[s->id % parts].by_id[s->id] = s;
  }
  std::vector<absl::Status> results(parts);
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < parts; ++i) {
    threads.emplace_back([&, i] { results[i] = ReplayPartOfWal(from, i, parts, &state[i]); });
  }
  results[0] = ReplayPartOfWal(from, 0, parts, &state[0]);
  for (std::thread& t : threads) t.join();
  for (const absl::Status& st : results) {
    if (!st.ok()) return st;
  }
  // Read-only: late samples of sealed times are seen once the writer has merged them.
  if (options_.read_only) return absl::OkStatus();
  std::vector<std::pair<MemSeries*, std::vector<Sample>>> merges;
  for (ReplayPart& part : state) {
    for (auto& [s, samples] : part.late) {
      std::sort(samples.begin(), samples.end(),
                [](const Sample& a, const Sample& b) { return a.t < b.t; });
      if (!samples.empty()) merges.emplace_back(s, std::move(samples));
    }
  }
  if (absl::Status st = MergeLateSamples(merges); !st.ok()) return st;
  uint64_t unused = std::numeric_limits<uint64_t>::max();
  return SealAll(false, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min(),
                 &unused);
}

absl::Status DBImpl::ReplayPartOfWal(uint64_t from, unsigned part, unsigned parts,
                                     ReplayPart* state) {
  auto mine = [&](uint64_t id) { return id % parts == part; };
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), wal_cf()));
  std::vector<LabelView> views;
  for (it->Seek(WalKey(from)); it->Valid(); it->Next()) {
    if (it->key().size() != 8) continue;
    const uint64_t seq = GetU64BE(View(it->key()));
    const std::string_view record = View(it->value());
    if (part == 0) {
      absl::MutexLock lock(&wal_mu_);
      NoteWalRecordLocked(seq, static_cast<int64_t>(it->key().size() + record.size()));
    }
    if (IsWalSeal(record)) {
      auto seal = DecodeWalSeal(record);
      if (!seal.ok()) {
        return absl::DataLossError(
            absl::StrCat("replay WAL record ", seq, ": ", seal.status().message()));
      }
      // What it sealed leaves the head (the checkpoint may predate the seal).
      for (const WalSeal::Series& sealed : seal->series) {
        if (!mine(sealed.series_id)) continue;
        auto found = state->by_id.find(sealed.series_id);
        if (found == state->by_id.end() || found->second->tenant != sealed.tenant) continue;
        MemSeries* s = found->second;
        absl::MutexLock lock(&head_.ShardOf(*s).mu);
        s->open.EraseThrough(sealed.end_t);
        s->sealed_max_t = std::max(s->sealed_max_t, sealed.end_t);
        if (s->open.empty()) s->open_min_seq = 0;
      }
      continue;
    }
    if (IsWalDeletion(record)) {
      auto deletion = DecodeWalDeletion(record);
      if (!deletion.ok()) {
        return absl::DataLossError(
            absl::StrCat("replay WAL record ", seq, ": ", deletion.status().message()));
      }
      // Only series that earlier records put in the head can hold deleted samples there.
      for (uint64_t id : deletion->series_ids) {
        if (!mine(id)) continue;
        auto found = state->by_id.find(id);
        if (found == state->by_id.end() || found->second->tenant != deletion->tenant) continue;
        MemSeries* s = found->second;
        absl::MutexLock lock(&head_.ShardOf(*s).mu);
        DeleteOpenSamplesLocked(s, deletion->mint, deletion->maxt);
        if (auto l = state->late.find(s); l != state->late.end()) {
          std::erase_if(l->second, [&](const Sample& x) {
            return x.t >= deletion->mint && x.t <= deletion->maxt;
          });
        }
      }
      continue;
    }
    absl::Status st = ForEachWalEntry(record, [&](const WalEntryView& e) -> absl::Status {
      if (!mine(e.series_id)) return absl::OkStatus();
      MemSeries*& s = state->by_id[e.series_id];
      if (s == nullptr) {
        std::string fetched;
        std::string_view bytes = e.label_bytes;
        if (!e.has_labels) {
          rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), series_cf(),
                                        SeriesByIdKey(e.tenant, e.series_id), &fetched);
          if (!rs.ok()) {
            return FromRocks(rs, absl::StrCat("replay WAL record ", seq, ": labels of series ",
                                              e.series_id, " of tenant ", e.tenant));
          }
          bytes = fetched;
        }
        views.clear();
        if (!DecodeLabelViews(bytes, &views)) {
          return absl::DataLossError(absl::StrCat("replay WAL record ", seq,
                                                  ": bad labels of series ", e.series_id));
        }
        const std::span<const LabelView> labels(views);
        const uint64_t hash = SeriesHash(e.tenant, LabelsHash(labels));
        Head::Shard& shard = head_.ShardFor(hash);
        absl::MutexLock lock(&shard.mu);
        s = Head::FindLocked(shard, Head::Key{hash, e.tenant, labels});
        if (s == nullptr) {
          std::unique_ptr<MemSeries> created = MemSeries::Make(bytes);
          created->tenant = e.tenant;
          created->id = e.series_id;
          created->hash = hash;
          created->indexed = true;  // written in the batch of the record that named its labels
          absl::Status loaded = LoadSealedTail(created.get());
          if (!loaded.ok()) return loaded;
          s = created.get();
          Head::InsertLocked(shard, std::move(created));
        }
      }
      // Records may hold a series' samples in any order of sequence (concurrent commits):
      // insert each in time order; skip what is sealed already or replayed.
      absl::MutexLock lock(&head_.ShardOf(*s).mu);
      bool applied = false;
      for (const Sample& sample : e.samples) {
        if (sample.t <= s->sealed_max_t) {
          // A late sample of a sealed time: merged into its chunk after replay (again, if it
          // was before the crash: a merge keeps what is stored).
          if (e.out_of_order) state->late[s].push_back(sample);
          continue;
        }
        if (!s->open.Insert(sample)) continue;
        applied = true;
        if (!s->has_last || sample.t > s->last.t) {
          s->last = sample;
          s->has_last = true;
        }
        s->last_indexed_day = std::max(s->last_indexed_day, DayOf(sample.t));
        NoteTime(sample.t);
      }
      if (applied && (s->open_min_seq == 0 || seq < s->open_min_seq)) s->open_min_seq = seq;
      s->has_tail = s->has_last;
      s->tail = s->last;
      return absl::OkStatus();
    });
    if (!st.ok()) {
      if (absl::IsDataLoss(st) && !absl::StartsWith(st.message(), "replay")) {
        return absl::DataLossError(absl::StrCat("replay WAL record ", seq, ": ", st.message()));
      }
      return st;
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "replay WAL");
  return absl::OkStatus();
}

absl::Status DBImpl::CheckWritable() {
  if (closed_.load()) return ClosedError();
  if (options_.read_only) return absl::FailedPreconditionError("database is read-only");
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> DBImpl::TenantForWrite(std::string_view tenant) {
  if (std::optional<uint32_t> id = FindTenant(tenant); id.has_value()) return *id;
  absl::MutexLock create(&create_mu_);
  if (closed_.load()) return ClosedError();
  if (std::optional<uint32_t> id = FindTenant(tenant); id.has_value()) return *id;
  const uint32_t tid = next_tenant_id_;
  std::string id, next;
  PutU32BE(&id, tid);
  PutU32BE(&next, tid + 1);
  rocksdb::WriteBatch batch;
  batch.Put(meta_cf(), absl::StrCat(kMetaTenantPrefix, std::string(tenant)), id);
  batch.Put(meta_cf(), kMetaNextTenantId, next);
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  rocksdb::Status rs = db_->Write(wo, &batch);
  if (!rs.ok()) return FromRocks(rs, "create tenant");
  next_tenant_id_ = tid + 1;
  absl::MutexLock lock(&tenants_mu_);
  tenants_[std::string(tenant)] = tid;
  return tid;
}

std::optional<uint32_t> DBImpl::FindTenant(std::string_view tenant) {
  absl::MutexLock lock(&tenants_mu_);
  auto it = tenants_.find(absl::string_view(tenant.data(), tenant.size()));
  if (it == tenants_.end()) return std::nullopt;
  return it->second;
}

void DBImpl::NoteWalRecordLocked(uint64_t seq, int64_t bytes) {
  wal_sizes_[seq] = bytes;
  wal_bytes_ += bytes;
}

bool DBImpl::BeginCommit() {
  absl::MutexLock lock(&wal_mu_);
  if (closing_) return false;
  ++active_commits_;
  return true;
}

void DBImpl::EndCommit() {
  absl::MutexLock lock(&wal_mu_);
  --active_commits_;
}

void DBImpl::DrainCommits() {
  absl::MutexLock lock(&wal_mu_);
  closing_ = true;
  wal_mu_.Await(absl::Condition(
      +[](int64_t* active) { return *active == 0; }, &active_commits_));
}

uint64_t DBImpl::MinInflightSeq() {
  absl::MutexLock lock(&wal_mu_);
  return inflight_.empty() ? next_wal_seq_ : *inflight_.begin();
}

absl::Status DBImpl::ReleaseWalBelow(uint64_t below) {
  // With a checkpoint on disk, a restart loads its open chunks as they were and replays the WAL
  // from its `covers`: the seal records there take out of them what was sealed since. Released,
  // a seal's samples would come back into the head, and sealing them again would overwrite the
  // sealed chunk (same key) with what the head has, losing the rest. A new checkpoint moves it.
  if (checkpoint_exists_.load()) below = std::min(below, checkpoint_covers_.load());
  if (below <= 1) return absl::OkStatus();
  rocksdb::Status rs =
      db_->DeleteRange(rocksdb::WriteOptions(), wal_cf(), WalKey(0), WalKey(below));
  if (!rs.ok()) return FromRocks(rs, "release WAL");
  absl::MutexLock lock(&wal_mu_);
  while (!wal_sizes_.empty() && wal_sizes_.begin()->first < below) {
    wal_bytes_ -= wal_sizes_.begin()->second;
    wal_sizes_.erase(wal_sizes_.begin());
  }
  return absl::OkStatus();
}

void DBImpl::NoteTime(int64_t t) {
  int64_t cur = min_time_.load(std::memory_order_relaxed);
  while (t < cur && !min_time_.compare_exchange_weak(cur, t)) {
  }
  cur = max_time_.load(std::memory_order_relaxed);
  while (t > cur && !max_time_.compare_exchange_weak(cur, t)) {
  }
}

bool DBImpl::PrepareSealLocked(MemSeries* s, bool force, rocksdb::WriteBatch* batch,
                               SealJob* job) {
  if (s->sealing || s->open.empty() || seals_blocked_.load()) return false;
  int max_samples = std::max(options_.max_samples_per_chunk, 1);
  if (options_.stagger_first_chunks && s->sealed_max_t == std::numeric_limits<int64_t>::min()) {
    // The first chunk (or chunks, for a first commit of many samples): a length of its own, a
    // quarter to five quarters of max_samples_per_chunk, picked by the time of the series'
    // first sample. The series of one scrape (one target, one OpenTelemetry export) share that
    // time, so their chunks still start together: neighbours in the chunks column family with
    // equal timestamp columns, which RocksDB's compression takes advantage of (by the series
    // id instead, the chunks took 27% more disk). Targets are scraped at offsets of their own,
    // so their series are spread.
    const uint64_t spread =
        (static_cast<uint64_t>(s->open.front().t) * 0x9e3779b97f4a7c15ULL) >> 32;
    const int64_t first = max_samples / 4 +
                          static_cast<int64_t>(spread % static_cast<uint64_t>(max_samples + 1));
    max_samples = static_cast<int>(std::max<int64_t>(first, 1));
  }
  if (!force) {
    // Nothing is full: the common case after an append, decided without scanning.
    if (s->open.size() < static_cast<size_t>(max_samples) &&
        (options_.max_chunk_span_ms <= 0 ||
         s->open.back().t - s->open.front().t < options_.max_chunk_span_ms)) {
      return false;
    }
  }
  std::vector<Sample> open;
  s->open.Decode(&open);
  auto cuts = ChunkCuts(open, max_samples, options_.max_chunk_span_ms, force);
  // A commit that reserved samples and has not applied them yet may insert them at or after
  // inflight_min_t: never seal that far.
  if (s->inflight > 0) {
    while (!cuts.empty() && open[cuts.back().second - 1].t >= s->inflight_min_t) {
      cuts.pop_back();
    }
  }
  if (cuts.empty()) return false;
  std::string chunk;
  for (auto [begin, end] : cuts) {
    chunk.clear();
    absl::Status st = EncodeChunk(
        std::span<const Sample>(open.data() + begin, end - begin), &chunk);
    if (!st.ok()) {
      // Cannot happen for validated samples; keep them in the head (and the WAL).
      return false;
    }
    chunk_days_.Note(DayOf(open[begin].t));
    batch->Put(chunks_cf(), ChunkKey(s->tenant, s->id, open[begin].t), chunk);
  }
  s->sealing = true;
  ++head_.ShardOf(*s).seals;
  job->series = s;
  job->end_t = open[cuts.back().second - 1].t;
  job->chunks = static_cast<int>(cuts.size());
  return true;
}

void DBImpl::FinishSealLocked(const SealJob& job, bool written) {
  MemSeries* s = job.series;
  s->sealing = false;
  --head_.ShardOf(*s).seals;
  if (!written) return;
  s->open.EraseThrough(job.end_t);  // emptied, it keeps no buffer
  s->sealed_max_t = std::max(s->sealed_max_t, job.end_t);
  chunks_sealed_ += job.chunks;
  if (s->open.empty()) {
    s->open_min_seq = 0;
    // All sealed and no commit about to add more: queries may skip it by its end time.
    if (s->inflight == 0) SetBoundLocked(s);
  } else if (s->last_apply_seq != 0 && s->open.front().t >= s->last_apply_first_t) {
    s->open_min_seq = std::max(s->open_min_seq, s->last_apply_seq);
  }
}

void DBImpl::AddSealRecord(const std::vector<SealJob>& jobs, rocksdb::WriteBatch* batch) {
  if (jobs.empty() || !checkpoint_exists_.load()) return;
  WalSeal seal;
  seal.series.reserve(jobs.size());
  for (const SealJob& job : jobs) {
    seal.series.push_back({job.series->tenant, job.series->id, job.end_t});
  }
  std::string record;
  EncodeWalSeal(seal, &record);
  absl::MutexLock lock(&wal_mu_);
  const uint64_t seq = next_wal_seq_++;
  NoteWalRecordLocked(seq, static_cast<int64_t>(8 + record.size()));
  batch->Put(wal_cf(), WalKey(seq), record);
}

void DBImpl::SetBoundLocked(MemSeries* s) {
  if (!s->has_last) return;
  bounds_.Set(s->id, std::max(s->last.t, s->sealed_max_t));
  s->bounded = true;
}

absl::Status DBImpl::SealAll(bool force_all, int64_t idle_before, int64_t evict_before,
                             uint64_t* min_open_seq) {
  absl::Status first;
  std::vector<SealJob> jobs;
  int64_t evicted = 0;
  for (Head::Shard& shard : head_.shards()) {
    rocksdb::WriteBatch batch;
    jobs.clear();
    {
      absl::MutexLock lock(&shard.mu);
      std::vector<MemSeries*> evict;
      for (MemSeries* s : shard.series) {
        if (s->open.empty()) {
          // Inactive: no sample since evict_before, nothing open, nobody holding it.
          if (s->pins == 0 && s->inflight == 0 && !s->sealing &&
              (!s->has_last || s->last.t < evict_before)) {
            evict.push_back(s);
          }
          continue;
        }
        const bool force = force_all || s->open.back().t < idle_before;
        SealJob job;
        if (PrepareSealLocked(s, force, &batch, &job)) jobs.push_back(job);
        else *min_open_seq = std::min(*min_open_seq, s->open_min_seq);
      }
      for (MemSeries* s : evict) {
        if (!s->bounded) SetBoundLocked(s);
        Head::EraseLocked(shard, s);
      }
      evicted += static_cast<int64_t>(evict.size());
    }
    if (jobs.empty()) continue;
    AddSealRecord(jobs, &batch);
    rocksdb::Status rs = WriteChunks(rocksdb::WriteOptions(), &batch);
    if (!rs.ok() && first.ok()) first = FromRocks(rs, "write chunks");
    absl::MutexLock lock(&shard.mu);
    for (const SealJob& job : jobs) {
      FinishSealLocked(job, rs.ok());
      if (!job.series->open.empty()) {
        *min_open_seq = std::min(*min_open_seq, job.series->open_min_seq);
      }
    }
  }
  series_evicted_ += evicted;
  return first;
}

absl::Status DBImpl::Compact() {
  if (closed_.load()) return ClosedError();
  if (options_.read_only) return absl::FailedPreconditionError("database is read-only");
  absl::MutexLock maintenance(&maintenance_mu_);
  if (closed_.load()) return ClosedError();
  const int64_t max_t = max_time_.load();
  if (max_t == std::numeric_limits<int64_t>::min()) return absl::OkStatus();  // nothing yet
  if (options_.retention_ms > 0 &&
      max_t > std::numeric_limits<int64_t>::min() + options_.retention_ms) {
    absl::Status st = DeleteBeforeImpl(max_t - options_.retention_ms);
    if (!st.ok()) return st;
  }
  if (const int32_t day = DayOf(max_t); day > bounds_day_) {
    // A new day: today's and yesterday's postings hold the series made since yesterday began
    // (and older ones still written to, which stay unknown); older ids need no end times.
    bounds_.DropBelow(bounds_day_first_id_);
    bounds_day_ = day;
    bounds_day_first_id_ = next_series_id_.load();
  }
  auto before = [max_t](int64_t span) {
    return max_t > std::numeric_limits<int64_t>::min() + span ? max_t - span : max_t;
  };
  // Commits with a sequence below this one have applied their samples to the head.
  uint64_t min_seq = MinInflightSeq();
  absl::Status st = SealAll(false, before(kIdleChunkMs),
                            before(std::max<int64_t>(options_.max_chunk_span_ms, 1)), &min_seq);
  if (!st.ok()) return st;
  st = ReleaseWalBelow(min_seq);
  if (!st.ok()) return st;
  FitBlockCache();
  // Open chunks hold more log than allowed: write them down so it can go.
  if (options_.checkpoint_wal_bytes > 0 && wal_bytes_.load() > options_.checkpoint_wal_bytes) {
    return Checkpoint();
  }
  return absl::OkStatus();
}

int64_t DBImpl::HeadMemoryBytes() {
  int64_t bytes = LabelPool::Global().MemoryBytes();
  for (Head::Shard& shard : head_.shards()) {
    absl::MutexLock lock(&shard.mu);
    bytes += SetBytesLocked(shard);
    for (const MemSeries* s : shard.series) bytes += s->MemoryBytes();
  }
  return bytes;
}

void DBImpl::FitBlockCache() {
  if (block_cache_ == nullptr) return;
  const int64_t budget = MemoryBudget();
  const int64_t over = std::max<int64_t>(0, HeadMemoryBytes() - budget / 2);
  const int64_t capacity = std::max(budget / 2 - over, budget / 4 + budget / 8);
  block_cache_->SetCapacity(static_cast<size_t>(capacity));
}

absl::Status DBImpl::DeleteBefore(int64_t cutoff_ms) {
  if (closed_.load()) return ClosedError();
  if (options_.read_only) return absl::FailedPreconditionError("database is read-only");
  return DeleteBeforeImpl(cutoff_ms);
}

absl::Status DBImpl::DeleteBeforeImpl(int64_t cutoff_ms) {
  std::vector<uint32_t> tenants;
  {
    absl::MutexLock lock(&tenants_mu_);
    for (const auto& [name, id] : tenants_) tenants.push_back(id);
  }
  // Whole days before the cutoff's day go, postings and chunks (a chunk holds one day): one
  // range deletion per tenant and column family. Only when there is something new to drop,
  // since this runs every maintenance pass: the cutoff reached a new day, or chunks of an
  // older day were written (a backfill).
  const int32_t cutoff_day = DayOf(cutoff_ms);
  if (cutoff_day <= retention_day_.load() && cutoff_day <= chunk_days_.first()) {
    return DeleteExemplarsBefore(cutoff_ms);
  }
  // Readers stop looking at those days first: what they would find is going.
  chunk_days_.DropBefore(cutoff_day);
  for (uint32_t tenant : tenants) {
    rocksdb::Status rs = db_->DeleteRange(
        rocksdb::WriteOptions(), postings_cf(),
        PostingsDayPrefix(tenant, std::numeric_limits<int32_t>::min()),
        PostingsDayPrefix(tenant, cutoff_day));
    if (!rs.ok()) return FromRocks(rs, absl::StrCat("delete postings of tenant ", tenant));
    // SST files wholly inside the range go at once; the tombstone drops the rest when
    // compaction reaches it.
    const std::string begin = ChunkDayPrefix(tenant, std::numeric_limits<int32_t>::min());
    const std::string end = ChunkDayPrefix(tenant, cutoff_day);
    const rocksdb::Slice b(begin), e(end);
    rs = rocksdb::DeleteFilesInRange(db_, chunks_cf(), &b, &e);
    if (!rs.ok()) return FromRocks(rs, absl::StrCat("drop chunk files of tenant ", tenant));
    rocksdb::WriteBatch range;
    rs = range.DeleteRange(chunks_cf(), begin, end);
    if (rs.ok()) rs = WriteChunks(rocksdb::WriteOptions(), &range);
    if (!rs.ok()) return FromRocks(rs, absl::StrCat("delete chunks of tenant ", tenant));
  }
  retention_day_ = cutoff_day;
  return DeleteExemplarsBefore(cutoff_ms);
}

absl::Status DBImpl::Close() {
  absl::MutexLock maintenance(&maintenance_mu_);
  if (closed_.load()) return absl::OkStatus();
  DrainCommits();
  absl::Status result;
  if (!options_.read_only) {
    // Leave a compact directory: every head chunk sealed, every WAL record released, and all
    // memtables flushed so that RocksDB's log files hold nothing still needed and are deleted
    // (a flush drops the records the range deletion covers).
    uint64_t min_seq = std::numeric_limits<uint64_t>::max();
    result = SealAll(true, 0, std::numeric_limits<int64_t>::min(), &min_seq);
    if (result.ok() && checkpoint_exists_.load()) {
      // Everything the checkpoint holds is sealed now: once that is durable, the checkpoint
      // goes, and only then the seal records that make an old checkpoint safe to load.
      rocksdb::Status rs = db_->FlushWAL(/*sync=*/true);
      result = rs.ok() ? RemoveCheckpoint() : FromRocks(rs, "sync RocksDB log");
    }
    if (result.ok()) {
      uint64_t next;
      {
        absl::MutexLock lock(&wal_mu_);
        next = next_wal_seq_;
      }
      result = ReleaseWalBelow(next);
    }
    if (result.ok() && max_time_.load() != std::numeric_limits<int64_t>::min()) {
      // The head leaves nothing behind to replay: keep its time range for the next open (the
      // out-of-order window counts from the newest sample).
      std::string range;
      PutI64Ordered(&range, min_time_.load());
      PutI64Ordered(&range, max_time_.load());
      rocksdb::Status rs = db_->Put(rocksdb::WriteOptions(), meta_cf(), kMetaTimeRange, range);
      if (!rs.ok()) result = FromRocks(rs, "write time range");
    }
    rocksdb::FlushOptions fo;
    fo.wait = true;
    fo.allow_write_stall = true;
    std::vector<rocksdb::ColumnFamilyHandle*> all;
    for (rocksdb::ColumnFamilyHandle* cf : cfs_) {
      if (cf != nullptr) all.push_back(cf);
    }
    rocksdb::Status rs = db_->Flush(fo, all);
    if (!rs.ok() && result.ok()) result = FromRocks(rs, "flush memtables");
    if (result.ok()) {
      // The WAL column family is now range tombstones over nothing: compact them away.
      rocksdb::CompactRangeOptions co;
      co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      rs = db_->CompactRange(co, wal_cf(), nullptr, nullptr);
      if (!rs.ok()) result = FromRocks(rs, "compact WAL column family");
    }
    rs = db_->FlushWAL(/*sync=*/true);
    if (!rs.ok() && result.ok()) result = FromRocks(rs, "flush WAL");
  }
  CloseRocks();
  return result;
}

rocksdb::Status DBImpl::WriteChunks(const rocksdb::WriteOptions& options,
                                    rocksdb::WriteBatch* batch) {
  rocksdb::Status rs = db_->Write(options, batch);
  chunk_writes_.fetch_add(1);
  return rs;
}

void DBImpl::SimulateCrashForTesting() {
  absl::MutexLock maintenance(&maintenance_mu_);
  DrainCommits();
  CloseRocks();
}

void DBImpl::CloseRocks() {
  closed_ = true;
  if (db_ == nullptr) return;
  chunk_iterators_->DropAll();
  for (rocksdb::ColumnFamilyHandle* cf : cfs_) {
    if (cf != nullptr) (void)db_->DestroyColumnFamilyHandle(cf);
  }
  cfs_.clear();
  (void)db_->Close();
  delete db_;
  db_ = nullptr;
}

Stats DBImpl::GetStats() {
  Stats stats;
  if (closed_.load()) return stats;
  {
    absl::MutexLock lock(&tenants_mu_);
    stats.tenants = static_cast<int64_t>(tenants_.size());
  }
  uint64_t keys = 0;
  if (db_->GetIntProperty(series_cf(), "rocksdb.estimate-num-keys", &keys)) {
    stats.series = static_cast<int64_t>(keys / 2);  // one 'L' and one 'I' key per series
  }
  for (Head::Shard& shard : head_.shards()) {
    absl::MutexLock lock(&shard.mu);
    stats.head_series += static_cast<int64_t>(shard.series.size());
    stats.head_bytes += SetBytesLocked(shard);
    for (const MemSeries* s : shard.series) {
      stats.head_bytes += s->MemoryBytes();
      stats.head_chunk_bytes += s->open.MemoryBytes();
      stats.head_label_bytes += static_cast<int64_t>(s->label_id_bytes());
      if (s->open.empty()) continue;
      ++stats.active_series;
      ++stats.head_chunks;
      stats.head_samples += static_cast<int64_t>(s->open.size());
    }
  }
  // The pool is the process's (shared by every open DB); counted here in full.
  const int64_t pool_bytes = LabelPool::Global().MemoryBytes();
  stats.head_bytes += pool_bytes;
  stats.head_label_bytes += pool_bytes;
  stats.series_evicted = series_evicted_.load();
  stats.series_bounds_bytes = bounds_.MemoryBytes();
  stats.query_series_skipped = query_series_skipped_.load();
  stats.memory_budget_bytes = MemoryBudget();
  if (write_buffers_ != nullptr) {
    stats.memtable_bytes = static_cast<int64_t>(write_buffers_->memory_usage());
  }
  if (block_cache_ != nullptr) {
    stats.block_cache_bytes = static_cast<int64_t>(block_cache_->GetUsage());
    stats.block_cache_capacity = static_cast<int64_t>(block_cache_->GetCapacity());
  }
  stats.samples_appended = samples_appended_.load();
  stats.chunks_sealed = chunks_sealed_.load();
  stats.wal_bytes = wal_bytes_.load();
  stats.head_checkpoints = checkpoints_written_.load();
  stats.checkpoint_series = checkpoint_series_.load();
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(options_.path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      auto size = it->file_size(size_ec);
      if (!size_ec) stats.disk_bytes += static_cast<int64_t>(size);
    }
  }
  if (max_time_.load() != std::numeric_limits<int64_t>::min()) {
    stats.min_time_ms = min_time_.load();
    stats.max_time_ms = max_time_.load();
  }
  return stats;
}

}  // namespace tidemark::internal
