#include "storage/labels.h"

#include <gtest/gtest.h>

#include "storage/matcher.h"

namespace tidemark {
namespace {

TEST(LabelsTest, FromUnsortedSortsDropsEmptyAndKeepsLastDuplicate) {
  Labels l = Labels::FromUnsorted({{"b", "2"}, {"a", "1"}, {"c", ""}, {"b", "3"}});
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l.items()[0].name, "a");
  EXPECT_EQ(l.Get("b"), "3");
  EXPECT_FALSE(l.Has("c"));
}

TEST(LabelsTest, ValidateNamesTheProblem) {
  EXPECT_TRUE(Labels::Validate({{"__name__", "up"}, {"job", "x"}}).ok());
  auto unsorted = Labels::Validate({{"job", "x"}, {"__name__", "up"}});
  EXPECT_NE(unsorted.message().find("not sorted"), std::string::npos) << unsorted;
  auto dup = Labels::Validate({{"a", "1"}, {"a", "2"}});
  EXPECT_NE(dup.message().find("duplicate"), std::string::npos) << dup;
  auto empty = Labels::Validate({{"a", ""}});
  EXPECT_NE(empty.message().find("empty value"), std::string::npos) << empty;
  EXPECT_FALSE(Labels::Validate({{"__name__", "1up"}}).ok());
  EXPECT_FALSE(Labels::Validate({{"a-b", "1"}}).ok());
  EXPECT_FALSE(Labels::Validate({{"a", "\xff"}}).ok());
  EXPECT_FALSE(Labels::Validate({{"a", "\xe2\x82"}}).ok());  // truncated sequence
  EXPECT_TRUE(Labels::Validate({{"a", "\xe2\x82\xac"}}).ok());  // euro sign
}

TEST(LabelsTest, WithWithoutFilter) {
  Labels l = Labels::FromUnsorted({{"__name__", "m"}, {"job", "j"}, {"a", "1"}});
  EXPECT_EQ(l.With("b", "2").Get("b"), "2");
  EXPECT_EQ(l.With("job", "k").Get("job"), "k");
  EXPECT_EQ(l.With("job", "").size(), 2u);
  EXPECT_EQ(l.Without("__name__").MetricName(), "");
  EXPECT_EQ(l.Filter({"job"}, true).size(), 1u);
  EXPECT_EQ(l.Filter({"job"}, false).size(), 2u);
}

TEST(LabelsTest, ToStringAsPrometheus) {
  EXPECT_EQ(Labels::FromUnsorted({{"__name__", "up"}}).ToString(), "up");
  EXPECT_EQ(Labels::FromUnsorted({{"__name__", "up"}, {"b", "x\"y"}, {"a", "1"}}).ToString(),
            "up{a=\"1\", b=\"x\\\"y\"}");
  EXPECT_EQ(Labels::FromUnsorted({{"a", "1"}}).ToString(), "{a=\"1\"}");
}

TEST(LabelsTest, HashDependsOnEveryByteAndBoundary) {
  Labels a = Labels::FromUnsorted({{"a", "bc"}});
  Labels b = Labels::FromUnsorted({{"ab", "c"}});
  EXPECT_NE(a.Hash(), b.Hash());
  EXPECT_EQ(a.Hash(), Labels::FromUnsorted({{"a", "bc"}}).Hash());
}

TEST(MatcherTest, RegexIsAnchored) {
  auto m = LabelMatcher::Create(MatchType::kRegexMatch, "job", "api|web");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->Matches("api"));
  EXPECT_FALSE(m->Matches("xapi"));
  EXPECT_FALSE(m->Matches("apix"));
  EXPECT_FALSE(m->MatchesEmpty());
  auto n = LabelMatcher::Create(MatchType::kRegexNoMatch, "job", "a.*");
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->Matches(""));
  EXPECT_FALSE(n->Matches("abc"));
  EXPECT_FALSE(LabelMatcher::Create(MatchType::kRegexMatch, "job", "(").ok());
  auto ne = LabelMatcher::Create(MatchType::kNotEqual, "job", "");
  ASSERT_TRUE(ne.ok());
  EXPECT_FALSE(ne->MatchesEmpty());
}

}  // namespace
}  // namespace tidemark
