// DBTest: a database in a fresh temporary directory per test, with helpers to append, query
// and crash it. Shared by the storage tests of DB behaviour.
#ifndef TIDEMARK_TESTS_STORAGE_DB_TEST_FIXTURE_H_
#define TIDEMARK_TESTS_STORAGE_DB_TEST_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "storage/db.h"
#include "storage/db_impl.h"

namespace tidemark {

constexpr int64_t kDay = 24LL * 3600 * 1000;

class DBTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tidemark_db_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    options_.path = dir_.string();
    options_.max_samples_per_chunk = 10;
    // Tests count chunks and head samples: every chunk holds 10 (SeriesStartedTogether...
    // tests the stagger).
    options_.stagger_first_chunks = false;
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
  void Crash() {
    static_cast<internal::DBImpl*>(db_.get())->SimulateCrashForTesting();
    db_.reset();
  }

  absl::Status AppendAll(std::string_view tenant, const Labels& l,
                         const std::vector<Sample>& samples) {
    auto app = db_->NewAppender(tenant);
    for (const Sample& s : samples) {
      absl::Status st = app->Append(l, s.t, s.v);
      if (!st.ok()) return st;
    }
    return app->Commit();
  }

  // Series (by ToString) -> samples, for matchers over [mint, maxt].
  std::map<std::string, std::vector<Sample>> Query(std::string_view tenant,
                                                   const std::vector<LabelMatcher>& matchers,
                                                   int64_t mint = std::numeric_limits<int64_t>::min(),
                                                   int64_t maxt = std::numeric_limits<int64_t>::max()) {
    std::map<std::string, std::vector<Sample>> out;
    auto q = db_->NewQuerier(tenant, mint, maxt);
    EXPECT_TRUE(q.ok()) << q.status();
    if (!q.ok()) return out;
    auto series = (*q)->Select(matchers, SelectHints{mint, maxt});
    EXPECT_TRUE(series.ok()) << series.status();
    if (!series.ok()) return out;
    for (Series& s : *series) {
      auto& v = out[s.labels.ToString()];
      while (s.samples->Next()) v.push_back(s.samples->At());
      EXPECT_TRUE(s.samples->status().ok()) << s.samples->status();
    }
    return out;
  }

  static LabelMatcher M(MatchType type, std::string name, std::string value) {
    auto m = LabelMatcher::Create(type, std::move(name), std::move(value));
    EXPECT_TRUE(m.ok()) << m.status();
    return *std::move(m);
  }
  static LabelMatcher Name(std::string name) {
    return M(MatchType::kEqual, std::string(kMetricNameLabel), std::move(name));
  }

  static std::vector<Sample> Range(int64_t from, int64_t to, int64_t step) {
    std::vector<Sample> s;
    for (int64_t t = from; t <= to; t += step) s.push_back({t, static_cast<double>(t) / 7});
    return s;
  }

  std::filesystem::path dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

}  // namespace tidemark

#endif  // TIDEMARK_TESTS_STORAGE_DB_TEST_FIXTURE_H_
