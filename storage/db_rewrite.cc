// Rewrites of sealed chunks: DBImpl::DeleteSeries (deleting the samples of matching series in a
// time range) and the merge of late samples accepted by the out-of-order window.
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
  s->open.EraseRange(mint, maxt);
  if (s->open.empty()) s->open_min_seq = 0;
}

absl::Status DBImpl::DeleteChunkSamples(uint32_t tenant, uint64_t series_id, int64_t mint,
                                        int64_t maxt, rocksdb::WriteBatch* batch) {
  SeriesChunks it(db_, chunks_cf(), tenant, series_id, mint, maxt, chunk_days_);
  std::vector<Sample> kept;
  std::string encoded;
  ChunkIterator chunk;
  for (; it.Valid(); it.Next()) {
    auto info = ReadChunkInfo(it.value());
    if (!info.ok()) {
      return absl::DataLossError(absl::StrCat("chunk of series ", series_id, ": ",
                                              info.status().message()));
    }
    if (info->max_time_ms < mint) continue;
    kept.clear();
    bool dropped = false;
    chunk.Reset(it.value());
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
    batch->Delete(chunks_cf(), it.key());
    if (kept.empty()) continue;
    encoded.clear();
    absl::Status st = EncodeChunk(kept, &encoded);
    if (!st.ok()) return st;
    batch->Put(chunks_cf(), ChunkKey(tenant, series_id, kept.front().t), encoded);
  }
  if (!it.status().ok()) {
    return absl::InternalError(absl::StrCat("read chunks: ", it.status().ToString()));
  }
  return absl::OkStatus();
}

absl::Status DBImpl::MergeIntoChunks(uint32_t tenant, uint64_t series_id,
                                     std::span<const Sample> late, rocksdb::WriteBatch* batch) {
  // Late samples of one day merge with that day's chunks only (a chunk holds one day).
  std::string prefix;
  auto is_chunk = [&prefix](rocksdb::Iterator* it) {
    return it->Valid() && it->key().size() == kChunkKeySize && StartsWith(it->key(), prefix);
  };
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), chunks_cf()));
  const size_t max = static_cast<size_t>(std::max(options_.max_samples_per_chunk, 1));
  std::vector<Sample> stored, merged;
  std::string encoded;
  ChunkIterator chunk;
  size_t i = 0;
  while (i < late.size()) {
    const int32_t day = DayOf(late[i].t);
    prefix = ChunkSeriesPrefix(tenant, day, series_id);
    it->SeekForPrev(ChunkKey(tenant, series_id, late[i].t));
    if (!is_chunk(it.get())) it->Seek(prefix);
    const bool found = is_chunk(it.get());
    std::string key;
    stored.clear();
    int64_t next_start = DayEndMs(day);
    if (found) {
      key = it->key().ToString();
      chunk.Reset(View(it->value()));
      while (chunk.Next()) stored.push_back(chunk.At());
      if (!chunk.status().ok()) {
        return absl::DataLossError(absl::StrCat("chunk of series ", series_id, ": ",
                                                chunk.status().message()));
      }
      it->Next();
      if (is_chunk(it.get())) next_start = ChunkKeyStart(View(it->key()));
    }
    if (!it->status().ok()) return FromRocks(it->status(), "read chunks");
    // This chunk takes the late samples before the next chunk; the first of a later group
    // starts at or after that chunk, whose key it finds.
    size_t end = i + 1;  // late[i] is before next_start
    while (end < late.size() && late[end].t < next_start) ++end;
    merged.clear();
    size_t a = 0;
    for (size_t b = i; a < stored.size() || b < end;) {
      if (b == end || (a < stored.size() && stored[a].t <= late[b].t)) {
        if (b < end && late[b].t == stored[a].t) ++b;  // stored already: it stays
        merged.push_back(stored[a++]);
      } else if (!merged.empty() && merged.back().t == late[b].t) {
        ++b;
      } else {
        merged.push_back(late[b++]);
      }
    }
    i = end;
    if (merged.size() == stored.size()) continue;
    if (found) batch->Delete(chunks_cf(), key);
    chunk_days_.Note(day);
    // Up to twice the usual size stays one chunk; beyond, chunks of the usual size.
    const size_t piece = merged.size() <= 2 * max ? merged.size() : max;
    for (size_t begin = 0; begin < merged.size(); begin += piece) {
      const size_t n = std::min(piece, merged.size() - begin);
      encoded.clear();
      absl::Status st =
          EncodeChunk(std::span<const Sample>(merged.data() + begin, n), &encoded);
      if (!st.ok()) return st;
      batch->Put(chunks_cf(), ChunkKey(tenant, series_id, merged[begin].t), encoded);
    }
  }
  return absl::OkStatus();
}

absl::Status DBImpl::MergeLateSamples(
    std::span<const std::pair<MemSeries*, std::vector<Sample>>> late) {
  for (const auto& [s, samples] : late) {
    Head::Shard& shard = head_.ShardOf(*s);
    {
      // The series' chunks are ours until the merge is written: no seal meanwhile.
      absl::MutexLock lock(&shard.mu);
      auto not_sealing = [s = s]() { return !s->sealing; };
      shard.mu.Await(absl::Condition(&not_sealing));
      s->sealing = true;
    }
    rocksdb::WriteBatch batch;
    absl::Status st = MergeIntoChunks(s->tenant, s->id, samples, &batch);
    if (st.ok() && batch.Count() > 0) {
      rocksdb::Status rs = WriteChunks(rocksdb::WriteOptions(), &batch);
      if (!rs.ok()) st = FromRocks(rs, "merge late samples into chunks");
    }
    {
      absl::MutexLock lock(&shard.mu);
      s->sealing = false;
    }
    if (!st.ok()) return st;
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
    rocksdb::Status rs = WriteChunks(wo, &batch);
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
