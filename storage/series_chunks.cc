#include "storage/series_chunks.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rocksdb/write_batch.h"
#include "storage/chunk.h"
#include "storage/keys.h"
#include "storage/rocks_util.h"

namespace tidemark::internal {
namespace {

// For scans across series: the prefix filters (one series-day each) would skip files.
rocksdb::ReadOptions AcrossSeries() {
  rocksdb::ReadOptions options;
  options.total_order_seek = true;
  return options;
}

}  // namespace

absl::Status ScanChunkDays(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks,
                           ChunkDays* days) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(AcrossSeries(), chunks));
  // Per tenant: its first key, then its last (the key before the next tenant's first).
  it->SeekToFirst();
  while (it->Valid()) {
    if (it->key().size() != kChunkKeySize) {
      it->Next();
      continue;
    }
    const uint32_t tenant = GetU32BE(View(it->key()));
    days->Note(ChunkKeyDay(View(it->key())));
    const bool last_tenant = tenant == std::numeric_limits<uint32_t>::max();
    std::string next;  // the next tenant's first possible key
    if (!last_tenant) PutU32BE(&next, tenant + 1);
    if (last_tenant) it->SeekToLast();
    else it->SeekForPrev(next);
    // Back over keys of another size (none are written now), at most to the tenant's first.
    while (it->Valid() && it->key().size() != kChunkKeySize) it->Prev();
    if (it->Valid()) days->Note(ChunkKeyDay(View(it->key())));
    if (last_tenant) break;
    it->Seek(next);
  }
  return it->status().ok() ? absl::OkStatus() : FromRocks(it->status(), "find chunk days");
}

SeriesChunks::SeriesChunks(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks,
                           uint32_t tenant, uint64_t series_id, int64_t mint, int64_t maxt,
                           const ChunkDays& days)
    : SeriesChunks(db->NewIterator(rocksdb::ReadOptions(), chunks), tenant, series_id, mint, maxt,
                   days) {
  owned_.reset(it_);
}

SeriesChunks::SeriesChunks(rocksdb::Iterator* it, uint32_t tenant, uint64_t series_id,
                           int64_t mint, int64_t maxt, const ChunkDays& days)
    : it_(it),
      tenant_(tenant),
      series_id_(series_id),
      mint_(mint),
      maxt_(maxt),
      day_(std::max(DayOf(mint), days.first())),
      last_day_(std::min(DayOf(maxt), days.last())) {
  if (mint <= maxt && day_ <= last_day_) EnterDay(day_ == DayOf(mint));
}

void SeriesChunks::EnterDay(bool at_mint) {
  for (;;) {
    prefix_ = ChunkSeriesPrefix(tenant_, day_, series_id_);
    if (at_mint) {
      it_->SeekForPrev(ChunkKey(tenant_, series_id_, mint_));
      if (it_->Valid() && StartsWith(it_->key(), prefix_) && SettleOnChunk()) {
        valid_ = true;
        return;
      }
      if (!it_->status().ok()) break;
    }
    it_->Seek(prefix_);
    if (SettleOnChunk()) {
      valid_ = true;
      return;
    }
    if (!it_->status().ok() || day_ >= last_day_) break;
    ++day_;
    at_mint = false;
  }
  valid_ = false;
}

bool SeriesChunks::SettleOnChunk() {
  while (it_->Valid() && StartsWith(it_->key(), prefix_)) {
    if (it_->key().size() == kChunkKeySize) return ChunkKeyStart(View(it_->key())) <= maxt_;
    it_->Next();
  }
  return false;
}

void SeriesChunks::Next() {
  if (!valid_) return;
  it_->Next();
  if (SettleOnChunk()) return;
  if (!it_->status().ok() || day_ >= last_day_) {
    valid_ = false;
    return;
  }
  ++day_;
  EnterDay(false);
}

absl::Status NewestChunk(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks, uint32_t tenant,
                         uint64_t series_id, const ChunkDays& days, std::string* chunk,
                         bool* found) {
  *found = false;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), chunks));
  for (int32_t day = days.last(); day >= days.first(); --day) {
    const std::string prefix = ChunkSeriesPrefix(tenant, day, series_id);
    it->SeekForPrev(prefix + std::string(8, '\xff'));
    while (it->Valid() && StartsWith(it->key(), prefix) && it->key().size() != kChunkKeySize) {
      it->Prev();
    }
    if (!it->status().ok()) return FromRocks(it->status(), "find last chunk");
    if (it->Valid() && StartsWith(it->key(), prefix)) {
      chunk->assign(View(it->value()));
      *found = true;
      return absl::OkStatus();
    }
    if (day == std::numeric_limits<int32_t>::min()) break;
  }
  return absl::OkStatus();
}

absl::Status UpgradeChunksFromV1(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks) {
  constexpr size_t kBatchBytes = 16 << 20;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(AcrossSeries(), chunks));
  rocksdb::WriteBatch batch;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  std::vector<Sample> samples;
  std::string encoded;
  auto flush = [&]() -> absl::Status {
    if (batch.Count() == 0) return absl::OkStatus();
    rocksdb::Status rs = db->Write(sync, &batch);
    batch.Clear();
    return rs.ok() ? absl::OkStatus() : FromRocks(rs, "upgrade chunk keys");
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != kChunkKeySizeV1) continue;
    const std::string_view key = View(it->key());
    const uint32_t tenant = GetU32BE(key);
    const uint64_t id = GetU64BE(key.substr(4));
    const std::string_view value = View(it->value());
    absl::StatusOr<ChunkInfo> info = ReadChunkInfo(value);
    if (!info.ok()) {
      return absl::DataLossError(absl::StrCat("upgrade: chunk of series ", id, ": ",
                                              info.status().message()));
    }
    if (DayOf(info->min_time_ms) == DayOf(info->max_time_ms)) {
      batch.Put(chunks, ChunkKey(tenant, id, info->min_time_ms), it->value());
    } else {
      // One chunk per day it spans.
      samples.clear();
      ChunkIterator ci(value);
      while (ci.Next()) samples.push_back(ci.At());
      if (!ci.status().ok()) {
        return absl::DataLossError(absl::StrCat("upgrade: chunk of series ", id, ": ",
                                                ci.status().message()));
      }
      for (size_t begin = 0; begin < samples.size();) {
        const int64_t day_end = DayEndMs(DayOf(samples[begin].t));
        size_t end = begin + 1;
        while (end < samples.size() && samples[end].t < day_end) ++end;
        encoded.clear();
        absl::Status st = EncodeChunk(
            std::span<const Sample>(samples.data() + begin, end - begin), &encoded);
        if (!st.ok()) return st;
        batch.Put(chunks, ChunkKey(tenant, id, samples[begin].t), encoded);
        begin = end;
      }
    }
    batch.Delete(chunks, it->key());
    if (batch.GetDataSize() >= kBatchBytes) {
      absl::Status st = flush();
      if (!st.ok()) return st;
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "upgrade: read chunks");
  return flush();
}

}  // namespace tidemark::internal
