#include "storage/keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <limits>

#include "storage/head.h"

namespace tidemark::internal {
namespace {

TEST(KeysTest, ChunkKeysSortByTimeIncludingNegative) {
  std::vector<int64_t> times = {std::numeric_limits<int64_t>::min(), -86400000, -1, 0, 1,
                                1700000000000, std::numeric_limits<int64_t>::max()};
  std::vector<std::string> keys;
  for (int64_t t : times) keys.push_back(ChunkKey(7, 42, t));
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  for (size_t i = 0; i < times.size(); ++i) {
    EXPECT_EQ(keys[i].size(), kChunkKeySize);
    EXPECT_EQ(ChunkKeyStart(keys[i]), times[i]);
    EXPECT_EQ(ChunkKeyDay(keys[i]), DayOf(times[i]));
    EXPECT_TRUE(keys[i].starts_with(ChunkSeriesPrefix(7, DayOf(times[i]), 42)));
  }
  // Days come first: within a tenant, every chunk of a day sorts before the next day's, whatever
  // the series, so retention deletes one range of keys per tenant.
  EXPECT_LT(ChunkKey(7, 43, kMsPerDay - 1), ChunkKey(7, 42, kMsPerDay));
  EXPECT_LT(ChunkKey(7, 99, kMsPerDay - 1), ChunkDayPrefix(7, 1));
  EXPECT_LT(ChunkKey(7, 1, std::numeric_limits<int64_t>::max()),
            ChunkKey(8, 1, std::numeric_limits<int64_t>::min()));
}

TEST(KeysTest, DayBoundsAreTheFirstInstantsOfTheDayAndTheNext) {
  EXPECT_EQ(DayStartMs(0), 0);
  EXPECT_EQ(DayEndMs(0), kMsPerDay);
  EXPECT_EQ(DayStartMs(-1), -kMsPerDay);
  EXPECT_EQ(DayOf(DayEndMs(5) - 1), 5);
  EXPECT_EQ(DayOf(DayEndMs(5)), 6);
  // The clamped end days hold everything beyond them.
  EXPECT_EQ(DayStartMs(std::numeric_limits<int32_t>::min()), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(DayEndMs(std::numeric_limits<int32_t>::max()), std::numeric_limits<int64_t>::max());
}

TEST(KeysTest, DayOfFloorsAndPostingsSortByDay) {
  EXPECT_EQ(DayOf(0), 0);
  EXPECT_EQ(DayOf(kMsPerDay - 1), 0);
  EXPECT_EQ(DayOf(kMsPerDay), 1);
  EXPECT_EQ(DayOf(-1), -1);
  EXPECT_EQ(DayOf(-kMsPerDay), -1);
  EXPECT_EQ(DayOf(-kMsPerDay - 1), -2);
  EXPECT_EQ(DayOf(std::numeric_limits<int64_t>::min()), std::numeric_limits<int32_t>::min());
  EXPECT_LT(PostingKey(1, -1, "a", "b", 1), PostingKey(1, 0, "a", "a", 0));
  EXPECT_LT(PostingKey(1, 5, "z", "z", 9), PostingKey(2, 0, "a", "a", 0));
}

TEST(KeysTest, PostingKeyRoundTripWithAwkwardValue) {
  std::string value("a\0b", 3);
  std::string key = PostingKey(3, -7, "job", value, 0x0102030405060708ULL);
  ParsedPosting p;
  ASSERT_TRUE(ParsePostingKey(key, &p));
  EXPECT_EQ(p.tenant, 3u);
  EXPECT_EQ(p.day, -7);
  EXPECT_EQ(p.name, "job");
  EXPECT_EQ(p.value, value);
  EXPECT_EQ(p.series_id, 0x0102030405060708ULL);
  EXPECT_FALSE(ParsePostingKey("short", &p));
}

TEST(KeysTest, LabelsRoundTrip) {
  Labels l = Labels::FromUnsorted({{"__name__", "up"}, {"x", std::string(300, 'v')}});
  std::string bytes;
  EncodeLabels(l, &bytes);
  auto back = DecodeLabels(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, l);
  EXPECT_FALSE(DecodeLabels(bytes.substr(0, bytes.size() - 1)).ok());
}

TEST(KeysTest, WalRecordRoundTripAndRejectsCorruption) {
  std::vector<WalEntry> entries(2);
  entries[0].tenant = 1;
  entries[0].series_id = 5;
  entries[0].has_labels = true;
  entries[0].labels = Labels::FromUnsorted({{"a", "1"}});
  entries[0].samples = {{-5, 1.5}, {10, StaleNaN()}};
  entries[1].tenant = 1;
  entries[1].series_id = 6;
  entries[1].samples = {{3, -0.0}};
  std::string rec;
  EncodeWalRecord(entries, &rec);
  auto back = DecodeWalRecord(rec);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].labels, entries[0].labels);
  EXPECT_TRUE((*back)[0].has_labels);
  EXPECT_FALSE((*back)[1].has_labels);
  EXPECT_EQ((*back)[0].samples, entries[0].samples);  // bitwise
  EXPECT_EQ((*back)[1].samples, entries[1].samples);
  for (size_t n = 0; n < rec.size(); ++n) {
    EXPECT_FALSE(DecodeWalRecord(rec.substr(0, n)).ok()) << n;
  }
}

TEST(KeysTest, WalRecordVersion1StillDecodes) {
  // A version-1 record as written before version 2: u32 tenant, u64 id, flags, labels,
  // uvarint count, then u64 t and u64 value bits, big-endian.
  std::string rec(1, '\x01');
  PutVarint(&rec, 1);
  PutU32BE(&rec, 3);
  PutU64BE(&rec, 77);
  rec.push_back('\x01');
  std::string labels;
  EncodeLabels(Labels::FromUnsorted({{"a", "1"}}), &labels);
  PutVarint(&rec, labels.size());
  rec += labels;
  PutVarint(&rec, 2);
  PutU64BE(&rec, static_cast<uint64_t>(int64_t{-5}));
  PutU64BE(&rec, std::bit_cast<uint64_t>(1.5));
  PutU64BE(&rec, 10);
  PutU64BE(&rec, kStaleNaNBits);
  auto back = DecodeWalRecord(rec);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].tenant, 3u);
  EXPECT_EQ((*back)[0].series_id, 77u);
  EXPECT_EQ((*back)[0].labels, Labels::FromUnsorted({{"a", "1"}}));
  EXPECT_EQ((*back)[0].samples, (std::vector<Sample>{{-5, 1.5}, {10, StaleNaN()}}));
  // Version 2 is about half the size for the same entry.
  std::string v2;
  EncodeWalRecord(*back, &v2);
  EXPECT_LT(v2.size() * 10, rec.size() * 7);
}

TEST(KeysTest, LabelsEqualEncodedMatchesEncodeLabels) {
  Labels l = Labels::FromUnsorted({{"__name__", "up"}, {"job", std::string(200, 'x')}});
  std::string bytes;
  EncodeLabels(l, &bytes);
  EXPECT_TRUE(LabelsEqualEncoded(l, bytes));
  EXPECT_FALSE(LabelsEqualEncoded(l, bytes.substr(0, bytes.size() - 1)));
  EXPECT_FALSE(LabelsEqualEncoded(l, bytes + "x"));
  EXPECT_FALSE(LabelsEqualEncoded(Labels::FromUnsorted({{"__name__", "up"}}), bytes));
  EXPECT_FALSE(LabelsEqualEncoded(Labels::FromUnsorted({{"__name__", "uq"}, {"job", "x"}}), bytes));
  EXPECT_TRUE(LabelsEqualEncoded(Labels(), ""));
}

TEST(HeadTest, ChunkCutsByCountAndSpan) {
  std::vector<Sample> s;
  for (int i = 0; i < 7; ++i) s.push_back({i * 10, 0});
  auto cuts = ChunkCuts(s, 3, 1000, false);
  ASSERT_EQ(cuts.size(), 2u);
  EXPECT_EQ(cuts[0], std::make_pair(size_t{0}, size_t{3}));
  EXPECT_EQ(cuts[1], std::make_pair(size_t{3}, size_t{6}));
  EXPECT_EQ(ChunkCuts(s, 3, 1000, true).back(), std::make_pair(size_t{6}, size_t{7}));
  // Span: a chunk ends before the sample 25ms after its first.
  auto by_span = ChunkCuts(s, 100, 25, false);
  ASSERT_EQ(by_span.size(), 2u);
  EXPECT_EQ(by_span[0], std::make_pair(size_t{0}, size_t{3}));
  EXPECT_TRUE(ChunkCuts({}, 3, 10, true).empty());
}

TEST(HeadTest, ChunkCutsNeverSpanTwoDays) {
  // Every 15 minutes from 23:00 on day 0 to 01:00 on day 1: one chunk would fit by count and
  // span, but midnight cuts it.
  std::vector<Sample> s;
  for (int64_t t = kMsPerDay - 3600 * 1000; t <= kMsPerDay + 3600 * 1000; t += 900 * 1000) {
    s.push_back({t, 1});
  }
  auto cuts = ChunkCuts(s, 120, 2 * 3600 * 1000 + 1, true);
  ASSERT_EQ(cuts.size(), 2u);
  EXPECT_EQ(cuts[0], std::make_pair(size_t{0}, size_t{4}));  // 23:00 .. 23:45
  EXPECT_EQ(s[cuts[1].first].t, kMsPerDay);                   // 00:00 begins the next
  // Without force the day-0 part is sealed and the rest stays open.
  EXPECT_EQ(ChunkCuts(s, 120, 2 * 3600 * 1000 + 1, false),
            (std::vector<std::pair<size_t, size_t>>{{0, 4}}));
  // Days before the epoch too.
  std::vector<Sample> neg = {{-2, 1}, {-1, 1}, {0, 1}};
  EXPECT_EQ(ChunkCuts(neg, 120, 0, true),
            (std::vector<std::pair<size_t, size_t>>{{0, 2}, {2, 3}}));
}

TEST(HeadTest, CheckSampleVerdicts) {
  Sample last{100, 1.0};
  EXPECT_EQ(CheckSample(false, last, {5, 0}), Verdict::kAccept);
  EXPECT_EQ(CheckSample(true, last, {101, 0}), Verdict::kAccept);
  EXPECT_EQ(CheckSample(true, last, {99, 1.0}), Verdict::kOutOfOrder);
  EXPECT_EQ(CheckSample(true, last, {100, 2.0}), Verdict::kDuplicate);
  EXPECT_EQ(CheckSample(true, last, {100, 1.0}), Verdict::kIgnore);
  Sample stale{100, StaleNaN()};
  EXPECT_EQ(CheckSample(true, stale, {100, StaleNaN()}), Verdict::kIgnore);
  EXPECT_EQ(CheckSample(true, stale, {100, std::numeric_limits<double>::quiet_NaN()}),
            Verdict::kDuplicate);
}

}  // namespace
}  // namespace tidemark::internal
