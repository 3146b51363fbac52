// The out-of-order window (Options::out_of_order_window_ms): late samples land in the open chunk
// or are merged into the sealed chunk of their time, survive a crash, and are refused beyond the
// window, with resends ignored and conflicting values refused as duplicates.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "storage/appender.h"
#include "storage/db.h"
#include "tests/storage/db_test_fixture.h"

namespace tidemark {
namespace {

class DBOutOfOrderTest : public DBTest {
 protected:
  void SetUp() override {
    DBTest::SetUp();
    options_.out_of_order_window_ms = 60000;
  }

  std::vector<Sample> All() { return Query("t", {Name("m")})[a_.ToString()]; }

  // `base` plus `extra`, in time order.
  static std::vector<Sample> Merged(std::vector<Sample> base, const std::vector<Sample>& extra) {
    base.insert(base.end(), extra.begin(), extra.end());
    std::sort(base.begin(), base.end(), [](const Sample& a, const Sample& b) { return a.t < b.t; });
    return base;
  }

  static void ExpectSamples(const std::vector<Sample>& got, const std::vector<Sample>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].t, want[i].t) << i;
      EXPECT_EQ(got[i].v, want[i].v) << i;
    }
  }

  const Labels a_ = Labels::FromUnsorted({{"__name__", "m"}, {"job", "a"}});
  // 35 samples, 10 per chunk: sealed chunks start at 1000, 11000 and 21000; 31000..35000 open.
  const std::vector<Sample> base_ = Range(1000, 35000, 1000);
};

TEST_F(DBOutOfOrderTest, TheWindowCountsFromTheNewestSampleAfterACleanRestart) {
  OpenDB();
  ASSERT_TRUE(AppendAll("t", a_, base_).ok());
  // A clean close seals everything and leaves no log: the newest time comes from `meta`.
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  OpenDB();
  EXPECT_EQ(db_->GetStats().max_time_ms, 35000);
  EXPECT_TRUE(AppendAll("t", a_, {{12500, -2.0}}).ok());  // 22.5 s before the newest
  absl::Status early = AppendAll("t", a_, {{500, -3.0}});  // 34.5 s: within 60 s as well
  EXPECT_TRUE(early.ok()) << early;
  EXPECT_FALSE(AppendAll("t", a_, {{-30000, -4.0}}).ok());  // 65 s: beyond the window
  ExpectSamples(All(), Merged(base_, {{500, -3.0}, {12500, -2.0}}));
}

TEST_F(DBOutOfOrderTest, LateSamplesLandInTheOpenChunkAndInSealedChunks) {
  OpenDB();
  ASSERT_TRUE(AppendAll("t", a_, base_).ok());
  // Into the open chunk, into the middle of the second sealed chunk, before the first sample.
  const std::vector<Sample> late = {{32500, -1.0}, {12500, -2.0}, {500, -3.0}};
  for (const Sample& s : late) {
    absl::Status st = AppendAll("t", a_, {s});
    ASSERT_TRUE(st.ok()) << s.t << ": " << st;
  }
  ExpectSamples(All(), Merged(base_, late));
  // Chunks stay apart: a range inside the first chunk sees the early sample first.
  auto first = Query("t", {Name("m")}, 0, 2000)[a_.ToString()];
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].t, 500);

  // After sealing everything and reopening, the same.
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  OpenDB();
  ExpectSamples(All(), Merged(base_, late));
}

TEST_F(DBOutOfOrderTest, UnsortedRequestResendsDuplicatesAndTheWindowEdge) {
  OpenDB();
  ASSERT_TRUE(AppendAll("t", a_, base_).ok());
  // One request, out of order within itself and against the series.
  const std::vector<Sample> batch = {{40000, 4.0}, {36500, 3.5}, {38000, 3.8}, {20500, 2.05}};
  ASSERT_TRUE(AppendAll("t", a_, batch).ok());
  std::vector<Sample> want = Merged(base_, batch);
  ExpectSamples(All(), want);

  // A resent late sample is ignored; another value at a stored time is a duplicate.
  EXPECT_TRUE(AppendAll("t", a_, {{20500, 2.05}}).ok());
  EXPECT_TRUE(AppendAll("t", a_, {{5000, 5000.0 / 7}}).ok());
  absl::Status dup = AppendAll("t", a_, {{20500, 9.0}});
  EXPECT_EQ(RejectReasonOf(dup), RejectReason::kDuplicate) << dup;
  dup = AppendAll("t", a_, {{36500, 9.0}});
  EXPECT_EQ(RejectReasonOf(dup), RejectReason::kDuplicate) << dup;
  // Two values for one late time in one request: the request is refused whole.
  dup = AppendAll("t", a_, {{15500, 1.0}, {15500, 2.0}});
  EXPECT_EQ(RejectReasonOf(dup), RejectReason::kDuplicate) << dup;

  // The window is measured from the newest sample of the database (40000 here): 60 s.
  const Labels other = Labels::FromUnsorted({{"__name__", "m"}, {"job", "b"}});
  ASSERT_TRUE(AppendAll("t", other, {{100000, 1.0}}).ok());
  absl::Status old = AppendAll("t", a_, {{39000, 3.9}});
  EXPECT_EQ(RejectReasonOf(old), RejectReason::kOutOfOrder) << old;
  EXPECT_TRUE(AppendAll("t", a_, {{40000 + 500, 4.05}}).ok());  // in order: no window needed
  ASSERT_TRUE(AppendAll("t", other, {{99000, 0.99}}).ok());       // late, inside the window
  ExpectSamples(All(), Merged(want, {{40500, 4.05}}));
}

TEST_F(DBOutOfOrderTest, WindowOffRefusesLateSamples) {
  options_.out_of_order_window_ms = 0;
  OpenDB();
  ASSERT_TRUE(AppendAll("t", a_, base_).ok());
  absl::Status st = AppendAll("t", a_, {{32500, 1.0}});
  EXPECT_EQ(RejectReasonOf(st), RejectReason::kOutOfOrder) << st;
  st = AppendAll("t", a_, {{36000, 1.0}, {35500, 1.0}});
  EXPECT_EQ(RejectReasonOf(st), RejectReason::kOutOfOrder) << st;
  ExpectSamples(All(), base_);
}

TEST_F(DBOutOfOrderTest, LateSamplesSurviveACrashAndReplayDoesNotDuplicateThem) {
  OpenDB();
  for (const Sample& s : base_) ASSERT_TRUE(AppendAll("t", a_, {s}).ok());
  const std::vector<Sample> late = {{33500, -1.0}, {2500, -2.0}, {27500, -3.0}};
  ASSERT_TRUE(AppendAll("t", a_, late).ok());
  Crash();  // every record still in the WAL: replay merges the sealed-time ones again
  OpenDB();
  ExpectSamples(All(), Merged(base_, late));
  Crash();
  OpenDB();
  ExpectSamples(All(), Merged(base_, late));
}

TEST_F(DBOutOfOrderTest, DeletedLateSamplesStayDeletedAfterReplay) {
  OpenDB();
  ASSERT_TRUE(AppendAll("t", a_, base_).ok());
  ASSERT_TRUE(AppendAll("t", a_, {{12500, -2.0}, {33500, -1.0}}).ok());
  auto n = db_->DeleteSeries("t", {{Name("m")}}, 12000, 13000);
  ASSERT_TRUE(n.ok()) << n.status();
  n = db_->DeleteSeries("t", {{Name("m")}}, 33000, 34000);
  ASSERT_TRUE(n.ok()) << n.status();
  Crash();
  OpenDB();
  std::vector<Sample> want;
  for (const Sample& s : base_) {
    if ((s.t < 12000 || s.t > 13000) && (s.t < 33000 || s.t > 34000)) want.push_back(s);
  }
  ExpectSamples(All(), want);
}

}  // namespace
}  // namespace tidemark
