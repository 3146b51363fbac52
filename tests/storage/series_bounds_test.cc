// Series end times: a query drops a series of the day's postings that ended before its range,
// and a series written again is never dropped.
#include "storage/series_bounds.h"

#include "tests/storage/db_test_fixture.h"

namespace tidemark {
namespace {

using internal::SeriesBounds;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;

TEST(SeriesBoundsTest, EndsBeforeRoundsUpToTheMinute) {
  SeriesBounds b;
  EXPECT_FALSE(b.EndsBefore(7, 1'000'000));  // unknown
  b.Set(7, 10 * kMinute + 1);                // every sample before minute 11
  EXPECT_FALSE(b.EndsBefore(7, 10 * kMinute + 1));
  EXPECT_FALSE(b.EndsBefore(7, 11 * kMinute - 1));
  EXPECT_TRUE(b.EndsBefore(7, 11 * kMinute));
  EXPECT_TRUE(b.EndsBefore(7, 500 * kMinute));
  EXPECT_FALSE(b.EndsBefore(8, 500 * kMinute));  // a neighbour stays unknown
  b.Set(8, -kMinute - 5);                        // before the epoch: minute -2, ends before -1
  EXPECT_FALSE(b.EndsBefore(8, -kMinute - 1));
  EXPECT_TRUE(b.EndsBefore(8, -kMinute));
  b.Clear(7);
  EXPECT_FALSE(b.EndsBefore(7, 500 * kMinute));
}

TEST(SeriesBoundsTest, TimesFarFromTheBlockStayUnknown) {
  SeriesBounds b;
  b.Set(1, 1000 * kHour);
  b.Set(2, 1000 * kHour + 30 * 24 * kHour);  // > 22 days from the block's first end time
  EXPECT_TRUE(b.EndsBefore(1, 1001 * kHour));
  EXPECT_FALSE(b.EndsBefore(2, 2000 * kHour));
  // A later out-of-range bound replaces an earlier in-range one, never keeps it.
  b.Set(1, 1000 * kHour + 60 * 24 * kHour);
  EXPECT_FALSE(b.EndsBefore(1, 1001 * kHour));
}

TEST(SeriesBoundsTest, RemoveEndingBeforeAndDropBelow) {
  SeriesBounds b;
  const uint64_t far = uint64_t{5} << 16;  // another block
  b.Set(3, 5 * kMinute);
  b.Set(4, 50 * kMinute);
  b.Set(far, 5 * kMinute);
  std::vector<uint64_t> ids = {1, 3, 4, 9, far, far + 1};
  EXPECT_EQ(b.RemoveEndingBefore(&ids, 10 * kMinute), 2u);
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 4, 9, far + 1}));
  EXPECT_GT(b.MemoryBytes(), 0);
  b.DropBelow(far);
  EXPECT_FALSE(b.EndsBefore(3, 10 * kMinute));
  EXPECT_TRUE(b.EndsBefore(far, 10 * kMinute));
  b.Set(3, 5 * kMinute);  // dropped ids are not kept again
  EXPECT_FALSE(b.EndsBefore(3, 10 * kMinute));
}

class SeriesEndTest : public DBTest {
 protected:
  std::vector<LabelMatcher> All() { return {M(MatchType::kRegexMatch, "__name__", ".+")}; }
  int64_t Skipped() { return db_->GetStats().query_series_skipped; }

  // `gone` has samples in the first 10 minutes, `live` every 5 minutes for 3 hours (one day).
  void Load() {
    ASSERT_TRUE(AppendAll("t", gone_, Range(0, 10 * kMinute, kMinute)).ok());
    ASSERT_TRUE(AppendAll("t", live_, Range(0, 3 * kHour, 5 * kMinute)).ok());
    // The newest sample is 3 h: `gone` was idle for over an hour and is sealed whole.
    ASSERT_TRUE(db_->Compact().ok());
  }

  Labels gone_ = Labels::FromUnsorted({{"__name__", "gone"}});
  Labels live_ = Labels::FromUnsorted({{"__name__", "live"}});
};

TEST_F(SeriesEndTest, QueryAfterTheEndSkipsTheSeriesUnread) {
  OpenDB();
  Load();
  auto recent = Query("t", All(), 2 * kHour, 3 * kHour);
  EXPECT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent.count("live"), 1u);
  EXPECT_EQ(Skipped(), 1);
  // A range that reaches into its samples returns them all.
  auto all = Query("t", All(), 0, 3 * kHour);
  EXPECT_EQ(all["gone"], Range(0, 10 * kMinute, kMinute));
  EXPECT_EQ(all["live"], Range(0, 3 * kHour, 5 * kMinute));
  auto edge = Query("t", All(), 10 * kMinute, 3 * kHour);
  EXPECT_EQ(edge["gone"], Range(10 * kMinute, 10 * kMinute, kMinute));
  EXPECT_EQ(Skipped(), 1);
  // Still skipped once the head has let it go.
  ASSERT_TRUE(db_->Compact().ok());
  EXPECT_GE(db_->GetStats().series_evicted, 1);
  EXPECT_EQ(Query("t", All(), 2 * kHour, 3 * kHour).count("gone"), 0u);
  EXPECT_EQ(Skipped(), 2);
}

TEST_F(SeriesEndTest, SeriesWrittenAgainInTheHeadIsReturned) {
  OpenDB();
  Load();
  ASSERT_EQ(db_->GetStats().series_evicted, 0);  // still in the head, sealed
  ASSERT_TRUE(AppendAll("t", gone_, {{150 * kMinute, 42}}).ok());
  auto recent = Query("t", All(), 2 * kHour, 3 * kHour);
  EXPECT_EQ(recent["gone"], (std::vector<Sample>{{150 * kMinute, 42}}));
  EXPECT_EQ(Skipped(), 0);
}

TEST_F(SeriesEndTest, SeriesBackAfterLeavingTheHeadIsReturned) {
  OpenDB();
  Load();
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_GE(db_->GetStats().series_evicted, 1);
  ASSERT_EQ(Query("t", All(), 2 * kHour, 3 * kHour).count("gone"), 0u);
  // Back in the head from the series index: its old end time must not hide the new sample.
  ASSERT_TRUE(AppendAll("t", gone_, {{170 * kMinute, 42}}).ok());
  auto recent = Query("t", All(), 2 * kHour, 3 * kHour);
  EXPECT_EQ(recent["gone"], (std::vector<Sample>{{170 * kMinute, 42}}));
  // And sealed and let go again, it gets the new end time.
  ASSERT_TRUE(AppendAll("t", live_, Range(4 * kHour, 6 * kHour, 5 * kMinute)).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_TRUE(db_->Compact().ok());
  const int64_t before = Skipped();
  EXPECT_EQ(Query("t", All(), 170 * kMinute, 6 * kHour)["gone"],
            (std::vector<Sample>{{170 * kMinute, 42}}));
  EXPECT_EQ(Query("t", All(), 171 * kMinute, 6 * kHour).count("gone"), 0u);
  EXPECT_EQ(Skipped(), before + 1);
}

TEST_F(SeriesEndTest, EndTimesAreForgottenByARestartNotWrong) {
  OpenDB();
  Load();
  ASSERT_EQ(Query("t", All(), 2 * kHour, 3 * kHour).size(), 1u);
  db_.reset();  // clean close
  OpenDB();
  EXPECT_EQ(Query("t", All(), 2 * kHour, 3 * kHour).size(), 1u);
  EXPECT_EQ(Skipped(), 0);  // read and found empty
  EXPECT_EQ(Query("t", All(), 0, 3 * kHour)["gone"], Range(0, 10 * kMinute, kMinute));
}

}  // namespace
}  // namespace tidemark
