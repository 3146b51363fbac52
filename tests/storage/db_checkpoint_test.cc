// The head checkpoint: open chunks written down so the WAL below can go, read back after a
// crash with the WAL that follows, and consistent with the chunks sealed after it.
#include <fstream>

#include "tests/storage/db_test_fixture.h"

namespace tidemark {
namespace {

class CheckpointTest : public DBTest {
 protected:
  void SetUp() override {
    DBTest::SetUp();
    options_.checkpoint_wal_bytes = 1;  // every Compact writes one
  }
  bool CheckpointOnDisk() const { return std::filesystem::exists(dir_ / "HEAD-CHECKPOINT"); }
  Stats Get() { return db_->GetStats(); }

  // Each series' samples exactly (no sample twice, none missing).
  void ExpectSeries(const std::map<std::string, std::vector<Sample>>& want) {
    std::map<std::string, std::vector<Sample>> got;
    for (const auto& [name, samples] : Query("t", {M(MatchType::kRegexMatch, "__name__", ".+")})) {
      got[name] = samples;
    }
    EXPECT_EQ(got, want);
  }
};

TEST_F(CheckpointTest, CrashAfterCheckpointLosesNothing) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}});
  Labels b = Labels::FromUnsorted({{"__name__", "b"}, {"x", "y"}});
  std::vector<Sample> sa = Range(0, 140000, 10000);  // 15: one sealed chunk + 5 open
  std::vector<Sample> sb = Range(5000, 35000, 10000);
  ASSERT_TRUE(AppendAll("t", a, sa).ok());
  ASSERT_TRUE(AppendAll("t", b, sb).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_TRUE(CheckpointOnDisk());
  // The WAL the open chunks needed is released.
  EXPECT_EQ(Get().wal_bytes, 0);
  EXPECT_EQ(Get().head_checkpoints, 1);
  EXPECT_EQ(Get().checkpoint_series, 2);
  // More after the checkpoint: in the WAL only.
  std::vector<Sample> more = Range(150000, 170000, 10000);
  ASSERT_TRUE(AppendAll("t", a, more).ok());
  sa.insert(sa.end(), more.begin(), more.end());
  Labels c = Labels::FromUnsorted({{"__name__", "c"}});
  ASSERT_TRUE(AppendAll("t", c, {{7, 7}}).ok());
  Crash();

  OpenDB();
  EXPECT_EQ(Get().checkpoint_series, 2);  // loaded
  EXPECT_EQ(Get().head_checkpoints, 0);
  ExpectSeries({{"a", sa}, {"b{x=\"y\"}", sb}, {"c", {{7, 7}}}});
  // The head holds the series' tails again.
  auto app = db_->NewAppender("t");
  EXPECT_EQ(RejectReasonOf(app->Append(b, 35000, 1)), RejectReason::kDuplicate);
  EXPECT_EQ(RejectReasonOf(app->Append(a, 100, 5)), RejectReason::kOutOfOrder);
  app->Rollback();
  // A checkpoint that leaves no WAL at all, a crash, new writes and a crash: new WAL records
  // sort after the ones the checkpoint covers, though the WAL was empty at open.
  ASSERT_TRUE(db_->Compact().ok());
  EXPECT_EQ(Get().wal_bytes, 0);
  Crash();
  OpenDB();
  ASSERT_TRUE(AppendAll("t", b, {{45000, 9}}).ok());
  sb.push_back({45000, 9});
  Crash();
  OpenDB();
  ExpectSeries({{"a", sa}, {"b{x=\"y\"}", sb}, {"c", {{7, 7}}}});
}

TEST_F(CheckpointTest, ChunksSealedAfterTheCheckpointAreNotReplayedTwice) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}});
  std::vector<Sample> sa = Range(0, 40000, 10000);  // 5 open samples
  ASSERT_TRUE(AppendAll("t", a, sa).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_TRUE(CheckpointOnDisk());
  // These fill the chunk: samples the checkpoint holds as open are sealed now.
  std::vector<Sample> more = Range(50000, 140000, 10000);
  ASSERT_TRUE(AppendAll("t", a, more).ok());
  sa.insert(sa.end(), more.begin(), more.end());
  EXPECT_GE(Get().chunks_sealed, 1);
  Crash();
  OpenDB();
  ExpectSeries({{"a", sa}});
  EXPECT_EQ(Get().head_samples, 5);  // only the samples after the sealed chunk
}

TEST_F(CheckpointTest, TheSealRecordsACheckpointNeedsOutliveLaterReleases) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}});
  std::vector<Sample> sa = Range(0, 40000, 10000);  // 5 open samples, in the checkpoint
  ASSERT_TRUE(AppendAll("t", a, sa).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_TRUE(CheckpointOnDisk());
  // The chunk fills and is sealed (a seal record), leaving nothing open: the next maintenance
  // pass may release the WAL that nothing open needs, but not the seal record, which is what
  // keeps the checkpoint's 5 samples from coming back as open ones.
  std::vector<Sample> more = Range(50000, 90000, 10000);
  ASSERT_TRUE(AppendAll("t", a, more).ok());
  ASSERT_EQ(Get().chunks_sealed, 1);
  ASSERT_TRUE(db_->Compact().ok());
  std::vector<Sample> tail = Range(100000, 120000, 10000);
  ASSERT_TRUE(AppendAll("t", a, tail).ok());
  sa.insert(sa.end(), more.begin(), more.end());
  sa.insert(sa.end(), tail.begin(), tail.end());
  Crash();
  OpenDB();
  ExpectSeries({{"a", sa}});
  // Sealing what the head holds now (the clean close does) must not replace the sealed chunk
  // with fewer samples.
  db_.reset();
  OpenDB();
  ExpectSeries({{"a", sa}});
}

TEST_F(CheckpointTest, IdleSealAfterTheCheckpointIsNotUndone) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}});
  Labels b = Labels::FromUnsorted({{"__name__", "b"}});
  std::vector<Sample> sa = Range(0, 40000, 10000);  // 5 open samples
  ASSERT_TRUE(AppendAll("t", a, sa).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_TRUE(CheckpointOnDisk());
  Crash();
  // From now on no new checkpoint: the one on disk stays older than what follows.
  options_.checkpoint_wal_bytes = 0;
  OpenDB();
  // `a` goes idle and its 5 samples are sealed as a partial chunk (replay alone would not).
  std::vector<Sample> sb = {{10 * 3600 * 1000, 1}};
  ASSERT_TRUE(AppendAll("t", b, sb).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_EQ(Get().chunks_sealed, 1);
  Crash();
  OpenDB();
  EXPECT_EQ(Get().head_samples, 1);  // b's; a's are in their chunk only
  ExpectSeries({{"a", sa}, {"b", sb}});
}

TEST_F(CheckpointTest, RepeatedCheckpointsAndDeletionsReplayInOrder) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}});
  Labels b = Labels::FromUnsorted({{"__name__", "b"}});
  std::vector<Sample> sa, sb;
  for (int round = 0; round < 4; ++round) {
    std::vector<Sample> xa = Range(round * 70000, round * 70000 + 60000, 10000);
    ASSERT_TRUE(AppendAll("t", a, xa).ok());
    ASSERT_TRUE(AppendAll("t", b, xa).ok());
    sa.insert(sa.end(), xa.begin(), xa.end());
    sb.insert(sb.end(), xa.begin(), xa.end());
    ASSERT_TRUE(db_->Compact().ok());
  }
  // A deletion after the last checkpoint: replayed on top of it.
  auto deleted = db_->DeleteSeries("t", {{Name("b")}}, 200000, 260000);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  std::erase_if(sb, [](const Sample& x) { return x.t >= 200000 && x.t <= 260000; });
  Crash();
  OpenDB();
  ExpectSeries({{"a", sa}, {"b", sb}});
}

TEST_F(CheckpointTest, CleanCloseRemovesItAndReopensEmptyHead) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}});
  std::vector<Sample> sa = Range(0, 40000, 10000);
  ASSERT_TRUE(AppendAll("t", a, sa).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_TRUE(CheckpointOnDisk());
  ASSERT_TRUE(db_->Close().ok());
  EXPECT_FALSE(CheckpointOnDisk());
  db_.reset();
  OpenDB();
  EXPECT_EQ(Get().head_samples, 0);  // all sealed at close, nothing restored
  ExpectSeries({{"a", sa}});
}

TEST_F(CheckpointTest, CorruptCheckpointFailsToOpen) {
  OpenDB();
  ASSERT_TRUE(AppendAll("t", Labels::FromUnsorted({{"__name__", "a"}}), Range(0, 40000, 10000)).ok());
  ASSERT_TRUE(db_->Compact().ok());
  Crash();
  const std::filesystem::path file = dir_ / "HEAD-CHECKPOINT";
  const auto size = static_cast<std::streamoff>(std::filesystem::file_size(file));
  auto flip = [&](std::streamoff at) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(at);
    char c = 0;
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x5a));
  };
  // A bit of a sample (just before the end marker and the CRC): only the CRC can tell.
  flip(size - 9);
  auto db = DB::Open(options_);
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(absl::IsDataLoss(db.status())) << db.status();
  EXPECT_NE(db.status().message().find("checksum"), std::string_view::npos) << db.status();
  flip(size - 9);
  OpenDB();  // restored, it reads again (and a crash keeps it)
  Crash();
  ASSERT_TRUE(std::filesystem::exists(file));
  // A section length (right after the 17-byte header) that runs past the end of the file.
  flip(20);
  db = DB::Open(options_);
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(absl::IsDataLoss(db.status())) << db.status();
  EXPECT_NE(db.status().message().find("HEAD-CHECKPOINT"), std::string_view::npos) << db.status();
}

}  // namespace
}  // namespace tidemark
