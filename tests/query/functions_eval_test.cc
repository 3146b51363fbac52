// Units of query/functions_eval.h and query/rate_functions.h that the .test scripts reach only
// indirectly: Go's template expansion, bucket and sample quantiles, compensated sums.
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "query/functions_eval.h"
#include "query/rate_functions.h"

namespace tidemark::promql::internal {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

MatchGroups Groups(std::vector<const char*> groups,
                   std::vector<std::pair<std::string, int>> names = {}) {
  MatchGroups m;
  for (const char* g : groups) {
    m.groups.push_back(g == nullptr ? std::string_view() : std::string_view(g));
    m.matched.push_back(g != nullptr);
  }
  m.names = std::move(names);
  return m;
}

TEST(ExpandTemplate, FollowsGoRegexpExpand) {
  MatchGroups m = Groups({"ab-12", "ab", "12", nullptr}, {{"word", 1}, {"num", 2}});
  EXPECT_EQ(ExpandTemplate("$1", m), "ab");
  EXPECT_EQ(ExpandTemplate("${2}x", m), "12x");
  EXPECT_EQ(ExpandTemplate("$2x", m), "");  // the group named "2x"
  EXPECT_EQ(ExpandTemplate("$word/$num", m), "ab/12");
  EXPECT_EQ(ExpandTemplate("${word}s", m), "abs");
  EXPECT_EQ(ExpandTemplate("$$1", m), "$1");
  EXPECT_EQ(ExpandTemplate("$0", m), "ab-12");
  EXPECT_EQ(ExpandTemplate("$01", m), "");  // leading zero: a name, not a number
  EXPECT_EQ(ExpandTemplate("$3|$9|$nope", m), "||");
  EXPECT_EQ(ExpandTemplate("a$", m), "a$");      // malformed: kept
  EXPECT_EQ(ExpandTemplate("${1", m), "${1");    // unclosed brace: kept
  EXPECT_EQ(ExpandTemplate("$-", m), "$-");
  EXPECT_EQ(ExpandTemplate("plain", m), "plain");
}

TEST(BucketQuantile, SpecialCases) {
  std::vector<Bucket> b = {{kInf, 10}, {1, 5}, {2, 8}};  // unsorted on purpose
  EXPECT_DOUBLE_EQ(BucketQuantile(0.5, b), 1);
  EXPECT_DOUBLE_EQ(BucketQuantile(0.65, b), 1.5);
  EXPECT_DOUBLE_EQ(BucketQuantile(0.9, b), 2);  // in the +Inf bucket
  EXPECT_TRUE(std::isnan(BucketQuantile(std::nan(""), b)));
  EXPECT_EQ(BucketQuantile(-0.5, b), -kInf);
  EXPECT_EQ(BucketQuantile(1.5, b), kInf);
  EXPECT_TRUE(std::isnan(BucketQuantile(0.5, {{1, 5}, {2, 8}})));
  EXPECT_TRUE(std::isnan(BucketQuantile(0.5, {{kInf, 3}})));
  EXPECT_TRUE(std::isnan(BucketQuantile(0.5, {{1, 0}, {kInf, 0}})));
  EXPECT_TRUE(std::isnan(BucketQuantile(0.5, {})));
  EXPECT_DOUBLE_EQ(BucketQuantile(0.1, {{-1, 5}, {kInf, 10}}), -1);
}

TEST(Quantile, InterpolatesAndSortsNaNFirst) {
  EXPECT_DOUBLE_EQ(Quantile(0.5, {4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(Quantile(0, {4, 1, 3, 2}), 1);
  EXPECT_DOUBLE_EQ(Quantile(1, {4, 1, 3, 2}), 4);
  EXPECT_TRUE(std::isnan(Quantile(0, {2, std::nan(""), 1})));
  EXPECT_DOUBLE_EQ(Quantile(1, {2, std::nan(""), 1}), 2);
  EXPECT_TRUE(std::isnan(Quantile(0.5, {})));
}

TEST(KahanSum, KeepsLowOrderBits) {
  std::vector<Sample> w = {{0, 1e100}, {1, 1}, {2, -1e100}};
  EXPECT_DOUBLE_EQ(SumOverTime(w), 1);
  std::vector<Sample> v = {{0, 1}, {1, 2}, {2, 3}, {3, 4}};
  EXPECT_DOUBLE_EQ(AvgOverTime(v), 2.5);
}

TEST(LinearRegression, ConstantSeriesHasZeroSlope) {
  std::vector<Sample> w = {{0, 0.1}, {1000, 0.1}, {2000, 0.1}};
  EXPECT_EQ(Deriv(w), 0.0);
  std::vector<Sample> line = {{0, 1}, {1000, 3}, {2000, 5}};
  EXPECT_DOUBLE_EQ(*Deriv(line), 2);
  EXPECT_DOUBLE_EQ(*PredictLinear(line, 2000, 10), 25);
}

}  // namespace
}  // namespace tidemark::promql::internal
