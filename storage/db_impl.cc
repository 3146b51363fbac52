#include "storage/db_impl.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <span>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "storage/chunk.h"
#include "storage/keys.h"

namespace tidemark::internal {
namespace {

constexpr int64_t kIdleChunkMs = 3600 * 1000;

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  std::string msg = absl::StrCat(std::string(what), ": ", s.ToString());
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsIncomplete() || s.IsNoSpace() ||
      s.IsIOError()) {
    return absl::UnavailableError(msg);
  }
  if (s.IsCorruption()) return absl::DataLossError(msg);
  return absl::InternalError(msg);
}

std::string_view View(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

bool StartsWith(const rocksdb::Slice& key, std::string_view prefix) {
  return key.size() >= prefix.size() && std::string_view(key.data(), prefix.size()) == prefix;
}

absl::Status ClosedError() { return absl::FailedPreconditionError("database is closed"); }

}  // namespace

DBImpl::DBImpl(const Options& options) : options_(options) {}

DBImpl::~DBImpl() {
  if (!closed_.load()) (void)Close();
}

absl::Status DBImpl::Open() {
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  rocksdb::ColumnFamilyOptions cfo;
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
  for (const std::string& name : present) {
    cfds.emplace_back(name, cfo);
    // Chunks are compressed by our codec already.
    if (name == kChunksCF) cfds.back().options.compression = rocksdb::kNoCompression;
  }
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
  closed_ = false;
  absl::Status st = CheckFormat();
  if (st.ok()) st = LoadCounters();
  if (st.ok()) st = ReplayWal();
  if (!st.ok()) CloseRocks();
  return st;
}

absl::Status DBImpl::CheckFormat() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf(), kMetaFormatVersion, &value);
  if (s.IsNotFound()) {
    if (options_.read_only) {
      return absl::FailedPreconditionError(
          absl::StrCat("database at ", options_.path, " has no format version"));
    }
    std::string v;
    PutU32BE(&v, kFormatVersion);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db_->Put(wo, meta_cf(), kMetaFormatVersion, v);
    return s.ok() ? absl::OkStatus() : FromRocks(s, "write format version");
  }
  if (!s.ok()) return FromRocks(s, "read format version");
  if (value.size() != 4) {
    return absl::FailedPreconditionError(absl::StrCat(
        "database at ", options_.path, " has a malformed format version (", value.size(),
        " bytes)"));
  }
  uint32_t version = GetU32BE(value);
  if (version != kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("database at ", options_.path, " has format version ", version,
                     "; this Tidemark reads format version ", kFormatVersion));
  }
  return absl::OkStatus();
}

absl::Status DBImpl::LoadCounters() {
  absl::MutexLock commit(&commit_mu_);
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf(), kMetaNextSeriesId, &value);
  if (s.ok() && value.size() == 8) next_series_id_ = GetU64BE(value);
  else if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "read next series id");
  s = db_->Get(rocksdb::ReadOptions(), meta_cf(), kMetaNextTenantId, &value);
  if (s.ok() && value.size() == 4) next_tenant_id_ = GetU32BE(value);
  else if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "read next tenant id");

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
      tenants_[std::string(View(it->key()).substr(prefix.size()))] = GetU32BE(View(it->value()));
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "load tenants");

  std::unique_ptr<rocksdb::Iterator> wal(db_->NewIterator(rocksdb::ReadOptions(), wal_cf()));
  wal->SeekToLast();
  if (wal->Valid() && wal->key().size() == 8) next_wal_seq_ = GetU64BE(View(wal->key())) + 1;
  if (!wal->status().ok()) return FromRocks(wal->status(), "read WAL end");
  return absl::OkStatus();
}

absl::Status DBImpl::LoadSealedTail(MemSeries* s) {
  std::string prefix = ChunkSeriesPrefix(s->tenant, s->id);
  std::string last = prefix + std::string(8, '\xff');
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), chunks_cf()));
  it->SeekForPrev(last);
  if (!it->status().ok()) return FromRocks(it->status(), "find last chunk");
  if (!it->Valid() || !StartsWith(it->key(), prefix)) return absl::OkStatus();
  std::string chunk(View(it->value()));
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

absl::Status DBImpl::ReplayWal() {
  absl::MutexLock commit(&commit_mu_);
  absl::flat_hash_map<uint64_t, MemSeries*> by_id;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), wal_cf()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 8) continue;
    const uint64_t seq = GetU64BE(View(it->key()));
    NoteWalRecord(seq, static_cast<int64_t>(it->key().size() + it->value().size()));
    auto entries = DecodeWalRecord(View(it->value()));
    if (!entries.ok()) {
      return absl::DataLossError(
          absl::StrCat("replay WAL record ", seq, ": ", entries.status().message()));
    }
    for (WalEntry& e : *entries) {
      MemSeries*& s = by_id[e.series_id];
      if (s == nullptr) {
        Labels labels = e.labels;
        if (!e.has_labels) {
          std::string bytes;
          rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), series_cf(),
                                        SeriesByIdKey(e.tenant, e.series_id), &bytes);
          if (!rs.ok()) {
            return FromRocks(rs, absl::StrCat("replay WAL record ", seq, ": labels of series ",
                                              e.series_id, " of tenant ", e.tenant));
          }
          auto decoded = DecodeLabels(bytes);
          if (!decoded.ok()) return decoded.status();
          labels = *std::move(decoded);
        }
        std::string key = Head::Key(e.tenant, labels);
        Head::Shard& shard = head_.ShardFor(key);
        absl::MutexLock lock(&shard.mu);
        auto& slot = shard.series[key];
        if (slot == nullptr) {
          slot = std::make_unique<MemSeries>();
          slot->tenant = e.tenant;
          slot->id = e.series_id;
          slot->labels = std::move(labels);
          absl::Status st = LoadSealedTail(slot.get());
          if (!st.ok()) return st;
        }
        s = slot.get();
      }
      Head::Shard& shard = head_.ShardFor(Head::Key(s->tenant, s->labels));
      absl::MutexLock lock(&shard.mu);
      for (const Sample& sample : e.samples) {
        if (s->has_last && sample.t <= s->last.t) continue;  // sealed already, or replayed
        if (s->open.empty()) s->open_min_seq = seq;
        s->open.push_back(sample);
        s->last = sample;
        s->has_last = true;
        s->last_indexed_day = std::max(s->last_indexed_day, DayOf(sample.t));
        NoteTime(sample.t);
      }
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "replay WAL");
  if (options_.read_only) return absl::OkStatus();
  uint64_t unused = 0;
  return SealAll(false, std::numeric_limits<int64_t>::min(), &unused);
}

absl::Status DBImpl::CheckWritable() {
  if (closed_.load()) return ClosedError();
  if (options_.read_only) return absl::FailedPreconditionError("database is read-only");
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> DBImpl::TenantForWrite(std::string_view tenant) {
  if (std::optional<uint32_t> id = FindTenant(tenant); id.has_value()) return *id;
  absl::MutexLock commit(&commit_mu_);
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
  auto it = tenants_.find(std::string(tenant));
  if (it == tenants_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<MemSeries*> DBImpl::FindSeries(uint32_t tenant, const Labels& labels) {
  if (closed_.load()) return ClosedError();
  std::string key = Head::Key(tenant, labels);
  Head::Shard& shard = head_.ShardFor(key);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.series.find(key);
  if (it != shard.series.end()) return it->second.get();
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), series_cf(), SeriesByLabelsKey(tenant, labels), &value);
  if (s.IsNotFound()) return nullptr;
  if (!s.ok()) return FromRocks(s, absl::StrCat("look up series ", labels.ToString()));
  if (value.size() != 8) {
    return absl::DataLossError(absl::StrCat("series id of ", labels.ToString(), " has ",
                                            value.size(), " bytes"));
  }
  auto series = std::make_unique<MemSeries>();
  series->tenant = tenant;
  series->id = GetU64BE(value);
  series->labels = labels;
  absl::Status st = LoadSealedTail(series.get());
  if (!st.ok()) return st;
  MemSeries* out = series.get();
  shard.series[key] = std::move(series);
  return out;
}

MemSeries* DBImpl::FindHeadSeries(uint32_t tenant, const Labels& labels) {
  std::string key = Head::Key(tenant, labels);
  Head::Shard& shard = head_.ShardFor(key);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.series.find(key);
  return it == shard.series.end() ? nullptr : it->second.get();
}

void DBImpl::NoteWalRecord(uint64_t seq, int64_t bytes) {
  absl::MutexLock lock(&wal_mu_);
  wal_sizes_.emplace_back(seq, bytes);
  wal_bytes_ += bytes;
}

void DBImpl::ReleaseWal(uint64_t below) {
  absl::MutexLock lock(&wal_mu_);
  while (!wal_sizes_.empty() && wal_sizes_.front().first < below) {
    wal_bytes_ -= wal_sizes_.front().second;
    wal_sizes_.pop_front();
  }
}

void DBImpl::NoteTime(int64_t t) {
  int64_t cur = min_time_.load();
  while (t < cur && !min_time_.compare_exchange_weak(cur, t)) {
  }
  cur = max_time_.load();
  while (t > cur && !max_time_.compare_exchange_weak(cur, t)) {
  }
}

absl::Status DBImpl::SealLocked(MemSeries* s, bool force, uint64_t seq, size_t added) {
  auto cuts = ChunkCuts(s->open, options_.max_samples_per_chunk, options_.max_chunk_span_ms,
                        force);
  if (cuts.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (auto [begin, end] : cuts) {
    std::string chunk;
    absl::Status st = EncodeChunk(
        std::span<const Sample>(s->open.data() + begin, end - begin), &chunk);
    if (!st.ok()) {
      return absl::InternalError(absl::StrCat("BUG: encode chunk of series ", s->id, ": ",
                                              st.message()));
    }
    rocksdb::Status rs =
        batch.Put(chunks_cf(), ChunkKey(s->tenant, s->id, s->open[begin].t), chunk);
    if (!rs.ok()) return FromRocks(rs, "batch chunk");
  }
  rocksdb::Status rs = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!rs.ok()) return FromRocks(rs, absl::StrCat("write chunks of series ", s->id));
  const size_t end = cuts.back().second;
  s->sealed_max_t = s->open[end - 1].t;
  s->open.erase(s->open.begin(), s->open.begin() + end);
  chunks_sealed_ += static_cast<int64_t>(cuts.size());
  if (s->open.empty()) {
    s->open_min_seq = 0;
  } else if (seq != 0 && s->open.size() <= added) {
    s->open_min_seq = seq;
  }
  return absl::OkStatus();
}

absl::Status DBImpl::SealAll(bool force_all, int64_t idle_before, uint64_t* min_open_seq) {
  absl::Status first;
  for (Head::Shard& shard : head_.shards()) {
    absl::MutexLock lock(&shard.mu);
    for (auto& [key, s] : shard.series) {
      if (s->open.empty()) continue;
      bool force = force_all || s->open.back().t < idle_before;
      absl::Status st = SealLocked(s.get(), force, 0, 0);
      if (!st.ok() && first.ok()) first = st;
      if (!s->open.empty()) *min_open_seq = std::min(*min_open_seq, s->open_min_seq);
    }
  }
  return first;
}

absl::Status DBImpl::Compact() {
  if (closed_.load()) return ClosedError();
  if (options_.read_only) return absl::FailedPreconditionError("database is read-only");
  absl::MutexLock commit(&commit_mu_);
  const int64_t max_t = max_time_.load();
  if (max_t == std::numeric_limits<int64_t>::min()) return absl::OkStatus();  // nothing yet
  if (options_.retention_ms > 0 &&
      max_t > std::numeric_limits<int64_t>::min() + options_.retention_ms) {
    absl::Status st = DeleteBeforeImpl(max_t - options_.retention_ms);
    if (!st.ok()) return st;
  }
  const int64_t idle_before =
      max_t > std::numeric_limits<int64_t>::min() + kIdleChunkMs ? max_t - kIdleChunkMs
                                                                 : max_t;
  uint64_t min_seq = next_wal_seq_;
  absl::Status st = SealAll(false, idle_before, &min_seq);
  if (!st.ok()) return st;
  rocksdb::Status rs =
      db_->DeleteRange(rocksdb::WriteOptions(), wal_cf(), WalKey(0), WalKey(min_seq));
  if (!rs.ok()) return FromRocks(rs, "release WAL");
  ReleaseWal(min_seq);
  return absl::OkStatus();
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
  // Postings: whole days before the cutoff's day, one range tombstone per tenant.
  const int32_t cutoff_day = DayOf(cutoff_ms);
  for (uint32_t tenant : tenants) {
    if (cutoff_day == std::numeric_limits<int32_t>::min()) break;
    rocksdb::Status rs = db_->DeleteRange(
        rocksdb::WriteOptions(), postings_cf(),
        PostingsDayPrefix(tenant, std::numeric_limits<int32_t>::min()),
        PostingsDayPrefix(tenant, cutoff_day));
    if (!rs.ok()) return FromRocks(rs, absl::StrCat("delete postings of tenant ", tenant));
  }
  // Chunks: per series, the leading chunks that end before the cutoff. This visits one key per
  // series plus the deleted chunks (see FORMAT.md: time partitions would make it a drop).
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), chunks_cf()));
  it->SeekToFirst();
  while (it->Valid()) {
    if (it->key().size() != kChunkKeySize) {
      it->Next();
      continue;
    }
    const std::string prefix(View(it->key()).substr(0, 12));
    std::optional<int64_t> last_deleted;
    for (; it->Valid() && StartsWith(it->key(), prefix) && it->key().size() == kChunkKeySize;
         it->Next()) {
      int64_t start = ChunkKeyStart(View(it->key()));
      if (start >= cutoff_ms) break;
      auto info = ReadChunkInfo(View(it->value()));
      if (!info.ok() || info->max_time_ms >= cutoff_ms) break;
      last_deleted = start;
    }
    if (last_deleted.has_value()) {
      std::string begin = prefix, end = prefix;
      PutI64Ordered(&begin, std::numeric_limits<int64_t>::min());
      PutI64Ordered(&end, *last_deleted + 1);
      rocksdb::Status rs = db_->DeleteRange(rocksdb::WriteOptions(), chunks_cf(), begin, end);
      if (!rs.ok()) return FromRocks(rs, "delete chunks");
    }
    // Jump to the next series.
    it->Seek(prefix + std::string(8, '\xff'));
    if (it->Valid() && StartsWith(it->key(), prefix)) it->Next();
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan chunks for retention");
  return DeleteExemplarsBefore(cutoff_ms);
}

absl::Status DBImpl::Close() {
  if (closed_.load()) return absl::OkStatus();
  absl::Status result;
  {
    absl::MutexLock commit(&commit_mu_);
    if (!options_.read_only) {
      uint64_t min_seq = next_wal_seq_;
      result = SealAll(true, 0, &min_seq);
      if (result.ok()) {
        rocksdb::Status rs = db_->DeleteRange(rocksdb::WriteOptions(), wal_cf(), WalKey(0),
                                              WalKey(next_wal_seq_));
        if (!rs.ok()) result = FromRocks(rs, "release WAL");
        else ReleaseWal(next_wal_seq_);
      }
      rocksdb::Status rs = db_->FlushWAL(/*sync=*/true);
      if (!rs.ok() && result.ok()) result = FromRocks(rs, "flush WAL");
    }
    CloseRocks();
  }
  return result;
}

void DBImpl::SimulateCrashForTesting() {
  absl::MutexLock commit(&commit_mu_);
  CloseRocks();
}

void DBImpl::CloseRocks() {
  closed_ = true;
  if (db_ == nullptr) return;
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
    for (const auto& [key, s] : shard.series) {
      if (s->open.empty()) continue;
      ++stats.active_series;
      ++stats.head_chunks;
      stats.head_samples += static_cast<int64_t>(s->open.size());
    }
  }
  stats.samples_appended = samples_appended_.load();
  stats.chunks_sealed = chunks_sealed_.load();
  stats.wal_bytes = wal_bytes_.load();
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
