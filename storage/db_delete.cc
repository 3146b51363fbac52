// DBImpl::DeleteSeries: deleting the samples of matching series in a time range.
//
// Deletion is physical, not a tombstone: the head's open chunks lose the samples at once and
// the sealed chunks that overlap the range are rewritten without them. What makes it durable
// is a deletion record in the write-ahead log (storage/FORMAT.md): the WAL may still hold
// records with the deleted samples, and replay would otherwise put them back into the head.
// The record sorts after every commit that reserved samples before it and before every later
// one, so on replay it removes exactly what those earlier commits had put in the head.
//
// Appends wait while a deletion runs (it holds reserve_mu_ from taking its sequence number to
// the end): no commit can add samples to a matched series between the head trim and the chunk
// rewrite, and no seal can move samples between the two.
#include <algorithm>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/chunk.h"
#include "storage/db_impl.h"
#include "storage/keys.h"
#include "storage/rocks_util.h"

namespace tidemark::internal {
namespace {

// A batch this large is written before the next series is rewritten.
constexpr size_t kMaxBatchBytes = 8 << 20;

}  // namespace

void DBImpl::DeleteOpenSamplesLocked(MemSeries* s, int64_t mint, int64_t maxt) {
  auto first = std::lower_bound(s->open.begin(), s->open.end(), mint,
                                [](const Sample& a, int64_t t) { return a.t < t; });
  auto last = std::upper_bound(first, s->open.end(), maxt,
                               [](int64_t t, const Sample& a) { return t < a.t; });
  s->open.erase(first, last);
  if (s->open.empty()) {
    s->open_min_seq = 0;
    std::vector<Sample>().swap(s->open);
  }
}

absl::Status DBImpl::DeleteChunkSamples(uint32_t tenant, uint64_t series_id, int64_t mint,
                                        int64_t maxt, rocksdb::WriteBatch* batch) {
  const std::string prefix = ChunkSeriesPrefix(tenant, series_id);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), chunks_cf()));
  it->SeekForPrev(ChunkKey(tenant, series_id, mint));
  if (!it->Valid() || !StartsWith(it->key(), prefix)) it->Seek(prefix);
  std::vector<Sample> kept;
  std::string encoded;
  ChunkIterator chunk;
  for (; it->Valid() && StartsWith(it->key(), prefix); it->Next()) {
    if (it->key().size() != kChunkKeySize) continue;
    if (ChunkKeyStart(View(it->key())) > maxt) break;
    auto info = ReadChunkInfo(View(it->value()));
    if (!info.ok()) {
      return absl::DataLossError(absl::StrCat("chunk of series ", series_id, ": ",
                                              info.status().message()));
    }
    if (info->max_time_ms < mint) continue;
    kept.clear();
    bool dropped = false;
    chunk.Reset(View(it->value()));
    while (chunk.Next()) {
      const Sample s = chunk.At();
      if (s.t >= mint && s.t <= maxt) {
        dropped = true;
      } else {
        kept.push_back(s);
      }
    }
    if (!chunk.status().ok()) {
      return absl::DataLossError(absl::StrCat("chunk of series ", series_id, ": ",
                                              chunk.status().message()));
    }
    if (!dropped) continue;
    batch->Delete(chunks_cf(), it->key());
    if (kept.empty()) continue;
    encoded.clear();
    absl::Status st = EncodeChunk(kept, &encoded);
    if (!st.ok()) return st;
    batch->Put(chunks_cf(), ChunkKey(tenant, series_id, kept.front().t), encoded);
  }
  if (!it->status().ok()) {
    return absl::InternalError(absl::StrCat("read chunks: ", it->status().ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DBImpl::DeleteSeries(
    std::string_view tenant, const std::vector<std::vector<LabelMatcher>>& selectors,
    int64_t mint_ms, int64_t maxt_ms) {
  if (absl::Status st = CheckWritable(); !st.ok()) return st;
  absl::MutexLock maintenance(&maintenance_mu_);
  if (closed_.load()) return ClosedError();
  std::optional<uint32_t> tid = FindTenant(tenant);
  if (!tid.has_value() || mint_ms > maxt_ms) return 0;
  if (!BeginCommit()) return ClosedError();
  struct EndCommitOnExit {
    DBImpl* db;
    ~EndCommitOnExit() { db->EndCommit(); }
  } end_commit{this};

  absl::MutexLock reserve(&reserve_mu_);
  // Matched after appends stopped, so that a series a commit just created is seen.
  std::map<uint64_t, Labels> matched;
  for (const std::vector<LabelMatcher>& matchers : selectors) {
    auto series = MatchSeries(*tid, matchers, mint_ms, maxt_ms);
    if (!series.ok()) return series.status();
    for (auto& [id, labels] : *series) matched.emplace(id, std::move(labels));
  }
  if (matched.empty()) return 0;

  // Every commit that reserved samples before this point applies them (and seals what it
  // fills) before the head is trimmed.
  uint64_t seq;
  {
    absl::MutexLock lock(&wal_mu_);
    seq = next_wal_seq_++;
    auto before = [this, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wal_mu_) {
      return inflight_.empty() || *inflight_.begin() >= seq;
    };
    wal_mu_.Await(absl::Condition(&before));
    inflight_.insert(seq);
  }

  WalDeletion deletion;
  deletion.tenant = *tid;
  deletion.mint = mint_ms;
  deletion.maxt = maxt_ms;
  std::vector<MemSeries*> in_head;
  for (auto& [id, labels] : matched) {
    deletion.series_ids.push_back(id);
    const uint64_t hash = SeriesHash(*tid, LabelsHash(labels));
    Head::Shard& shard = head_.ShardFor(hash);
    absl::MutexLock lock(&shard.mu);
    MemSeries* s = Head::FindLocked(shard, Head::Key{hash, *tid, &labels});
    if (s == nullptr) continue;
    auto not_sealing = [s]() { return !s->sealing; };
    shard.mu.Await(absl::Condition(&not_sealing));
    DeleteOpenSamplesLocked(s, mint_ms, maxt_ms);
    // Nobody seals it (and the head keeps it) until its chunks are rewritten.
    s->sealing = true;
    ++s->pins;
    in_head.push_back(s);
  }

  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncPolicy::kAlways;
  std::string record;
  EncodeWalDeletion(deletion, &record);
  rocksdb::WriteBatch batch;
  batch.Put(wal_cf(), WalKey(seq), record);
  absl::Status result;
  bool record_written = false;
  auto write = [&]() {
    rocksdb::Status rs = db_->Write(wo, &batch);
    if (!rs.ok()) {
      result = FromRocks(rs, "delete series");
      return false;
    }
    record_written = true;
    batch.Clear();
    return true;
  };
  for (uint64_t id : deletion.series_ids) {
    result = DeleteChunkSamples(*tid, id, mint_ms, maxt_ms, &batch);
    if (!result.ok()) break;
    if (batch.GetDataSize() >= kMaxBatchBytes && !write()) break;
  }
  if (result.ok() && batch.Count() > 0) write();
  {
    absl::MutexLock lock(&wal_mu_);
    if (record_written) NoteWalRecordLocked(seq, static_cast<int64_t>(8 + record.size()));
    inflight_.erase(seq);
  }
  for (MemSeries* s : in_head) {
    absl::MutexLock lock(&head_.ShardOf(*s).mu);
    s->sealing = false;
    --s->pins;
  }
  if (!result.ok()) return result;
  return static_cast<int64_t>(matched.size());
}

}  // namespace tidemark::internal
