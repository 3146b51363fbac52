// Sealed chunks are partitioned by UTC day (storage/FORMAT.md, "chunks"): reads across days,
// late samples, deletion, retention by whole days, and the upgrade of format version 1.
#include <rocksdb/db.h>

#include <algorithm>
#include <vector>

#include "storage/chunk.h"
#include "storage/keys.h"
#include "tests/storage/db_test_fixture.h"

namespace tidemark {
namespace {

using internal::ChunkKeyDay;
using internal::DayOf;

// The database's column families opened with RocksDB directly (the database closed).
class RawDB {
 public:
  explicit RawDB(const std::string& path) {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfds;
    for (const char* name : {"default", "meta", "series", "postings", "chunks", "wal",
                             "exemplars", "metadata", "state"}) {
      cfds.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    status_ = rocksdb::DB::Open(rocksdb::DBOptions(), path, cfds, &handles_, &db_);
  }
  ~RawDB() {
    for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    delete db_;
  }
  bool ok() const { return status_.ok(); }
  rocksdb::DB* db() { return db_; }
  rocksdb::ColumnFamilyHandle* meta() { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* chunks() { return handles_[4]; }

  struct Chunk {
    std::string key;
    std::vector<Sample> samples;
  };
  std::vector<Chunk> Chunks() {
    std::vector<Chunk> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), chunks()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      Chunk c{it->key().ToString(), {}};
      ChunkIterator ci(std::string_view(it->value().data(), it->value().size()));
      while (ci.Next()) c.samples.push_back(ci.At());
      EXPECT_TRUE(ci.status().ok()) << ci.status();
      out.push_back(std::move(c));
    }
    EXPECT_TRUE(it->status().ok());
    return out;
  }

 private:
  rocksdb::Status status_;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

class DBDaysTest : public DBTest {
 protected:
  // Closes the database and checks that every chunk key is a version 2 key whose day holds all
  // of the chunk's samples; returns how many chunks there are.
  size_t CloseAndCheckChunkDays() {
    EXPECT_TRUE(db_->Close().ok());
    db_.reset();
    RawDB raw(options_.path);
    EXPECT_TRUE(raw.ok());
    if (!raw.ok()) return 0;
    std::vector<RawDB::Chunk> chunks = raw.Chunks();
    for (const RawDB::Chunk& c : chunks) {
      EXPECT_EQ(c.key.size(), internal::kChunkKeySize);
      EXPECT_FALSE(c.samples.empty());
      if (c.key.size() != internal::kChunkKeySize || c.samples.empty()) continue;
      EXPECT_EQ(internal::ChunkKeyStart(c.key), c.samples.front().t);
      EXPECT_EQ(ChunkKeyDay(c.key), DayOf(c.samples.front().t));
      EXPECT_EQ(DayOf(c.samples.back().t), DayOf(c.samples.front().t)) << c.samples.back().t;
    }
    return chunks.size();
  }

  static std::vector<Sample> Between(const std::vector<Sample>& all, int64_t mint, int64_t maxt) {
    std::vector<Sample> out;
    for (const Sample& s : all) {
      if (s.t >= mint && s.t <= maxt) out.push_back(s);
    }
    return out;
  }

  void ExpectRanges(const std::vector<Sample>& all) {
    const int64_t hour = 3600 * 1000;
    struct R {
      int64_t mint, maxt;
    };
    for (R r : std::vector<R>{{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()},
                              {kDay - hour, kDay + hour},          // across midnight
                              {kDay, kDay + 5 * 60 * 1000},        // from midnight exactly
                              {kDay - 5 * 60 * 1000, kDay - 1},    // up to midnight
                              {kDay + 7 * 60 * 1000, 2 * kDay + 7 * 60 * 1000},  // mid-chunk
                              {-kDay, -1},                         // before everything
                              {5 * kDay, 6 * kDay}}) {             // after everything
      auto got = Query("t", {Name("m")}, r.mint, r.maxt);
      std::vector<Sample> want = Between(all, r.mint, r.maxt);
      if (want.empty()) {
        EXPECT_TRUE(got.empty()) << r.mint << ".." << r.maxt;
      } else {
        ASSERT_EQ(got.size(), 1u) << r.mint << ".." << r.maxt;
        EXPECT_EQ(got.begin()->second, want) << r.mint << ".." << r.maxt;
      }
    }
  }

  const Labels m_ = Labels::FromUnsorted({{"__name__", "m"}});
};

TEST_F(DBDaysTest, ReadsChunksAcrossDaysBeforeAndAfterARestart) {
  // Every 5 minutes from 12:35 on day 0 for over two days: 24 per chunk by count (2 h), so
  // that one chunk would run from 22:35 to 00:30 but for the cut at midnight.
  options_.max_samples_per_chunk = 24;
  OpenDB();
  std::vector<Sample> all = Range(kDay / 2 + 35 * 60 * 1000, 3 * kDay, 5 * 60 * 1000);
  ASSERT_TRUE(AppendAll("t", m_, all).ok());
  ExpectRanges(all);
  EXPECT_GT(CloseAndCheckChunkDays(), 3u);
  OpenDB();  // finds the days on disk
  ExpectRanges(all);
}

TEST_F(DBDaysTest, LateSamplesAndDeletionsStayInTheirDays) {
  options_.out_of_order_window_ms = 2 * kDay;
  OpenDB();
  const int64_t minute = 60 * 1000;
  // Samples either side of midnight, sealed as idle once another series is 5 hours on.
  std::vector<Sample> all = {{kDay - 20 * minute, 1}, {kDay - 10 * minute, 2},
                             {kDay + 10 * minute, 3}, {kDay + 20 * minute, 4},
                             {kDay + 30 * minute, 5}};
  ASSERT_TRUE(AppendAll("t", m_, all).ok());
  ASSERT_TRUE(AppendAll("t", Labels::FromUnsorted({{"__name__", "n"}}), {{kDay + 300 * minute, 1}}).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_EQ(db_->GetStats().chunks_sealed, 2);
  // Late samples on both days, one before everything, one in each day's gap.
  std::vector<Sample> late = {{kDay - 30 * minute, 6}, {kDay - 5 * minute, 7},
                              {kDay + 5 * minute, 8}, {kDay + 15 * minute, 9}};
  absl::Status late_status = AppendAll("t", m_, late);
  ASSERT_TRUE(late_status.ok()) << late_status;
  ASSERT_TRUE(db_->Close().ok());
  OpenDB();
  all.insert(all.end(), late.begin(), late.end());
  std::sort(all.begin(), all.end(), [](const Sample& a, const Sample& b) { return a.t < b.t; });
  ASSERT_EQ(Query("t", {Name("m")}).begin()->second, all);
  // A deletion across midnight rewrites a chunk on each side.
  ASSERT_TRUE(db_->DeleteSeries("t", {{Name("m")}}, kDay - 7 * minute, kDay + 12 * minute).ok());
  std::vector<Sample> kept;
  for (const Sample& s : all) {
    if (s.t < kDay - 7 * minute || s.t > kDay + 12 * minute) kept.push_back(s);
  }
  EXPECT_EQ(Query("t", {Name("m")}).begin()->second, kept);
  // Still one day per chunk, and nothing lost across a restart.
  EXPECT_GE(CloseAndCheckChunkDays(), 2u);
  OpenDB();
  EXPECT_EQ(Query("t", {Name("m")}).begin()->second, kept);
}

TEST_F(DBDaysTest, RetentionDropsWholeDaysBeforeTheCutoffsDay) {
  OpenDB();
  std::vector<Sample> all = Range(0, 4 * kDay - 1, 3600 * 1000);  // hourly, days 0..3
  ASSERT_TRUE(AppendAll("t", m_, all).ok());
  ASSERT_TRUE(AppendAll("u", m_, all).ok());  // a second tenant
  // Retention at 06:00 on day 2: days 0 and 1 go, day 2 stays whole.
  ASSERT_TRUE(db_->Close().ok());
  OpenDB();
  ASSERT_TRUE(db_->DeleteBefore(2 * kDay + 6 * 3600 * 1000).ok());
  std::vector<Sample> want = Between(all, 2 * kDay, 4 * kDay);
  for (const char* tenant : {"t", "u"}) {
    auto got = Query(tenant, {Name("m")});
    ASSERT_EQ(got.size(), 1u) << tenant;
    EXPECT_EQ(got.begin()->second, want) << tenant;
  }
  EXPECT_TRUE(Query("t", {Name("m")}, 0, 2 * kDay - 1).empty());
  // Nothing of days 0 and 1 is left on disk, and a restart does not bring it back.
  ASSERT_GT(CloseAndCheckChunkDays(), 0u);
  {
    RawDB raw(options_.path);
    ASSERT_TRUE(raw.ok());
    for (const RawDB::Chunk& c : raw.Chunks()) EXPECT_GE(ChunkKeyDay(c.key), 2) << c.key.size();
  }
  OpenDB();
  EXPECT_EQ(Query("t", {Name("m")}).begin()->second, want);
  // New samples after retention land and read back.
  ASSERT_TRUE(AppendAll("t", m_, {{4 * kDay, 1}}).ok());
  want.push_back({4 * kDay, 1});
  EXPECT_EQ(Query("t", {Name("m")}).begin()->second, want);
  // The same cutoff again has nothing new to drop, until a backfill of an old day is sealed.
  ASSERT_TRUE(db_->DeleteBefore(2 * kDay + 6 * 3600 * 1000).ok());
  const Labels late = Labels::FromUnsorted({{"__name__", "late"}});
  ASSERT_TRUE(AppendAll("t", late, {{kDay / 2, 1}}).ok());
  ASSERT_TRUE(db_->Compact().ok());  // seals it: idle, days before the newest sample
  ASSERT_EQ(Query("t", {Name("late")}).size(), 1u);
  ASSERT_TRUE(db_->DeleteBefore(2 * kDay + 6 * 3600 * 1000).ok());
  EXPECT_TRUE(Query("t", {Name("late")}).empty());
  EXPECT_EQ(Query("t", {Name("m")}).begin()->second, want);
}

TEST_F(DBDaysTest, AnOlderSampleIsRejectedAfterARestartWhenTheTailIsDaysBack) {
  OpenDB();
  const Labels old = Labels::FromUnsorted({{"__name__", "old"}});
  ASSERT_TRUE(AppendAll("t", old, Range(0, 600000, 60000)).ok());
  ASSERT_TRUE(AppendAll("t", m_, Range(3 * kDay, 3 * kDay + 60000, 60000)).ok());
  ASSERT_TRUE(db_->Close().ok());
  OpenDB();
  // The newest chunk of `old` is three days before the newest day: it is still found.
  auto app = db_->NewAppender("t");
  EXPECT_FALSE(app->Append(old, 300000, 1).ok());
  EXPECT_TRUE(app->Append(old, 660000, 1).ok());
  ASSERT_TRUE(app->Commit().ok());
}

TEST_F(DBDaysTest, OpeningAVersion1DirectoryRekeysItsChunksByDay) {
  OpenDB();
  std::vector<Sample> all = Range(kDay - 3600 * 1000, kDay + 3600 * 1000, 5 * 60 * 1000);
  const Labels other = Labels::FromUnsorted({{"__name__", "m"}, {"x", "y"}});
  ASSERT_TRUE(AppendAll("t", m_, all).ok());
  ASSERT_TRUE(AppendAll("t", other, {{5, 1}, {6, 2}}).ok());
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  {
    // Turn it into what version 1 wrote: chunks keyed tenant | series | start, one chunk that
    // spans midnight (version 1 cut by count and span only).
    RawDB raw(options_.path);
    ASSERT_TRUE(raw.ok());
    std::map<std::string, std::vector<Sample>> by_series;  // tenant | series id
    rocksdb::WriteBatch batch;
    for (const RawDB::Chunk& c : raw.Chunks()) {
      std::string series = c.key.substr(0, 4) + c.key.substr(8, 8);
      auto& samples = by_series[series];
      samples.insert(samples.end(), c.samples.begin(), c.samples.end());
      ASSERT_TRUE(batch.Delete(raw.chunks(), c.key).ok());
    }
    ASSERT_EQ(by_series.size(), 2u);
    for (const auto& [series, samples] : by_series) {
      std::string key = series;
      internal::PutI64Ordered(&key, samples.front().t);
      std::string chunk;
      ASSERT_TRUE(EncodeChunk(samples, &chunk).ok());
      ASSERT_TRUE(batch.Put(raw.chunks(), key, chunk).ok());
    }
    std::string v;
    internal::PutU32BE(&v, 1);
    ASSERT_TRUE(batch.Put(raw.meta(), internal::kMetaFormatVersion, v).ok());
    ASSERT_TRUE(raw.db()->Write(rocksdb::WriteOptions(), &batch).ok());
  }
  // Read-only cannot upgrade.
  options_.read_only = true;
  auto ro = DB::Open(options_);
  ASSERT_FALSE(ro.ok());
  EXPECT_NE(ro.status().message().find("format version 1"), std::string::npos) << ro.status();
  options_.read_only = false;
  OpenDB();
  EXPECT_EQ(Query("t", {Name("m")}), (std::map<std::string, std::vector<Sample>>{
                                         {m_.ToString(), all}, {other.ToString(), {{5, 1}, {6, 2}}}}));
  EXPECT_EQ(Query("t", {Name("m")}, kDay, kDay + 1).begin()->second,
            (std::vector<Sample>{{kDay, static_cast<double>(kDay) / 7}}));
  EXPECT_EQ(CloseAndCheckChunkDays(), 3u);  // m's chunk split at midnight, and other's
  {
    RawDB raw(options_.path);
    ASSERT_TRUE(raw.ok());
    std::string v;
    ASSERT_TRUE(raw.db()->Get(rocksdb::ReadOptions(), raw.meta(), internal::kMetaFormatVersion, &v).ok());
    EXPECT_EQ(internal::GetU32BE(v), internal::kFormatVersion);
  }
  OpenDB();
  EXPECT_EQ(Query("t", {Name("m")}, kDay - 1, kDay).begin()->second,
            Between(all, kDay - 1, kDay));
}

}  // namespace
}  // namespace tidemark
