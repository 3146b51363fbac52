// Storage behaviours of issue 3: compact directory at close, concurrent commits, inactive series
// leaving the head, series id recovery.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "rocksdb/db.h"
#include "storage/appender.h"
#include "storage/db.h"
#include "storage/db_impl.h"
#include "storage/keys.h"

namespace tidemark {
namespace {

class DBScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tidemark_db_scale_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    options_.path = dir_.string();
    options_.retention_ms = 0;
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void OpenDB() {
    auto db = DB::Open(options_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
  }
  void Reopen(bool crash) {
    if (crash) {
      static_cast<internal::DBImpl*>(db_.get())->SimulateCrashForTesting();
    } else {
      ASSERT_TRUE(db_->Close().ok());
    }
    db_.reset();
    OpenDB();
  }
  std::map<std::string, std::vector<Sample>> Query(const std::string& name) {
    std::map<std::string, std::vector<Sample>> out;
    auto m = LabelMatcher::Create(MatchType::kEqual, std::string(kMetricNameLabel), name);
    auto q = db_->NewQuerier("t", std::numeric_limits<int64_t>::min(),
                             std::numeric_limits<int64_t>::max());
    EXPECT_TRUE(q.ok()) << q.status();
    if (!q.ok()) return out;
    auto series = (*q)->Select({*m}, {});
    EXPECT_TRUE(series.ok()) << series.status();
    if (!series.ok()) return out;
    for (Series& s : *series) {
      auto& v = out[s.labels.ToString()];
      while (s.samples->Next()) v.push_back(s.samples->At());
    }
    return out;
  }
  // Bytes of the files whose names end in `suffix` (RocksDB's write-ahead logs: ".log").
  int64_t FileBytes(std::string_view suffix, bool invert = false) {
    int64_t total = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      std::string name = e.path().filename().string();
      bool match = name.size() >= suffix.size() &&
                   name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
      if (invert) match = !match && name.rfind("LOG", 0) != 0 && name.rfind("OPTIONS", 0) != 0;
      if (match && e.is_regular_file()) total += static_cast<int64_t>(e.file_size());
    }
    return total;
  }

  std::filesystem::path dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

Labels Series(const std::string& name, int i) {
  return Labels::FromUnsorted({{"__name__", name},
                               {"instance", "10.0.0." + std::to_string(i) + ":9100"},
                               {"job", "node"}});
}

TEST_F(DBScaleTest, CloseLeavesNoWriteAheadLogBehind) {
  OpenDB();
  constexpr int kSeries = 200, kSteps = 150;
  for (int step = 0; step < kSteps; ++step) {
    auto app = db_->NewAppender("t");
    for (int i = 0; i < kSeries; ++i) {
      ASSERT_TRUE(app->Append(Series("m", i), step * 15000LL, (step % 7) * 1.5 + i).ok());
    }
    ASSERT_TRUE(app->Commit().ok());
  }
  ASSERT_GT(db_->GetStats().wal_bytes, 0);
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  // RocksDB's own logs hold nothing after a clean close (the memtables were flushed), and the
  // rest is chunks and index: well under the 16 bytes a sample costs in a WAL record alone.
  EXPECT_LT(FileBytes(".log"), 4096);
  const int64_t samples = int64_t{kSeries} * kSteps;
  EXPECT_LT(FileBytes(".log", /*invert=*/true), samples * 8) << "bytes besides LOG/OPTIONS";
  OpenDB();
  auto got = Query("m");
  ASSERT_EQ(got.size(), static_cast<size_t>(kSeries));
  for (const auto& [labels, samples_of] : got) EXPECT_EQ(samples_of.size(), size_t{kSteps});
  EXPECT_EQ(db_->GetStats().wal_bytes, 0);
}

// Threads commit concurrently to their own series and to one shared series; every sample
// acknowledged is there, in order, after a crash and after a clean close, and a shared-series
// sample is refused only as out of order or duplicate.
TEST_F(DBScaleTest, ConcurrentCommitsKeepEveryAcknowledgedSample) {
  options_.max_samples_per_chunk = 16;
  OpenDB();
  constexpr int kThreads = 4, kRounds = 150;
  std::mutex mu;
  std::map<int64_t, double> shared_ok;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      for (int r = 0; r < kRounds; ++r) {
        auto app = db_->NewAppender("t");
        for (int i = 0; i < 5; ++i) {
          if (!app->Append(Series("own", th * 10 + i), r * 1000LL, r + i).ok()) ++failures;
        }
        if (!app->Commit().ok()) ++failures;
        auto shared = db_->NewAppender("t");
        const int64_t t = r * 1000LL + th;
        absl::Status st = shared->Append(Series("shared", 0), t, th);
        if (st.ok()) st = shared->Commit();
        if (st.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          shared_ok[t] = th;
        } else if (RejectReasonOf(st) != RejectReason::kOutOfOrder &&
                   RejectReasonOf(st) != RejectReason::kDuplicate) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_FALSE(shared_ok.empty());
  std::vector<Sample> want_shared;
  for (auto [t, v] : shared_ok) want_shared.push_back({t, v});
  auto check = [&] {
    auto own = Query("own");
    ASSERT_EQ(own.size(), size_t{kThreads * 5});
    for (const auto& [labels, samples] : own) {
      ASSERT_EQ(samples.size(), size_t{kRounds}) << labels;
      for (size_t k = 1; k < samples.size(); ++k) ASSERT_LT(samples[k - 1].t, samples[k].t);
    }
    auto shared = Query("shared");
    ASSERT_EQ(shared.size(), 1u);
    EXPECT_EQ(shared.begin()->second, want_shared);
  };
  check();
  Reopen(/*crash=*/true);
  check();
  Reopen(/*crash=*/false);
  check();
}

TEST_F(DBScaleTest, InactiveSeriesLeaveTheHeadAndComeBack) {
  options_.max_samples_per_chunk = 10;
  options_.stagger_first_chunks = false;  // a's first chunk is full at 10
  options_.max_chunk_span_ms = 3600 * 1000;
  OpenDB();
  auto append = [&](const Labels& l, int64_t t, double v) {
    auto app = db_->NewAppender("t");
    absl::Status st = app->Append(l, t, v);
    return st.ok() ? app->Commit() : st;
  };
  const Labels a = Series("m", 1), b = Series("m", 2);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(append(a, i * 15000LL, i).ok());  // one full chunk
  ASSERT_TRUE(append(b, 0, 0).ok());
  const int64_t later = 3 * 3600 * 1000;  // beyond max_chunk_span after a's last sample
  ASSERT_TRUE(append(b, later, 1).ok());
  ASSERT_EQ(db_->GetStats().head_series, 2);
  const int64_t bytes_before = db_->GetStats().head_bytes;
  ASSERT_TRUE(db_->Compact().ok());
  Stats stats = db_->GetStats();
  EXPECT_EQ(stats.head_series, 1);  // a left; b still has an open chunk
  EXPECT_EQ(stats.series_evicted, 1);
  EXPECT_LT(stats.head_bytes, bytes_before);
  EXPECT_GT(stats.memory_budget_bytes, 0);
  // a comes back from RocksDB with its stored tail: resent samples are ignored, others refused.
  EXPECT_TRUE(append(a, 9 * 15000LL, 9).ok());
  EXPECT_EQ(RejectReasonOf(append(a, 9 * 15000LL, 10)), RejectReason::kDuplicate);
  EXPECT_EQ(RejectReasonOf(append(a, 5, 10)), RejectReason::kOutOfOrder);
  ASSERT_TRUE(append(a, later + 1, 42).ok());
  auto got = Query("m");
  ASSERT_EQ(got[a.ToString()].size(), 11u);
  EXPECT_EQ(got[a.ToString()].back(), (Sample{later + 1, 42}));
  EXPECT_EQ(got[b.ToString()].size(), 2u);
}

// A query that reads more than the block cache holds stops putting blocks in it once it has
// read an eighth of the cache from files: the cache does not grow to its capacity (and evict
// what other queries reuse) for one large scan. Every sample is still read.

// A series an appender has reserved a sample of (instead of pinning it) stays in the head.
TEST_F(DBScaleTest, AReservedSeriesIsNotEvicted) {
  options_.max_samples_per_chunk = 10;
  options_.stagger_first_chunks = false;
  options_.max_chunk_span_ms = 3600 * 1000;
  OpenDB();
  const Labels a = Series("m", 1), b = Series("m", 2);
  auto app = db_->NewAppender("t");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(app->Append(a, i * 15000LL, i).ok());
  ASSERT_TRUE(app->Append(b, 0, 0).ok());
  ASSERT_TRUE(app->Commit().ok());
  const int64_t later = 3 * 3600 * 1000;
  ASSERT_TRUE(app->Append(b, later, 1).ok());
  ASSERT_TRUE(app->Commit().ok());
  // `a` is all sealed and idle, as in InactiveSeriesLeaveTheHeadAndComeBack, but reserved.
  auto held = db_->NewAppender("t");
  ASSERT_TRUE(held->Append(a, 10 * 15000LL, 10).ok());
  ASSERT_TRUE(db_->Compact().ok());
  EXPECT_EQ(db_->GetStats().series_evicted, 0);
  EXPECT_EQ(db_->GetStats().head_series, 2);
  ASSERT_TRUE(held->Commit().ok());
  auto got = Query("m");
  ASSERT_EQ(got.count(a.ToString()), 1u);
  EXPECT_EQ(got[a.ToString()].size(), 11u);
  EXPECT_EQ(got[a.ToString()].back(), (Sample{10 * 15000LL, 10}));
}
TEST_F(DBScaleTest, ALargeQueryStopsFillingTheBlockCache) {
  options_.memory_budget_bytes = 16LL << 20;  // an 8 MiB cache; queries fill 1 MiB of it
  OpenDB();
  constexpr int kSeries = 6000, kSteps = 240;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> noise(0, 1);  // ~8 bytes a sample, even compressed
  for (int step = 0; step < kSteps; ++step) {
    auto app = db_->NewAppender("t");
    for (int i = 0; i < kSeries; ++i) {
      ASSERT_TRUE(app->Append(Series("m", i), step * 15000LL, noise(rng)).ok());
    }
    ASSERT_TRUE(app->Commit().ok());
  }
  Reopen(/*crash=*/false);
  const int64_t before = db_->GetStats().block_cache_bytes;
  auto got = Query("m");
  ASSERT_EQ(got.size(), size_t{kSeries});
  for (const auto& [labels, samples] : got) ASSERT_EQ(samples.size(), size_t{kSteps}) << labels;
  const Stats stats = db_->GetStats();
  ASSERT_GT(stats.disk_bytes, stats.block_cache_capacity) << "the data must not fit";
  EXPECT_LT(stats.block_cache_bytes - before, 4LL << 20) << before << " -> " << stats.block_cache_bytes;
}

// The block cache gives the head what the head takes over its half of the budget, down to
// three eighths of the budget, and takes it back when the head shrinks.
TEST_F(DBScaleTest, TheBlockCacheShrinksWhileTheHeadIsOverItsShare) {
  options_.memory_budget_bytes = 16LL << 20;  // cache 8 MiB, head's share 8 MiB
  options_.max_chunk_span_ms = 3600 * 1000;
  OpenDB();
  EXPECT_EQ(db_->GetStats().block_cache_capacity, 8LL << 20);
  constexpr int kSeries = 50000;
  {
    auto app = db_->NewAppender("t");
    for (int i = 0; i < kSeries; ++i) ASSERT_TRUE(app->Append(Series("m", i), 0, i).ok());
    ASSERT_TRUE(app->Commit().ok());
  }
  ASSERT_TRUE(db_->Compact().ok());
  Stats stats = db_->GetStats();
  ASSERT_GT(stats.head_bytes, 10LL << 20) << "the head must be 2 MiB or more over its share";
  EXPECT_EQ(stats.block_cache_capacity, 6LL << 20);
  // One series moves time on by 3 h: the others' chunks are sealed, then they leave the head.
  {
    auto app = db_->NewAppender("t");
    ASSERT_TRUE(app->Append(Series("m", 0), 3 * 3600 * 1000LL, 1).ok());
    ASSERT_TRUE(app->Commit().ok());
  }
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_TRUE(db_->Compact().ok());
  stats = db_->GetStats();
  ASSERT_LT(stats.head_bytes, 8LL << 20);
  EXPECT_EQ(stats.block_cache_capacity, 8LL << 20);
  EXPECT_EQ(Query("m").size(), size_t{kSeries});
}

TEST_F(DBScaleTest, SeriesIdsAreNotReusedWhenTheStoredCounterLags) {
  OpenDB();
  auto append = [&](const Labels& l, int64_t t, double v) {
    auto app = db_->NewAppender("t");
    absl::Status st = app->Append(l, t, v);
    return st.ok() ? app->Commit() : st;
  };
  ASSERT_TRUE(append(Series("x", 1), 1000, 1).ok());
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  {
    // Concurrent commits may leave next_series_id behind the ids in use; simulate the worst.
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfds;
    for (const char* name : {"default", "meta", "series", "postings", "chunks", "wal",
                             "exemplars", "metadata", "state"}) {
      cfds.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), options_.path, cfds, &handles, &raw).ok());
    std::string v;
    internal::PutU64BE(&v, 1);
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), handles[1], internal::kMetaNextSeriesId, v).ok());
    for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  OpenDB();
  ASSERT_TRUE(append(Series("y", 1), 2000, 2).ok());
  Reopen(/*crash=*/false);
  EXPECT_EQ(Query("x").begin()->second, (std::vector<Sample>{{1000, 1}}));
  EXPECT_EQ(Query("y").begin()->second, (std::vector<Sample>{{2000, 2}}));
}

}  // namespace
}  // namespace tidemark
