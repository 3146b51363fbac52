// The label pool keeps each label pair once, gives it back byte for byte, frees it with its last
// reference; series keep their labels as pool ids and still compare and rebuild them exactly.
#include "storage/label_pool.h"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "storage/head.h"
#include "storage/keys.h"
#include "storage/labels.h"

namespace tidemark {
namespace {

using internal::LabelPool;
using internal::LabelsArg;
using internal::LabelsHash;
using internal::DecodeLabelViews;
using internal::EncodeLabels;
using internal::MemSeries;

std::string Pair(std::string_view name, std::string_view value) {
  std::string out;
  EncodeLabels(Labels::FromViewsUnchecked(std::vector<LabelView>{{name, value}}), &out);
  return out;
}

TEST(LabelPoolTest, OnePairOneIdUntilTheLastReference) {
  LabelPool pool;
  const std::string a = Pair("pod", "api-7d9f-x2k4q");
  const std::string b = Pair("pod", "api-7d9f-x2k4r");
  const uint32_t ia = pool.Ref(a);
  const uint32_t ib = pool.Ref(b);
  EXPECT_NE(ia, ib);
  EXPECT_EQ(pool.Ref(a), ia);  // a second reference, same id
  EXPECT_EQ(pool.size(), 2);
  EXPECT_EQ(pool.Get(ia), a);
  EXPECT_EQ(pool.Get(ib), b);
  const int64_t bytes = pool.MemoryBytes();

  pool.Unref(ia);  // one reference left
  EXPECT_EQ(pool.size(), 2);
  EXPECT_EQ(pool.Get(ia), a);
  pool.Unref(ia);
  EXPECT_EQ(pool.size(), 1);
  EXPECT_LT(pool.MemoryBytes(), bytes);
  EXPECT_EQ(pool.Get(ib), b);

  // A new pair in the same shard takes the freed id, else a new one; either way it reads back.
  const std::string c = Pair("pod", "api-7d9f-zzzzz");
  const uint32_t ic = pool.Ref(c);
  EXPECT_EQ(pool.Get(ic), c);
  EXPECT_EQ(pool.Get(ib), b);
  EXPECT_EQ(pool.Ref(a), pool.Ref(a));  // `a` again: one pair, whatever id it gets
  EXPECT_EQ(pool.size(), 3);
}

TEST(LabelPoolTest, ConcurrentRefsAndUnrefsKeepEveryPairExact) {
  LabelPool pool;
  constexpr int kThreads = 4;
  constexpr int kPairs = 3000;
  std::vector<std::thread> threads;
  std::vector<int> errors(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        std::vector<uint32_t> ids;
        std::vector<std::string> pairs;
        for (int i = 0; i < kPairs; ++i) {
          // Half the pairs shared by every thread, half this thread's own.
          pairs.push_back(i % 2 == 0 ? Pair("le", std::to_string(i))
                                     : Pair("pod", std::to_string(t) + "-" + std::to_string(i)));
          ids.push_back(pool.Ref(pairs.back()));
        }
        for (int i = 0; i < kPairs; ++i) {
          if (pool.Get(ids[i]) != pairs[i]) ++errors[t];
        }
        for (uint32_t id : ids) pool.Unref(id);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int e : errors) EXPECT_EQ(e, 0);
  EXPECT_EQ(pool.size(), 0);
}

Labels PodLabels(std::string_view name, std::string_view pod) {
  return Labels::FromViewsUnchecked(std::vector<LabelView>{
      {"__name__", name}, {"job", "kubernetes-pods"}, {"namespace", "checkout"}, {"pod", pod}});
}

TEST(LabelPoolTest, SeriesSharePairsAndRebuildTheirLabels) {
  LabelPool& pool = LabelPool::Global();
  const int64_t before = pool.size();
  const Labels a = PodLabels("pool_test_requests_total", "pool-test-api-1");
  const Labels b = PodLabels("pool_test_errors_total", "pool-test-api-1");
  std::string bytes_a, bytes_b;
  EncodeLabels(a, &bytes_a);
  EncodeLabels(b, &bytes_b);
  {
    std::unique_ptr<MemSeries> sa = MemSeries::Make(bytes_a);
    std::unique_ptr<MemSeries> sb = MemSeries::Make(bytes_b);
    // 4 pairs for the first series, 1 more (its name) for the second: the rest are shared.
    EXPECT_EQ(pool.size(), before + 5);
    EXPECT_EQ(sa->LabelBytes(), bytes_a);
    EXPECT_EQ(sb->LabelBytes(), bytes_b);
    EXPECT_EQ(sa->labels(), a);
    EXPECT_EQ(sa->label_id_bytes(), 4 * sizeof(uint32_t));

    EXPECT_TRUE(sa->LabelsEqual(LabelsArg(&a)));
    EXPECT_FALSE(sa->LabelsEqual(LabelsArg(&b)));
    std::vector<LabelView> views;
    ASSERT_TRUE(DecodeLabelViews(bytes_b, &views));
    EXPECT_TRUE(sb->LabelsEqual(LabelsArg(std::span<const LabelView>(views))));
    EXPECT_FALSE(sa->LabelsEqual(LabelsArg(std::span<const LabelView>(views))));
    views.pop_back();  // a prefix of the labels is not the labels
    EXPECT_FALSE(sb->LabelsEqual(LabelsArg(std::span<const LabelView>(views))));
  }
  EXPECT_EQ(pool.size(), before);  // both series gone: their pairs too
}

TEST(LabelPoolTest, BytesThatAreNotWholeLabelsComeBackAsGiven) {
  std::string bytes;
  EncodeLabels(PodLabels("pool_test_truncated", "pool-test-api-2"), &bytes);
  bytes.push_back('\x05');  // a length with nothing after it
  bytes.append("ab");
  std::unique_ptr<MemSeries> s = MemSeries::Make(bytes);
  EXPECT_EQ(s->LabelBytes(), bytes);
}

// The head finds a series by LabelsHash and confirms it with LabelsEqual, both of which read
// short strings in pieces: every length class, and a change at every position, must show.
TEST(LabelPoolTest, HashAndCompareSeeEveryByteOfEveryLength) {
  std::set<uint64_t> hashes;
  size_t variants = 0;
  for (size_t n : {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 127, 128, 300}) {
    std::string value(n, 'x');
    for (size_t i = 0; i < n; ++i) value[i] = static_cast<char>('a' + i % 26);
    const Labels base = Labels::FromUnsorted({{"job", "api"}, {"v", value}});
    std::string bytes;
    EncodeLabels(base, &bytes);
    std::unique_ptr<MemSeries> s = MemSeries::Make(bytes);
    std::vector<LabelView> views;
    ASSERT_TRUE(DecodeLabelViews(bytes, &views));
    EXPECT_EQ(LabelsHash(base), LabelsHash(std::span<const LabelView>(views))) << n;
    EXPECT_TRUE(s->LabelsEqual(LabelsArg(&base))) << n;
    hashes.insert(LabelsHash(base));
    ++variants;
    for (size_t i = 0; i < n; ++i) {
      std::string changed = value;
      changed[i] ^= 1;
      const Labels other = Labels::FromUnsorted({{"job", "api"}, {"v", changed}});
      EXPECT_FALSE(s->LabelsEqual(LabelsArg(&other))) << n << " at " << i;
      hashes.insert(LabelsHash(other));
      ++variants;
    }
  }
  // The same bytes split differently between names and values are other label sets.
  const Labels ab_c = Labels::FromUnsorted({{"ab", "c"}});
  const Labels a_bc = Labels::FromUnsorted({{"a", "bc"}});
  hashes.insert(LabelsHash(ab_c));
  hashes.insert(LabelsHash(a_bc));
  variants += 2;
  EXPECT_EQ(hashes.size(), variants);  // no two of these ~800 label sets share a hash
}

}  // namespace
}  // namespace tidemark
