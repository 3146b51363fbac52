// DB::DeleteSeries: samples leave the head and the sealed chunks, and stay gone across a crash
// and the replay of a write-ahead log that still holds them.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "storage/db.h"
#include "storage/keys.h"
#include "tests/storage/db_test_fixture.h"

namespace tidemark {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

class DBDeleteTest : public DBTest {
 protected:
  // Samples of `all` outside [mint, maxt].
  static std::vector<Sample> Without(const std::vector<Sample>& all, int64_t mint, int64_t maxt) {
    std::vector<Sample> out;
    for (const Sample& s : all) {
      if (s.t < mint || s.t > maxt) out.push_back(s);
    }
    return out;
  }

  static void ExpectSamples(const std::vector<Sample>& got, const std::vector<Sample>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].t, want[i].t) << i;
      EXPECT_EQ(got[i].v, want[i].v) << i;
    }
  }

  absl::StatusOr<int64_t> Delete(std::string_view tenant,
                                 std::vector<std::vector<LabelMatcher>> selectors, int64_t mint,
                                 int64_t maxt) {
    return db_->DeleteSeries(tenant, selectors, mint, maxt);
  }

  const Labels a_ = Labels::FromUnsorted({{"__name__", "m"}, {"job", "a"}});
  const Labels b_ = Labels::FromUnsorted({{"__name__", "m"}, {"job", "b"}});
};

// 35 samples with 10 per chunk: three sealed chunks and five open samples; the range cuts the
// second chunk, takes the third whole and part of the head.
TEST_F(DBDeleteTest, DeletesFromSealedChunksAndHead) {
  OpenDB();
  const std::vector<Sample> all = Range(1000, 35000, 1000);
  ASSERT_TRUE(AppendAll("t", a_, all).ok());
  ASSERT_TRUE(AppendAll("t", b_, all).ok());

  auto n = Delete("t", {{Name("m"), M(MatchType::kEqual, "job", "a")}}, 15000, 32000);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1);

  auto got = Query("t", {Name("m")});
  ASSERT_EQ(got.size(), 2u);
  ExpectSamples(got[a_.ToString()], Without(all, 15000, 32000));
  ExpectSamples(got[b_.ToString()], all);
  // A range inside the deleted one selects only the series that still has samples there.
  EXPECT_EQ(Query("t", {Name("m")}, 16000, 31000).count(a_.ToString()), 0u);

  // New samples append after the deletion as before.
  ASSERT_TRUE(AppendAll("t", a_, {{36000, 1.5}}).ok());
  EXPECT_EQ(Query("t", {Name("m")})[a_.ToString()].back().t, 36000);
}

TEST_F(DBDeleteTest, StaysDeletedAfterCrashWithTheWalStillHoldingTheSamples) {
  OpenDB();
  const std::vector<Sample> all = Range(1000, 35000, 1000);
  // One commit per sample, no Compact: every sample is still in the WAL at the crash.
  for (const Sample& s : all) ASSERT_TRUE(AppendAll("t", a_, {s}).ok());
  // The newest sealed samples go too, so the sealed tail moves back and replay would accept
  // the WAL's copies of them again without the deletion record.
  auto n = Delete("t", {{Name("m")}}, 25000, 33000);
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_TRUE(AppendAll("t", a_, {{36000, 7.0}}).ok());
  Crash();
  OpenDB();
  std::vector<Sample> want = Without(all, 25000, 33000);
  want.push_back({36000, 7.0});
  ExpectSamples(Query("t", {Name("m")})[a_.ToString()], want);

  // And once more after a clean close (everything sealed, the WAL released).
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  OpenDB();
  ExpectSamples(Query("t", {Name("m")})[a_.ToString()], want);
}

TEST_F(DBDeleteTest, SamplesWrittenAfterTheDeletionInItsRangeSurviveReplay) {
  OpenDB();
  ASSERT_TRUE(AppendAll("t", a_, Range(1000, 5000, 1000)).ok());
  // Deletes into the future: later samples in the range are new data, not deleted.
  ASSERT_TRUE(Delete("t", {{Name("m")}}, 3000, kMax).ok());
  ASSERT_TRUE(AppendAll("t", a_, {{6000, 6.0}, {7000, 7.0}}).ok());
  Crash();
  OpenDB();
  std::vector<Sample> want = Range(1000, 2000, 1000);
  want.push_back({6000, 6.0});
  want.push_back({7000, 7.0});
  ExpectSamples(Query("t", {Name("m")})[a_.ToString()], want);
}

TEST_F(DBDeleteTest, WholeSeriesUnionOfSelectorsAndTenantsApart) {
  OpenDB();
  const Labels c = Labels::FromUnsorted({{"__name__", "other"}, {"job", "c"}});
  const std::vector<Sample> all = Range(1000, 25000, 1000);
  for (const Labels* l : {&a_, &b_, &c}) ASSERT_TRUE(AppendAll("t", *l, all).ok());
  ASSERT_TRUE(AppendAll("u", a_, all).ok());

  auto n = Delete("t",
                  {{M(MatchType::kEqual, "job", "a")}, {M(MatchType::kRegexMatch, "job", "a|c")}},
                  kMin, kMax);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2);
  auto left = Query("t", {M(MatchType::kRegexMatch, "job", ".+")});
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left.begin()->first, b_.ToString());
  ExpectSamples(Query("u", {Name("m")})[a_.ToString()], all);

  // Nothing matches: nothing happens. An unknown tenant is no error either.
  n = Delete("t", {{M(MatchType::kEqual, "job", "zzz")}}, kMin, kMax);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  n = Delete("nobody", {{Name("m")}}, kMin, kMax);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  // A selector that matches everything is refused, as in a query.
  EXPECT_EQ(Delete("t", {{M(MatchType::kRegexMatch, "job", ".*")}}, kMin, kMax).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DBDeleteTest, ConcurrentAppendsKeepEveryAcknowledgedSampleOutsideTheRange) {
  OpenDB();
  constexpr int kWriters = 3;
  constexpr int64_t kSamples = 400;
  std::vector<Labels> series;
  for (int w = 0; w < kWriters; ++w) {
    const std::string w_value = std::to_string(w);
    series.push_back(Labels::FromUnsorted({{"__name__", "m"}, {"w", w_value}}));
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int64_t i = 1; i <= kSamples; ++i) {
        absl::Status st = AppendAll("t", series[w], {{i * 1000, static_cast<double>(i)}});
        ASSERT_TRUE(st.ok()) << st;
      }
    });
  }
  // Deletes an old range while the writers run (they are past it by the last deletion).
  for (int i = 0; i < 20; ++i) {
    auto n = Delete("t", {{Name("m")}}, 10000, 50000);
    ASSERT_TRUE(n.ok()) << n.status();
  }
  for (std::thread& t : writers) t.join();
  // Samples in the range written after the last deletion may remain; nothing outside it is lost.
  ASSERT_TRUE(Delete("t", {{Name("m")}}, 10000, 50000).ok());
  Crash();
  OpenDB();
  auto got = Query("t", {Name("m")});
  ASSERT_EQ(got.size(), static_cast<size_t>(kWriters));
  for (const Labels& l : series) {
    std::vector<Sample> want;
    for (int64_t i = 1; i <= kSamples; ++i) {
      if (i * 1000 < 10000 || i * 1000 > 50000) want.push_back({i * 1000, static_cast<double>(i)});
    }
    ExpectSamples(got[l.ToString()], want);
  }
}

TEST(WalDeletionTest, RoundTripAndCorruption) {
  internal::WalDeletion d;
  d.tenant = 7;
  d.mint = -5;
  d.maxt = std::numeric_limits<int64_t>::max();
  d.series_ids = {1, 300, 1ULL << 40};
  std::string bytes;
  internal::EncodeWalDeletion(d, &bytes);
  ASSERT_TRUE(internal::IsWalDeletion(bytes));
  auto back = internal::DecodeWalDeletion(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->tenant, 7u);
  EXPECT_EQ(back->mint, -5);
  EXPECT_EQ(back->maxt, d.maxt);
  EXPECT_EQ(back->series_ids, d.series_ids);
  // A sample record is not a deletion, and a deletion is not a sample record.
  EXPECT_FALSE(internal::DecodeWalRecord(bytes).ok());
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    EXPECT_EQ(internal::DecodeWalDeletion(bytes.substr(0, cut)).status().code(),
              absl::StatusCode::kDataLoss)
        << cut;
  }
  EXPECT_FALSE(internal::DecodeWalDeletion(bytes + "x").ok());
}

}  // namespace
}  // namespace tidemark
