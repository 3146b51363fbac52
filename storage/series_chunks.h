// Sealed chunks of one series, partitioned by day (storage/FORMAT.md, "chunks").
//
// A chunk is keyed by its tenant, the UTC day of its first sample, the series id and its start
// time, and holds samples of that day only. Reading a series' chunks over a time range is one
// seek per day of the range that may hold chunks; retention drops whole days.
#ifndef TIDEMARK_STORAGE_SERIES_CHUNKS_H_
#define TIDEMARK_STORAGE_SERIES_CHUNKS_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "rocksdb/db.h"

namespace tidemark::internal {

// The days that may hold sealed chunks, as a range (empty when first > last). It only widens,
// except when retention drops the days below a cutoff. A writer widens it before it writes a
// chunk of a new day, so a reader that finds the chunk's samples gone from the head and then
// reads the range sees that day.
class ChunkDays {
 public:
  void Note(int32_t day) {
    int32_t cur = first_.load();
    while (day < cur && !first_.compare_exchange_weak(cur, day)) {
    }
    cur = last_.load();
    while (day > cur && !last_.compare_exchange_weak(cur, day)) {
    }
  }
  // Retention dropped every day before `day`.
  void DropBefore(int32_t day) {
    int32_t cur = first_.load();
    while (day > cur && !first_.compare_exchange_weak(cur, day)) {
    }
  }
  int32_t first() const { return first_.load(); }
  int32_t last() const { return last_.load(); }

 private:
  std::atomic<int32_t> first_{std::numeric_limits<int32_t>::max()};
  std::atomic<int32_t> last_{std::numeric_limits<int32_t>::min()};
};

// Finds the days that hold chunks in the chunks column family (one seek per tenant and end).
absl::Status ScanChunkDays(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks,
                           ChunkDays* days);

// The chunks of one series that may hold samples in [mint, maxt], in time order: in mint's
// day the chunk that starts at or before mint (it may reach into the range) and those after
// it, then every chunk of the following days that starts at or before maxt. Keys of another
// size are skipped.
class SeriesChunks {
 public:
  SeriesChunks(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks, uint32_t tenant,
               uint64_t series_id, int64_t mint, int64_t maxt, const ChunkDays& days);
  // The same through `it`, an iterator over `chunks` that the caller keeps (reading many series
  // with one iterator spares making one per series).
  SeriesChunks(rocksdb::Iterator* it, uint32_t tenant, uint64_t series_id, int64_t mint,
               int64_t maxt, const ChunkDays& days);

  bool Valid() const { return valid_; }
  void Next();
  rocksdb::Slice key() const { return it_->key(); }
  std::string_view value() const { return {it_->value().data(), it_->value().size()}; }
  // OK, or why the iteration ended early.
  rocksdb::Status status() const { return it_->status(); }

 private:
  // Positions at the first chunk of day_ (at mint in mint's day), else of the days after it.
  void EnterDay(bool at_mint);
  // Skips keys of another size; true at a chunk of this series and day_ that starts <= maxt.
  bool SettleOnChunk();

  std::unique_ptr<rocksdb::Iterator> owned_;
  rocksdb::Iterator* it_;
  uint32_t tenant_;
  uint64_t series_id_;
  int64_t mint_;
  int64_t maxt_;
  int32_t day_;
  int32_t last_day_;
  std::string prefix_;
  bool valid_ = false;
};

// Reads the newest sealed chunk of a series (newest day first) into *chunk; false when it has
// none.
absl::Status NewestChunk(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks, uint32_t tenant,
                         uint64_t series_id, const ChunkDays& days, std::string* chunk,
                         bool* found);

// Rewrites format version 1 chunk keys (tenant | series id | start) as day-partitioned keys,
// splitting a chunk that spans days. Each batch is written whole (synced), so an upgrade that
// stops half way goes on from where it was at the next open.
absl::Status UpgradeChunksFromV1(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* chunks);

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_SERIES_CHUNKS_H_
