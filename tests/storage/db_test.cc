#include "storage/db.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <thread>

#include "rocksdb/db.h"
#include "storage/db_impl.h"
#include "storage/keys.h"
#include "tests/storage/db_test_fixture.h"

namespace tidemark {
namespace {

TEST_F(DBTest, RoundTripAcrossSealedChunksAndHead) {
  OpenDB();
  Labels l = Labels::FromUnsorted({{"__name__", "up"}, {"job", "a"}});
  std::vector<Sample> all = Range(-50000, 300000, 10000);  // 36 samples, negative times too
  for (size_t i = 0; i < all.size(); i += 7) {
    std::vector<Sample> part(all.begin() + i, all.begin() + std::min(all.size(), i + 7));
    ASSERT_TRUE(AppendAll("t", l, part).ok());
  }
  Stats stats = db_->GetStats();
  EXPECT_EQ(stats.samples_appended, 36);
  // Chunks of 10, except that midnight (t = 0) ends one: -50 s..-10 s, then 0..90 s and so on.
  EXPECT_EQ(stats.chunks_sealed, 4);
  EXPECT_EQ(stats.head_samples, 1);
  EXPECT_EQ(stats.active_series, 1);
  EXPECT_EQ(stats.min_time_ms, -50000);
  EXPECT_EQ(stats.max_time_ms, 300000);

  auto got = Query("t", {Name("up")});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got.begin()->second, all);
  // A sub-range that starts inside one sealed chunk and ends in the head.
  got = Query("t", {Name("up")}, 45000, 295000);
  std::vector<Sample> want(all.begin() + 10, all.begin() + 35);
  EXPECT_EQ(got.begin()->second, want);
  // A range with no samples drops the series.
  EXPECT_TRUE(Query("t", {Name("up")}, 1000, 9000).empty());
  EXPECT_TRUE(Query("t", {Name("up")}, 400000, 500000).empty());

  // Seek never goes backwards and lands on the first sample >= t.
  auto q = db_->NewQuerier("t", 0, 1000000);
  ASSERT_TRUE(q.ok());
  auto series = (*q)->Select({Name("up")}, {});
  ASSERT_TRUE(series.ok());
  ASSERT_EQ(series->size(), 1u);
  auto& it = (*series)[0].samples;
  ASSERT_TRUE(it->Seek(155000));
  EXPECT_EQ(it->At().t, 160000);
  ASSERT_TRUE(it->Seek(100));
  EXPECT_EQ(it->At().t, 160000);
  EXPECT_FALSE(it->Seek(300001));

  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  OpenDB();
  got = Query("t", {Name("up")});
  EXPECT_EQ(got.begin()->second, all);
}

// Series that start together fill their first chunks at lengths of their own (a quarter to
// five quarters of max_samples_per_chunk), so their seals are spread out and the head holds
// about half a chunk per series rather than, at one moment, a whole chunk of each. The length
// follows the first sample's time: here 64 targets scraped at offsets of their own, 3 series
// each.
TEST_F(DBTest, SeriesStartedTogetherSealAtStaggeredTimes) {
  constexpr int kSeries = 192, kSteps = 40;
  auto time = [](int i, int step) { return step * 15000 + (i / 3) * 137; };
  auto series = [](int i) {
    return Labels::FromUnsorted({{"__name__", "m"}, {"i", std::to_string(i)}});
  };
  // The most samples the head holds after any step, every series appending one per step.
  auto peak_head_samples = [&] {
    int64_t peak = 0;
    for (int step = 0; step < kSteps; ++step) {
      auto app = db_->NewAppender("t");
      for (int i = 0; i < kSeries; ++i) {
        EXPECT_TRUE(app->Append(series(i), time(i, step), step + i).ok());
      }
      EXPECT_TRUE(app->Commit().ok());
      peak = std::max(peak, db_->GetStats().head_samples);
    }
    return peak;
  };
  options_.stagger_first_chunks = false;
  OpenDB();
  const int64_t in_step = peak_head_samples();
  EXPECT_GE(in_step, kSeries * (options_.max_samples_per_chunk - 1));
  db_.reset();
  std::filesystem::remove_all(dir_);
  options_.stagger_first_chunks = true;
  OpenDB();
  const int64_t staggered = peak_head_samples();
  EXPECT_LE(staggered, in_step * 3 / 4);
  // Nothing lost, and the head still holds at most a chunk's worth per series.
  auto got = Query("t", {Name("m")});
  ASSERT_EQ(got.size(), static_cast<size_t>(kSeries));
  for (int i = 0; i < kSeries; ++i) {
    const std::vector<Sample>& samples = got[series(i).ToString()];
    ASSERT_EQ(samples.size(), static_cast<size_t>(kSteps));
    for (int step = 0; step < kSteps; ++step) {
      ASSERT_EQ(samples[step], (Sample{time(i, step), static_cast<double>(step + i)}));
    }
  }
  EXPECT_LE(db_->GetStats().head_samples, kSeries * options_.max_samples_per_chunk);
}

TEST_F(DBTest, OutOfOrderAndDuplicateRejectedWithReasons) {
  OpenDB();
  Labels l = Labels::FromUnsorted({{"__name__", "m"}});
  ASSERT_TRUE(AppendAll("t", l, {{100, 1}, {200, 2}}).ok());

  auto app = db_->NewAppender("t");
  absl::Status st = app->Append(l, 150, 1);
  EXPECT_EQ(RejectReasonOf(st), RejectReason::kOutOfOrder) << st;
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_EQ(st.message().substr(0, 19), "out of order sample");
  st = app->Append(l, 200, 3);
  EXPECT_EQ(RejectReasonOf(st), RejectReason::kDuplicate) << st;
  EXPECT_EQ(st.message().substr(0, 30), "duplicate sample for timestamp");
  // The same sample again is accepted and ignored.
  EXPECT_TRUE(app->Append(l, 200, 2).ok());
  EXPECT_EQ(app->pending(), 0u);
  // Within one appender too.
  ASSERT_TRUE(app->Append(l, 300, 3).ok());
  EXPECT_EQ(RejectReasonOf(app->Append(l, 250, 3)), RejectReason::kOutOfOrder);
  EXPECT_EQ(RejectReasonOf(app->Append(l, 300, 4)), RejectReason::kDuplicate);
  EXPECT_TRUE(app->Append(l, 300, 3).ok());
  EXPECT_EQ(app->pending(), 1u);
  ASSERT_TRUE(app->Commit().ok());
  EXPECT_EQ(RejectReasonOf(absl::InvalidArgumentError("x")), RejectReason::kNone);
  EXPECT_EQ(RejectReasonName(RejectReason::kOutOfOrder), "out_of_order");

  // Invalid labels.
  st = app->Append(Labels::FromSortedUnchecked({{"b", "1"}, {"a", "1"}}), 1, 1);
  EXPECT_EQ(RejectReasonOf(st), RejectReason::kInvalidLabels) << st;

  auto got = Query("t", {Name("m")});
  EXPECT_EQ(got.begin()->second, (std::vector<Sample>{{100, 1}, {200, 2}, {300, 3}}));
}

TEST_F(DBTest, LabelViewsAppendToTheSameSeriesAsLabels) {
  OpenDB();
  Labels l = Labels::FromUnsorted({{"__name__", "m"}, {"job", "a"}});
  ASSERT_TRUE(AppendAll("t", l, {{100, 1}}).ok());
  // Views into one buffer, as the remote-write decoder gives them.
  const std::string buf = "__name__mjobajobb";
  const std::string_view b(buf);
  const LabelView known[] = {{b.substr(0, 8), b.substr(8, 1)}, {b.substr(9, 3), b.substr(12, 1)}};
  const LabelView fresh[] = {{b.substr(0, 8), b.substr(8, 1)}, {b.substr(13, 3), b.substr(16, 1)}};
  const LabelView unsorted[] = {{b.substr(9, 3), b.substr(12, 1)}, {b.substr(0, 8), b.substr(8, 1)}};

  auto app = db_->NewAppender("t");
  absl::Status st = app->Append(std::span<const LabelView>(known), 50, 1);
  EXPECT_EQ(RejectReasonOf(st), RejectReason::kOutOfOrder) << st;
  EXPECT_NE(st.message().find(R"(job="a")"), std::string_view::npos) << st;
  ASSERT_TRUE(app->Append(std::span<const LabelView>(known), 200, 2).ok());
  // Labels and views of the same series meet in one pending series.
  ASSERT_TRUE(app->Append(l, 300, 3).ok());
  EXPECT_EQ(RejectReasonOf(app->Append(std::span<const LabelView>(known), 300, 4)),
            RejectReason::kDuplicate);
  ASSERT_TRUE(app->Append(std::span<const LabelView>(fresh), 300, 5).ok());
  st = app->Append(std::span<const LabelView>(unsorted), 300, 6);
  EXPECT_EQ(RejectReasonOf(st), RejectReason::kInvalidLabels) << st;
  ASSERT_TRUE(app->Commit().ok());

  auto got = Query("t", {Name("m")});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[R"(m{job="a"})"], (std::vector<Sample>{{100, 1}, {200, 2}, {300, 3}}));
  EXPECT_EQ(got[R"(m{job="b"})"], (std::vector<Sample>{{300, 5}}));
  // After a restart the series is looked up from RocksDB by views as well.
  db_.reset();
  OpenDB();
  app = db_->NewAppender("t");
  ASSERT_TRUE(app->Append(std::span<const LabelView>(fresh), 400, 7).ok());
  ASSERT_TRUE(app->Commit().ok());
  got = Query("t", {Name("m")});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[R"(m{job="b"})"], (std::vector<Sample>{{300, 5}, {400, 7}}));
}

TEST_F(DBTest, LazySelectSortsByLabelsKeptAsPairRanks) {
  OpenDB();
  // 600 series created in the reverse of their label order, sharing pairs.
  std::vector<Labels> created;
  for (int i = 599; i >= 0; --i) {
    char name[8];
    std::snprintf(name, sizeof name, "s%03d", i);
    created.push_back(Labels::FromUnsorted({{"__name__", "m"}, {"s", name}}));
    ASSERT_TRUE(AppendAll("t", created.back(), {{1000, static_cast<double>(i)}}).ok());
  }
  auto q = db_->NewQuerier("t", 0, 2000);
  ASSERT_TRUE(q.ok());
  SelectHints hints{0, 2000};
  hints.lazy = true;
  auto lazy = (*q)->Select({Name("m")}, hints);
  ASSERT_TRUE(lazy.ok());
  ASSERT_EQ(lazy->size(), created.size());
  std::vector<Labels> sorted(created.rbegin(), created.rend());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i == 300) {
      // Out of order once.
      absl::StatusOr<Labels> l5 = (*lazy)[5].TakeLabels();
      ASSERT_TRUE(l5.ok()) << l5.status();
      EXPECT_EQ(*l5, sorted[5]);
    }
    if (i == 5) continue;
    Series& s = (*lazy)[i];
    absl::StatusOr<Labels> labels = s.TakeLabels();
    ASSERT_TRUE(labels.ok()) << labels.status();
    EXPECT_EQ(*labels, sorted[i]) << i;
    ASSERT_TRUE(s.Samples().Next());
    EXPECT_EQ(s.Samples().At().v, static_cast<double>(i));
  }
  // Taken once: a second take gives what is left (nothing).
  absl::StatusOr<Labels> again = (*lazy)[0].TakeLabels();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

// A querier reads its series one after another through one chunks iterator: a seal between two
// reads writes a chunk that iterator does not see, and drops its samples from the head, so the
// querier must read the second series through a newer iterator.
TEST_F(DBTest, AQuerierReadsSamplesSealedBetweenTwoOfItsReads) {
  OpenDB();  // chunks of 10 samples
  Labels a = Labels::FromUnsorted({{"__name__", "m"}, {"s", "a"}});
  Labels b = Labels::FromUnsorted({{"__name__", "m"}, {"s", "b"}});
  ASSERT_TRUE(AppendAll("t", a, Range(0, 140000, 10000)).ok());  // a sealed chunk, and head
  ASSERT_TRUE(AppendAll("t", b, Range(0, 50000, 10000)).ok());   // 6 samples, all in the head
  auto q = db_->NewQuerier("t", 0, 1000000);
  ASSERT_TRUE(q.ok());
  SelectHints hints{0, 1000000};
  hints.lazy = true;
  auto lazy = (*q)->Select({Name("m")}, hints);
  ASSERT_TRUE(lazy.ok());
  ASSERT_EQ(lazy->size(), 2u);
  auto read = [](Series& s) {
    std::vector<Sample> v;
    while (s.Samples().Next()) v.push_back(s.Samples().At());
    EXPECT_TRUE(s.Samples().status().ok()) << s.Samples().status();
    return v;
  };
  EXPECT_EQ(read((*lazy)[0]), Range(0, 140000, 10000));
  // b's first 10 samples are sealed now: in a chunk, no longer in the head.
  const int64_t sealed = db_->GetStats().chunks_sealed;
  ASSERT_TRUE(AppendAll("t", b, Range(60000, 110000, 10000)).ok());
  ASSERT_EQ(db_->GetStats().chunks_sealed, sealed + 1);
  EXPECT_EQ(read((*lazy)[1]), Range(0, 110000, 10000));
}

TEST_F(DBTest, LazySelectReadsTheSameSamplesWhenIterated) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "m"}, {"s", "a"}});
  Labels b = Labels::FromUnsorted({{"__name__", "m"}, {"s", "b"}});
  Labels c = Labels::FromUnsorted({{"__name__", "m"}, {"s", "c"}});
  ASSERT_TRUE(AppendAll("t", a, Range(0, 250000, 10000)).ok());  // sealed chunks and head
  ASSERT_TRUE(AppendAll("t", b, Range(5000, 45000, 10000)).ok());
  ASSERT_TRUE(AppendAll("t", c, {{900000, 1}}).ok());  // nothing in the range below
  auto q = db_->NewQuerier("t", 20000, 120000);
  ASSERT_TRUE(q.ok());
  auto eager = (*q)->Select({Name("m")}, SelectHints{20000, 120000});
  SelectHints lazy_hints{20000, 120000};
  lazy_hints.lazy = true;
  auto lazy = (*q)->Select({Name("m")}, lazy_hints);
  ASSERT_TRUE(eager.ok() && lazy.ok());
  auto read = [](std::vector<Series>& set) {
    std::map<std::string, std::vector<Sample>> out;
    for (Series& s : set) {
      std::vector<Sample> v;
      while (s.Samples().Next()) v.push_back(s.Samples().At());
      EXPECT_TRUE(s.Samples().status().ok()) << s.Samples().status();
      EXPECT_FALSE(s.Samples().Next());  // exhausted stays exhausted
      absl::StatusOr<Labels> labels = s.TakeLabels();
      EXPECT_TRUE(labels.ok()) << labels.status();
      if (!v.empty()) out[labels->ToString()] = v;
    }
    return out;
  };
  ASSERT_EQ(eager->size(), 2u);
  EXPECT_GE(lazy->size(), 2u);  // may hold `c`, with no samples
  // Sorted by labels, as the eager selection.
  std::vector<Labels> lazy_labels;
  for (Series& s : *lazy) {
    Series copy{{}, nullptr, s.source, s.index};
    lazy_labels.push_back(*copy.TakeLabels());
  }
  for (size_t i = 1; i < lazy_labels.size(); ++i) EXPECT_LT(lazy_labels[i - 1], lazy_labels[i]);
  auto want = read(*eager);
  EXPECT_EQ(read(*lazy), want);
  EXPECT_EQ(want[R"(m{s="a"})"], Range(20000, 120000, 10000));
  // Ranges after the sealed chunks (head only), and across both.
  auto all = Range(0, 250000, 10000);
  for (auto [mint, maxt] : {std::pair<int64_t, int64_t>{200000, 250000}, {150000, 250000},
                            {185000, 205000}, {255000, 400000}}) {
    std::vector<Sample> want_a;
    for (const Sample& x : all) {
      if (x.t >= mint && x.t <= maxt) want_a.push_back(x);
    }
    EXPECT_EQ(Query("t", {Name("m"), M(MatchType::kEqual, "s", "a")}, mint, maxt)[R"(m{s="a"})"],
              want_a) << mint << ".." << maxt;
  }
  // Seek before any Next loads as well.
  lazy = (*q)->Select({Name("m"), M(MatchType::kEqual, "s", "a")}, lazy_hints);
  ASSERT_TRUE(lazy.ok());
  ASSERT_EQ(lazy->size(), 1u);
  ASSERT_TRUE((*lazy)[0].Samples().Seek(95000));
  EXPECT_EQ((*lazy)[0].Samples().At().t, 100000);
}

TEST_F(DBTest, CommitIsAllOrNothing) {
  OpenDB();
  Labels x = Labels::FromUnsorted({{"__name__", "x"}});
  Labels y = Labels::FromUnsorted({{"__name__", "y"}});
  auto first = db_->NewAppender("t");
  ASSERT_TRUE(first->Append(y, 10, 1).ok());
  ASSERT_TRUE(first->Append(x, 10, 1).ok());
  // Another appender commits a newer sample of x in between.
  ASSERT_TRUE(AppendAll("t", x, {{20, 2}}).ok());
  absl::Status st = first->Commit();
  EXPECT_EQ(RejectReasonOf(st), RejectReason::kOutOfOrder) << st;
  EXPECT_EQ(first->pending(), 0u);
  EXPECT_TRUE(Query("t", {Name("y")}).empty());
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, (std::vector<Sample>{{20, 2}}));
  // The rejected commit left no trace after a restart either.
  Crash();
  OpenDB();
  EXPECT_TRUE(Query("t", {Name("y")}).empty());
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, (std::vector<Sample>{{20, 2}}));
}

// An appender reserves a series' first sample at Append when it is newer than the series'
// tail: a concurrent appender's samples are checked against it from then on, whichever commits
// first, and a reservation that never commits gives the tail back.
TEST_F(DBTest, AppendersReserveAndGiveBackTheTailOfASeries) {
  OpenDB();
  Labels x = Labels::FromUnsorted({{"__name__", "x"}});
  ASSERT_TRUE(AppendAll("t", x, {{5, 0.5}}).ok());

  auto first = db_->NewAppender("t");
  ASSERT_TRUE(first->Append(x, 10, 1).ok());
  auto second = db_->NewAppender("t");
  ASSERT_TRUE(second->Append(x, 20, 2).ok());
  ASSERT_TRUE(second->Commit().ok());
  // Older than the newest reservation (20): refused even before any commit.
  auto late = db_->NewAppender("t");
  EXPECT_EQ(RejectReasonOf(late->Append(x, 15, 3)), RejectReason::kOutOfOrder);
  // The earlier reservation commits after the later one, with the higher sequence number.
  ASSERT_TRUE(first->Commit().ok());
  const std::vector<Sample> want{{5, 0.5}, {10, 1}, {20, 2}};
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, want);

  // Reservations given up, in either order, leave the tail at the newest stored sample.
  auto a = db_->NewAppender("t");
  auto b = db_->NewAppender("t");
  ASSERT_TRUE(a->Append(x, 30, 3).ok());
  ASSERT_TRUE(b->Append(x, 40, 4).ok());
  EXPECT_EQ(RejectReasonOf(late->Append(x, 35, 3)), RejectReason::kOutOfOrder);
  a->Rollback();
  b.reset();  // an appender dropped without a commit rolls back
  ASSERT_TRUE(late->Append(x, 25, 2.5).ok());
  // A series with more samples than its reserved one in the appender is checked at the commit.
  ASSERT_TRUE(late->Append(x, 26, 2.6).ok());
  ASSERT_TRUE(late->Commit().ok());
  const std::vector<Sample> all{{5, 0.5}, {10, 1}, {20, 2}, {25, 2.5}, {26, 2.6}};
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, all);
  Crash();
  OpenDB();
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, all);
}

// A sample equal to one another appender has reserved but not stored is not ignored as a
// resend: were that appender to fail, the sample would be lost although acknowledged. Its commit
// asks for a retry instead, which once the other has ended is stored or ignored.
TEST_F(DBTest, ASampleEqualToAnotherAppendersReservationIsRetriedNotIgnored) {
  OpenDB();
  Labels x = Labels::FromUnsorted({{"__name__", "x"}});
  ASSERT_TRUE(AppendAll("t", x, {{5, 0.5}}).ok());
  auto first = db_->NewAppender("t");
  ASSERT_TRUE(first->Append(x, 10, 1).ok());
  auto resend = db_->NewAppender("t");
  ASSERT_TRUE(resend->Append(x, 10, 1).ok());
  EXPECT_EQ(resend->pending(), 1u);
  absl::Status st = resend->Commit();
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  first->Rollback();
  ASSERT_TRUE(resend->Append(x, 10, 1).ok());
  ASSERT_TRUE(resend->Commit().ok());
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, (std::vector<Sample>{{5, 0.5}, {10, 1}}));
  // Stored: a resend is ignored at once.
  ASSERT_TRUE(resend->Append(x, 10, 1).ok());
  EXPECT_EQ(resend->pending(), 0u);
  // Stored by the time the resend commits: ignored then.
  auto second = db_->NewAppender("t");
  ASSERT_TRUE(second->Append(x, 20, 2).ok());
  ASSERT_TRUE(resend->Append(x, 20, 2).ok());
  EXPECT_EQ(resend->pending(), 1u);
  ASSERT_TRUE(second->Commit().ok());
  ASSERT_TRUE(resend->Commit().ok());
  const std::vector<Sample> want{{5, 0.5}, {10, 1}, {20, 2}};
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, want);
  Crash();
  OpenDB();
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, want);
}

// Two commits of one series whose sequence numbers are in the opposite order of their samples'
// times (the earlier sample reserved first, committed last), then a seal that cuts between
// them, and the WAL released below what the head still needs: nothing is lost in a crash.
TEST_F(DBTest, ASealAfterCommitsOutOfSequenceOrderKeepsTheWalTheHeadNeeds) {
  OpenDB();
  Labels x = Labels::FromUnsorted({{"__name__", "x"}});
  std::vector<Sample> samples = Range(0, 8000, 1000);  // 9: one short of a full chunk
  ASSERT_TRUE(AppendAll("t", x, samples).ok());
  auto earlier = db_->NewAppender("t");
  ASSERT_TRUE(earlier->Append(x, 9000, 9).ok());
  // Applied first: 10 samples, but not sealed past the reservation at 9000.
  ASSERT_TRUE(AppendAll("t", x, {{10000, 10}}).ok());
  // Inserted before 10000: the first 10 samples are sealed, 10000 stays open; its WAL record
  // has the lower sequence number.
  ASSERT_TRUE(earlier->Commit().ok());
  EXPECT_EQ(db_->GetStats().head_samples, 1);
  ASSERT_TRUE(db_->Compact().ok());
  Crash();
  OpenDB();
  samples.push_back({9000, 9});
  samples.push_back({10000, 10});
  EXPECT_EQ(Query("t", {Name("x")}).begin()->second, samples);
}

TEST_F(DBTest, TenantsAreIsolated) {
  OpenDB();
  Labels l = Labels::FromUnsorted({{"__name__", "up"}, {"job", "j"}});
  ASSERT_TRUE(AppendAll("a", l, {{1000, 1}}).ok());
  ASSERT_TRUE(AppendAll("b", l, {{1000, 2}}).ok());
  // The same timestamp with another value is no duplicate across tenants.
  EXPECT_EQ(Query("a", {Name("up")}).begin()->second, (std::vector<Sample>{{1000, 1}}));
  EXPECT_EQ(Query("b", {Name("up")}).begin()->second, (std::vector<Sample>{{1000, 2}}));
  ASSERT_TRUE(AppendAll("b", Labels::FromUnsorted({{"__name__", "only_b"}}), {{1000, 3}}).ok());
  EXPECT_TRUE(Query("a", {Name("only_b")}).empty());
  EXPECT_TRUE(Query("nobody", {Name("up")}).empty());
  auto q = db_->NewQuerier("a", 0, 2000);
  ASSERT_TRUE(q.ok());
  auto names = (*q)->LabelValues("__name__", {});
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"up"}));
  EXPECT_EQ(db_->GetStats().tenants, 2);
  // Queryable for the engine.
  auto qb = db_->ForTenant("b")->NewQuerier(0, 2000);
  ASSERT_TRUE(qb.ok());
  auto sb = (*qb)->Select({M(MatchType::kRegexMatch, "__name__", ".+")}, {});
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ(sb->size(), 2u);
  // Tenant ids survive a restart, and a tenant created afterwards gets a fresh one.
  Crash();
  OpenDB();
  ASSERT_TRUE(AppendAll("c", l, {{1000, 7}}).ok());
  EXPECT_EQ(Query("a", {Name("up")}).begin()->second, (std::vector<Sample>{{1000, 1}}));
  EXPECT_EQ(Query("b", {Name("up")}).begin()->second, (std::vector<Sample>{{1000, 2}}));
  EXPECT_EQ(Query("c", {Name("up")}).begin()->second, (std::vector<Sample>{{1000, 7}}));
  EXPECT_TRUE(Query("c", {Name("only_b")}).empty());
}

TEST_F(DBTest, MatchersIncludingRegexNegativeAndEmpty) {
  OpenDB();
  auto add = [&](std::initializer_list<std::pair<std::string_view, std::string_view>> l) {
    ASSERT_TRUE(AppendAll("t", Labels::FromUnsorted(l), {{1000, 1}}).ok());
  };
  add({{"__name__", "a"}, {"job", "x"}, {"inst", "1"}});
  add({{"__name__", "a"}, {"job", "y"}, {"inst", "2"}});
  add({{"__name__", "a"}, {"job", "x"}, {"inst", "3"}, {"env", "prod"}});
  add({{"__name__", "b"}, {"job", "x"}});
  auto keys = [](const std::map<std::string, std::vector<Sample>>& m) {
    std::vector<std::string> k;
    for (const auto& [name, s] : m) k.push_back(name);
    return k;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(keys(Query("t", {Name("a"), M(MatchType::kEqual, "job", "x")})),
            (V{"a{env=\"prod\", inst=\"3\", job=\"x\"}", "a{inst=\"1\", job=\"x\"}"}));
  EXPECT_EQ(keys(Query("t", {Name("a"), M(MatchType::kNotEqual, "job", "x")})),
            (V{"a{inst=\"2\", job=\"y\"}"}));
  EXPECT_EQ(keys(Query("t", {M(MatchType::kRegexMatch, "inst", "[12]")})),
            (V{"a{inst=\"1\", job=\"x\"}", "a{inst=\"2\", job=\"y\"}"}));
  // Fully anchored: "1" does not match "[0-9]" partially.
  EXPECT_EQ(keys(Query("t", {M(MatchType::kRegexMatch, "job", "x|y"),
                             M(MatchType::kRegexNoMatch, "inst", "1|2")})),
            (V{"a{env=\"prod\", inst=\"3\", job=\"x\"}", "b{job=\"x\"}"}));
  // Empty-matching matchers select series without the label.
  EXPECT_EQ(keys(Query("t", {Name("a"), M(MatchType::kEqual, "env", "")})),
            (V{"a{inst=\"1\", job=\"x\"}", "a{inst=\"2\", job=\"y\"}"}));
  EXPECT_EQ(keys(Query("t", {M(MatchType::kEqual, "job", "x"), M(MatchType::kRegexMatch, "env", "prod|")})),
            (V{"a{env=\"prod\", inst=\"3\", job=\"x\"}", "a{inst=\"1\", job=\"x\"}", "b{job=\"x\"}"}));
  EXPECT_EQ(keys(Query("t", {M(MatchType::kEqual, "job", "x"), M(MatchType::kNotEqual, "env", "prod")})),
            (V{"a{inst=\"1\", job=\"x\"}", "b{job=\"x\"}"}));
  EXPECT_TRUE(Query("t", {Name("a"), M(MatchType::kEqual, "job", "z")}).empty());
  // Only empty-matching matchers: an error, as in Prometheus.
  auto q = db_->NewQuerier("t", 0, 2000);
  ASSERT_TRUE(q.ok());
  auto bad = (*q)->Select({M(MatchType::kRegexMatch, "job", ".*")}, {});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();

  // Label names and values, with and without matchers.
  auto names = (*q)->LabelNames({});
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_EQ(*names, (V{"__name__", "env", "inst", "job"}));
  names = (*q)->LabelNames({Name("b")});
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (V{"__name__", "job"}));
  auto values = (*q)->LabelValues("inst", {});
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(*values, (V{"1", "2", "3"}));
  values = (*q)->LabelValues("inst", {M(MatchType::kEqual, "job", "x")});
  ASSERT_TRUE(values.ok());
  EXPECT_EQ(*values, (V{"1", "3"}));
  values = (*q)->LabelValues("nope", {});
  ASSERT_TRUE(values.ok());
  EXPECT_TRUE(values->empty());
  // Another day's range sees nothing.
  auto later = db_->NewQuerier("t", 3 * kDay, 4 * kDay);
  ASSERT_TRUE(later.ok());
  names = (*later)->LabelNames({});
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty());
}

TEST_F(DBTest, WalRecoveryAfterCrash) {
  options_.sync = SyncPolicy::kNever;  // a process crash is survived either way
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}});
  Labels b = Labels::FromUnsorted({{"__name__", "b"}, {"x", "y"}});
  std::vector<Sample> sa = Range(0, 240000, 10000);  // 25 samples: 2 sealed chunks + head
  std::vector<Sample> sb = Range(5000, 35000, 10000);
  ASSERT_TRUE(AppendAll("t", a, sa).ok());
  ASSERT_TRUE(AppendAll("u", b, sb).ok());
  Crash();
  OpenDB();
  EXPECT_EQ(Query("t", {Name("a")}).begin()->second, sa);
  EXPECT_EQ(Query("u", {Name("b")}).begin()->second, sb);
  // The head knows the last samples again.
  auto app = db_->NewAppender("t");
  EXPECT_EQ(RejectReasonOf(app->Append(a, 240000, 5)), RejectReason::kDuplicate);
  EXPECT_EQ(RejectReasonOf(app->Append(a, 100, 5)), RejectReason::kOutOfOrder);
  // New series after recovery get fresh ids.
  Labels c = Labels::FromUnsorted({{"__name__", "c"}});
  ASSERT_TRUE(AppendAll("t", c, {{1, 1}}).ok());
  EXPECT_EQ(Query("t", {Name("c")}).begin()->second, (std::vector<Sample>{{1, 1}}));
  EXPECT_EQ(Query("t", {Name("a")}).begin()->second, sa);
}

TEST_F(DBTest, WalRecoveryAfterCompactReleasedWal) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}});
  Labels idle = Labels::FromUnsorted({{"__name__", "idle"}});
  std::vector<Sample> sa = Range(0, 3 * 3600 * 1000, 60000);  // 181 samples
  ASSERT_TRUE(AppendAll("t", idle, {{0, 1}, {1000, 2}}).ok());
  std::vector<Sample> first(sa.begin(), sa.begin() + 95), second(sa.begin() + 95, sa.end());
  ASSERT_TRUE(AppendAll("t", a, first).ok());
  int64_t wal_before = db_->GetStats().wal_bytes;
  ASSERT_TRUE(db_->Compact().ok());
  Stats stats = db_->GetStats();
  // The idle series was sealed and its WAL released; `a` keeps 5 samples open.
  EXPECT_EQ(stats.head_samples, 5);
  EXPECT_EQ(stats.active_series, 1);
  EXPECT_LT(stats.wal_bytes, wal_before);
  ASSERT_TRUE(AppendAll("t", a, second).ok());
  ASSERT_TRUE(db_->Compact().ok());
  Crash();
  OpenDB();
  EXPECT_EQ(Query("t", {Name("a")}).begin()->second, sa);
  EXPECT_EQ(Query("t", {Name("idle")}).begin()->second, (std::vector<Sample>{{0, 1}, {1000, 2}}));
  // Sealed-only series are still checked for order after a restart.
  auto app = db_->NewAppender("t");
  EXPECT_EQ(RejectReasonOf(app->Append(idle, 500, 1)), RejectReason::kOutOfOrder);
  EXPECT_EQ(RejectReasonOf(app->Append(idle, 1000, 3)), RejectReason::kDuplicate);
  EXPECT_TRUE(app->Append(idle, 2000, 3).ok());
  ASSERT_TRUE(app->Commit().ok());
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  OpenDB();
  EXPECT_EQ(db_->GetStats().wal_bytes, 0);
  EXPECT_EQ(Query("t", {Name("idle")}).begin()->second,
            (std::vector<Sample>{{0, 1}, {1000, 2}, {2000, 3}}));
}

TEST_F(DBTest, DeleteBeforeDropsOldDaysAndChunks) {
  OpenDB();
  Labels a = Labels::FromUnsorted({{"__name__", "a"}, {"day", "all"}});
  Labels old = Labels::FromUnsorted({{"__name__", "old"}});
  std::vector<Sample> sa = Range(0, 3 * kDay, 3600 * 1000);  // hourly over three days
  ASSERT_TRUE(AppendAll("t", a, sa).ok());
  ASSERT_TRUE(AppendAll("t", old, {{1000, 1}}).ok());
  ASSERT_TRUE(db_->Compact().ok());  // seals `old` (idle)
  const int64_t cutoff = 2 * kDay;
  ASSERT_TRUE(db_->DeleteBefore(cutoff).ok());
  auto got = Query("t", {Name("a")});
  ASSERT_EQ(got.size(), 1u);
  const auto& kept = got.begin()->second;
  // Everything at or after the cutoff is kept; only whole chunks before it are gone.
  std::vector<Sample> want_tail;
  for (const Sample& s : sa) {
    if (s.t >= cutoff) want_tail.push_back(s);
  }
  ASSERT_GE(kept.size(), want_tail.size());
  EXPECT_LT(kept.size(), sa.size() - 40);
  EXPECT_TRUE(std::equal(want_tail.rbegin(), want_tail.rend(), kept.rbegin()));
  EXPECT_GE(kept.front().t, cutoff - options_.max_samples_per_chunk * 3600 * 1000);
  EXPECT_TRUE(Query("t", {Name("old")}).empty());
  // The postings of days 0 and 1 are gone: nothing is indexed there any more.
  auto q = db_->NewQuerier("t", 0, 2 * kDay - 1);
  ASSERT_TRUE(q.ok());
  auto names = (*q)->LabelValues("__name__", {});
  ASSERT_TRUE(names.ok());
  EXPECT_TRUE(names->empty());
}

TEST_F(DBTest, StaleMarkerStoredBitExactly) {
  OpenDB();
  Labels l = Labels::FromUnsorted({{"__name__", "s"}});
  const double other_nan = std::bit_cast<double>(0x7ff8000000000001ULL);
  std::vector<Sample> samples;
  for (int i = 0; i < 25; ++i) {
    double v = i % 3 == 0 ? StaleNaN() : i % 3 == 1 ? other_nan : -0.0;
    samples.push_back({i * 1000, v});
  }
  ASSERT_TRUE(AppendAll("t", l, samples).ok());
  auto check = [&] {
    auto got = Query("t", {Name("s")}).begin()->second;
    ASSERT_EQ(got.size(), samples.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(std::bit_cast<uint64_t>(got[i].v), std::bit_cast<uint64_t>(samples[i].v)) << i;
    }
    EXPECT_TRUE(IsStaleNaN(got[0].v));
  };
  check();  // sealed chunks and head
  Crash();
  OpenDB();
  check();  // WAL replay
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  OpenDB();
  check();  // all sealed
}

TEST_F(DBTest, OtherFormatVersionFailsToOpen) {
  OpenDB();
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfds;
    for (const char* name : {"default", "meta", "series", "postings", "chunks", "wal",
                             "exemplars", "metadata", "state"}) {
      cfds.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), options_.path, cfds, &handles, &raw).ok());
    std::string v;
    internal::PutU32BE(&v, 3);
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), handles[1], internal::kMetaFormatVersion, v).ok());
    for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  auto db = DB::Open(options_);
  ASSERT_FALSE(db.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(db.status())) << db.status();
  EXPECT_NE(db.status().message().find("format version 3"), std::string::npos) << db.status();
}

TEST_F(DBTest, ReadOnlyOpenSeesReplayedWal) {
  OpenDB();
  Labels l = Labels::FromUnsorted({{"__name__", "r"}});
  std::vector<Sample> s = Range(0, 140000, 10000);
  ASSERT_TRUE(AppendAll("t", l, s).ok());
  Crash();
  options_.read_only = true;
  OpenDB();
  EXPECT_EQ(Query("t", {Name("r")}).begin()->second, s);
  auto app = db_->NewAppender("t");
  ASSERT_TRUE(app->Append(l, 200000, 1).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(app->Commit()));
  EXPECT_FALSE(db_->Compact().ok());
}

TEST_F(DBTest, ClosedDBAnswersErrors) {
  OpenDB();
  ASSERT_TRUE(db_->Close().ok());
  EXPECT_FALSE(db_->NewQuerier("t", 0, 1).ok());
  auto app = db_->NewAppender("t");
  EXPECT_TRUE(app->Append(Labels::FromUnsorted({{"__name__", "x"}}), 1, 1).ok());
  EXPECT_FALSE(app->Commit().ok());
}

TEST_F(DBTest, ConcurrentAppendersAndQueriers) {
  OpenDB();
  constexpr int kThreads = 4, kSamples = 200;
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      Labels l = Labels::FromUnsorted({{"__name__", "c"}, {"w", std::to_string(w)}});
      for (int i = 0; i < kSamples; ++i) {
        auto app = db_->NewAppender("t");
        ASSERT_TRUE(app->Append(l, i * 1000, i).ok());
        ASSERT_TRUE(app->Commit().ok());
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) {
      for (const auto& [name, samples] : Query("t", {Name("c")})) {
        for (size_t k = 0; k < samples.size(); ++k) ASSERT_EQ(samples[k].t, int64_t(k) * 1000);
      }
    }
  });
  for (auto& t : threads) t.join();
  auto got = Query("t", {Name("c")});
  ASSERT_EQ(got.size(), size_t{kThreads});
  for (const auto& [name, samples] : got) EXPECT_EQ(samples.size(), size_t{kSamples}) << name;
}

}  // namespace
}  // namespace tidemark
