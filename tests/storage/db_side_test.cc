// Metadata, exemplars and ingest state of DB (storage/db_side.cc).
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "rocksdb/db.h"
#include "storage/db.h"
#include "storage/keys.h"

namespace tidemark {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

class DBSideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tidemark_db_side_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    options_.path = dir_.string();
    options_.retention_ms = 0;
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  void OpenDB() {
    db_.reset();
    auto db = DB::Open(options_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
  }
  void Reopen() {
    ASSERT_TRUE(db_->Close().ok());
    OpenDB();
  }

  static LabelMatcher M(MatchType type, std::string name, std::string value) {
    auto m = LabelMatcher::Create(type, std::move(name), std::move(value));
    EXPECT_TRUE(m.ok()) << m.status();
    return *std::move(m);
  }

  static Exemplar Ex(std::string trace, double v, int64_t t) {
    return Exemplar{Labels::FromUnsorted({{"trace_id", trace}}), v, t};
  }

  // "series|trace@t=v" for every exemplar the query returns, in order.
  std::vector<std::string> Exemplars(std::string_view tenant,
                                     const std::vector<std::vector<LabelMatcher>>& sel,
                                     int64_t mint = kMin, int64_t maxt = kMax) {
    std::vector<std::string> out;
    auto r = db_->QueryExemplars(tenant, sel, mint, maxt);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return out;
    for (const SeriesExemplars& se : *r) {
      EXPECT_FALSE(se.exemplars.empty());
      for (const Exemplar& e : se.exemplars) {
        out.push_back(std::string(se.series.Get("job")) + "|" +
                      std::string(e.labels.Get("trace_id")) + "@" + std::to_string(e.t_ms) +
                      "=" + std::to_string(static_cast<int64_t>(e.value)));
      }
    }
    return out;
  }

  std::filesystem::path dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

const Labels kA = Labels::FromUnsorted({{"__name__", "req_seconds_bucket"}, {"job", "a"}});
const Labels kB = Labels::FromUnsorted({{"__name__", "req_seconds_bucket"}, {"job", "b"}});
const Labels kC = Labels::FromUnsorted({{"__name__", "other_total"}, {"job", "c"}});

TEST_F(DBSideTest, MetadataPutGetReplaceAndPersist) {
  OpenDB();
  auto empty = db_->GetMetadata("t1", "", 0);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(db_->PutMetadata("t1", "http_requests_total", {"counter", "Requests.", ""}).ok());
  ASSERT_TRUE(db_->PutMetadata("t1", "mem_bytes", {"gauge", "Memory.", "bytes"}).ok());
  ASSERT_TRUE(db_->PutMetadata("t1", "a_first", {"summary", "A.", ""}).ok());
  ASSERT_TRUE(db_->PutMetadata("t2", "mem_bytes", {"gauge", "Other tenant.", ""}).ok());
  // Replace.
  ASSERT_TRUE(db_->PutMetadata("t1", "mem_bytes", {"gauge", "Resident memory.", "bytes"}).ok());

  auto all = db_->GetMetadata("t1", "", 0);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].first, "a_first");
  EXPECT_EQ((*all)[1].first, "http_requests_total");
  EXPECT_EQ((*all)[1].second, (MetricMetadata{"counter", "Requests.", ""}));
  EXPECT_EQ((*all)[2].first, "mem_bytes");
  EXPECT_EQ((*all)[2].second, (MetricMetadata{"gauge", "Resident memory.", "bytes"}));

  auto limited = db_->GetMetadata("t1", "", 2);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->size(), 2u);
  EXPECT_EQ((*limited)[1].first, "http_requests_total");

  auto one = db_->GetMetadata("t2", "mem_bytes", 0);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].second.help, "Other tenant.");
  auto missing = db_->GetMetadata("t2", "http_requests_total", 0);
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->empty());

  EXPECT_FALSE(db_->PutMetadata("t1", "", {"gauge", "", ""}).ok());

  Reopen();
  auto again = db_->GetMetadata("t1", "mem_bytes", 0);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].second, (MetricMetadata{"gauge", "Resident memory.", "bytes"}));
}

TEST_F(DBSideTest, MetadataOnlyTenantCoexistsWithSamples) {
  OpenDB();
  // The tenant is created by metadata first, then receives samples: one tenant, not two.
  ASSERT_TRUE(db_->PutMetadata("t1", "up", {"gauge", "", ""}).ok());
  auto app = db_->NewAppender("t1");
  ASSERT_TRUE(app->Append(kA, 1000, 1).ok());
  ASSERT_TRUE(app->Commit().ok());
  EXPECT_EQ(db_->GetStats().tenants, 1);
  Reopen();
  auto md = db_->GetMetadata("t1", "up", 0);
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(md->size(), 1u);
  auto q = db_->NewQuerier("t1", 0, 2000);
  ASSERT_TRUE(q.ok());
  auto series = (*q)->Select({M(MatchType::kEqual, "job", "a")}, SelectHints{0, 2000});
  ASSERT_TRUE(series.ok());
  EXPECT_EQ(series->size(), 1u);
}

TEST_F(DBSideTest, StatePutGetDeleteAndPersist) {
  OpenDB();
  auto none = db_->GetState("t1", "otlp/delta/x");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  ASSERT_TRUE(db_->PutState("t1", "otlp/delta/x", std::string("v\0x", 3)).ok());
  ASSERT_TRUE(db_->PutState("t2", "otlp/delta/x", "other").ok());
  Reopen();
  auto got = db_->GetState("t1", "otlp/delta/x");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, std::string("v\0x", 3));
  auto other = db_->GetState("t2", "otlp/delta/x");
  ASSERT_TRUE(other.ok() && other->has_value());
  EXPECT_EQ(**other, "other");

  ASSERT_TRUE(db_->PutState("t1", "otlp/delta/x", "").ok());  // deletes
  auto gone = db_->GetState("t1", "otlp/delta/x");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  auto kept = db_->GetState("t2", "otlp/delta/x");
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE(kept->has_value());
}

TEST_F(DBSideTest, ExemplarsQueryBySelectorAndTime) {
  OpenDB();
  std::vector<Exemplar> a = {Ex("a1", 1, 1000), Ex("a2", 2, 2000), Ex("a3", 3, 3000)};
  std::vector<Exemplar> b = {Ex("b1", 10, 1500)};
  std::vector<Exemplar> c = {Ex("c1", 20, 2500)};
  ASSERT_TRUE(db_->AppendExemplars("t1", kB, b).ok());
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, a).ok());
  ASSERT_TRUE(db_->AppendExemplars("t1", kC, c).ok());
  ASSERT_TRUE(db_->AppendExemplars("t2", kA, std::vector<Exemplar>{Ex("x", 9, 1000)}).ok());

  using V = std::vector<std::string>;
  auto name = M(MatchType::kEqual, "__name__", "req_seconds_bucket");
  EXPECT_EQ(Exemplars("t1", {{name}}),
            (V{"a|a1@1000=1", "a|a2@2000=2", "a|a3@3000=3", "b|b1@1500=10"}));
  EXPECT_EQ(Exemplars("t1", {{name}}, 1500, 2000), (V{"a|a2@2000=2", "b|b1@1500=10"}));
  EXPECT_EQ(Exemplars("t1", {{name, M(MatchType::kNotEqual, "job", "a")}}),
            (V{"b|b1@1500=10"}));
  // Any one selector matching is enough; output sorted by series labels (other_total first).
  EXPECT_EQ(Exemplars("t1", {{M(MatchType::kEqual, "job", "c")},
                             {M(MatchType::kRegexMatch, "job", "b|zz")}}),
            (V{"c|c1@2500=20", "b|b1@1500=10"}));
  EXPECT_EQ(Exemplars("t2", {{name}}), (V{"a|x@1000=9"}));
  EXPECT_TRUE(Exemplars("nobody", {{name}}).empty());
  EXPECT_TRUE(Exemplars("t1", {{name}}, 3001, 5000).empty());

  Reopen();
  EXPECT_EQ(Exemplars("t1", {{name}}, 2000, 2000), (V{"a|a2@2000=2"}));
}

TEST_F(DBSideTest, IdenticalExemplarsAreIgnored) {
  options_.max_exemplars_per_tenant = 3;
  OpenDB();
  std::vector<Exemplar> batch = {Ex("a1", 1, 1000), Ex("a2", 2, 2000), Ex("a1", 1, 1000)};
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, batch).ok());
  // A retry of the same request: nothing new, so nothing evicted either.
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, batch).ok());
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, batch).ok());
  // Same time, different trace or value: distinct exemplars.
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex("a9", 1, 1000)}).ok());
  using V = std::vector<std::string>;
  EXPECT_EQ(Exemplars("t1", {{M(MatchType::kEqual, "job", "a")}}),
            (V{"a|a1@1000=1", "a|a9@1000=1", "a|a2@2000=2"}));
}

TEST_F(DBSideTest, ExemplarStoreIsBoundedPerTenantOldestFirst) {
  options_.max_exemplars_per_tenant = 4;
  OpenDB();
  auto any = M(MatchType::kRegexMatch, "job", ".+");
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex("1", 1, 100), Ex("2", 2, 200)}).ok());
  ASSERT_TRUE(db_->AppendExemplars("t1", kB, std::vector<Exemplar>{Ex("3", 3, 50)}).ok());
  ASSERT_TRUE(db_->AppendExemplars("t2", kB, std::vector<Exemplar>{Ex("other", 7, 1)}).ok());
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex("4", 4, 400), Ex("5", 5, 500)}).ok());
  using V = std::vector<std::string>;
  // "1" (the oldest inserted) is gone; t2 is untouched by t1's cap.
  EXPECT_EQ(Exemplars("t1", {{any}}), (V{"a|2@200=2", "a|4@400=4", "a|5@500=5", "b|3@50=3"}));
  EXPECT_EQ(Exemplars("t2", {{any}}), (V{"b|other@1=7"}));

  // The ring survives a restart: the next insert evicts "2".
  Reopen();
  ASSERT_TRUE(db_->AppendExemplars("t1", kC, std::vector<Exemplar>{Ex("6", 6, 600)}).ok());
  EXPECT_EQ(Exemplars("t1", {{any}}), (V{"c|6@600=6", "a|4@400=4", "a|5@500=5", "b|3@50=3"}));

  // One call bigger than the cap keeps its newest.
  std::vector<Exemplar> many;
  for (int i = 0; i < 6; ++i) many.push_back(Ex("m" + std::to_string(i), i, 1000 + i));
  ASSERT_TRUE(db_->AppendExemplars("t1", kB, many).ok());
  EXPECT_EQ(Exemplars("t1", {{any}}),
            (V{"b|m2@1002=2", "b|m3@1003=3", "b|m4@1004=4", "b|m5@1005=5"}));

  // Every index key has exactly one ring entry: count raw keys of the column family.
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfds;
  for (const char* n : {"default", "meta", "series", "postings", "chunks", "wal", "exemplars",
                        "metadata", "state"}) {
    cfds.emplace_back(n, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  ASSERT_TRUE(
      rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir_.string(), cfds, &handles, &raw)
          .ok());
  std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions(), handles[6]));
  int keys = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++keys;
  EXPECT_EQ(keys, 2 * (4 + 1));  // t1: 4 exemplars, t2: 1; an index and a ring key each
  it.reset();
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
}

TEST_F(DBSideTest, RetentionDropsExemplarsBeforeTheCutoff) {
  options_.max_exemplars_per_tenant = 5;
  OpenDB();
  auto any = M(MatchType::kRegexMatch, "job", ".+");
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex("1", 1, 100), Ex("2", 2, 200),
                                                                    Ex("3", 3, 300)}).ok());
  ASSERT_TRUE(db_->AppendExemplars("t1", kB, std::vector<Exemplar>{Ex("4", 4, 150)}).ok());
  ASSERT_TRUE(db_->AppendExemplars("t2", kC, std::vector<Exemplar>{Ex("5", 5, 100),
                                                                    Ex("6", 6, 250)}).ok());
  ASSERT_TRUE(db_->DeleteBefore(200).ok());
  using V = std::vector<std::string>;
  // Strictly older than the cutoff goes, in every tenant and series; kB has none left.
  EXPECT_EQ(Exemplars("t1", {{any}}), (V{"a|2@200=2", "a|3@300=3"}));
  EXPECT_EQ(Exemplars("t2", {{any}}), (V{"c|6@250=6"}));

  // The ring stays consistent: it keeps what remains of the newest 5 arrivals (sequence numbers
  // 1..4 were used, 1 and 4 are gone). 7, 8, 9 take 5..7, so 2 falls out of the window.
  ASSERT_TRUE(db_->AppendExemplars("t1", kC, std::vector<Exemplar>{Ex("7", 7, 700), Ex("8", 8, 800),
                                                                    Ex("9", 9, 900)}).ok());
  EXPECT_EQ(Exemplars("t1", {{any}}), (V{"c|7@700=7", "c|8@800=8", "c|9@900=9", "a|3@300=3"}));
  ASSERT_TRUE(db_->AppendExemplars("t1", kB, std::vector<Exemplar>{Ex("10", 10, 1000)}).ok());
  EXPECT_EQ(Exemplars("t1", {{any}}), (V{"c|7@700=7", "c|8@800=8", "c|9@900=9", "b|10@1000=10"}));
  // And across a restart (the ring bounds are read back from the remaining keys).
  Reopen();
  ASSERT_TRUE(db_->DeleteBefore(800).ok());
  EXPECT_EQ(Exemplars("t1", {{any}}), (V{"c|8@800=8", "c|9@900=9", "b|10@1000=10"}));
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex("11", 11, 1100)}).ok());
  EXPECT_EQ(Exemplars("t1", {{any}}),
            (V{"c|8@800=8", "c|9@900=9", "a|11@1100=11", "b|10@1000=10"}));
}

TEST_F(DBSideTest, ExemplarValidation) {
  OpenDB();
  EXPECT_EQ(db_->AppendExemplars("t1", Labels(), std::vector<Exemplar>{Ex("x", 1, 1)}).code(),
            absl::StatusCode::kInvalidArgument);
  std::string long_trace(130, 'f');
  EXPECT_EQ(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex(long_trace, 1, 1)}).code(),
            absl::StatusCode::kInvalidArgument);
  Exemplar bad{Labels::FromSortedUnchecked({{"b", "1"}, {"a", "2"}}), 1, 1};
  EXPECT_EQ(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{bad}).code(),
            absl::StatusCode::kInvalidArgument);
  // Exemplars without labels are fine.
  EXPECT_TRUE(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Exemplar{{}, 5, 7}}).ok());
  EXPECT_EQ(Exemplars("t1", {{M(MatchType::kEqual, "job", "a")}}).size(), 1u);
}

TEST_F(DBSideTest, ReadOnlyReadsSideDataAndRefusesWrites) {
  OpenDB();
  ASSERT_TRUE(db_->PutMetadata("t1", "up", {"gauge", "Up.", ""}).ok());
  ASSERT_TRUE(db_->PutState("t1", "k", "v").ok());
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex("a", 1, 1)}).ok());
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  options_.read_only = true;
  OpenDB();
  auto md = db_->GetMetadata("t1", "", 0);
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_EQ(md->size(), 1u);
  auto st = db_->GetState("t1", "k");
  ASSERT_TRUE(st.ok() && st->has_value());
  EXPECT_EQ(**st, "v");
  EXPECT_EQ(Exemplars("t1", {{M(MatchType::kEqual, "job", "a")}}).size(), 1u);
  EXPECT_EQ(db_->PutMetadata("t1", "up", {"gauge", "", ""}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(db_->PutState("t1", "k", "w").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex("b", 1, 2)}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(DBSideTest, DirectoryWithoutSideColumnFamilies) {
  // A directory written before the side column families existed: drop them from a new one.
  OpenDB();
  auto app = db_->NewAppender("t1");
  ASSERT_TRUE(app->Append(kA, 1000, 1).ok());
  ASSERT_TRUE(app->Commit().ok());
  ASSERT_TRUE(db_->Close().ok());
  db_.reset();
  {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfds;
    for (const char* n : {"default", "meta", "series", "postings", "chunks", "wal",
                          "exemplars", "metadata", "state"}) {
      cfds.emplace_back(n, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir_.string(), cfds, &handles, &raw).ok());
    for (int i = 6; i < 9; ++i) ASSERT_TRUE(raw->DropColumnFamily(handles[i]).ok());
    for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
    delete raw;
  }
  options_.read_only = true;
  OpenDB();  // read-only opens what is there
  auto md = db_->GetMetadata("t1", "", 0);
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_TRUE(md->empty());
  auto st = db_->GetState("t1", "k");
  ASSERT_TRUE(st.ok());
  EXPECT_FALSE(st->has_value());
  EXPECT_TRUE(Exemplars("t1", {{M(MatchType::kEqual, "job", "a")}}).empty());
  db_.reset();

  options_.read_only = false;
  OpenDB();  // read-write creates them
  ASSERT_TRUE(db_->PutMetadata("t1", "up", {"gauge", "", ""}).ok());
  ASSERT_TRUE(db_->AppendExemplars("t1", kA, std::vector<Exemplar>{Ex("a", 1, 1)}).ok());
  EXPECT_EQ(Exemplars("t1", {{M(MatchType::kEqual, "job", "a")}}).size(), 1u);
}

TEST_F(DBSideTest, ResentOlderSamplesAreIgnoredOnlyWhenIdentical) {
  options_.max_samples_per_chunk = 4;  // seal some of them
  OpenDB();
  auto append = [&](const std::vector<Sample>& samples) {
    auto app = db_->NewAppender("t1");
    for (const Sample& s : samples) {
      absl::Status st = app->Append(kA, s.t, s.v);
      if (!st.ok()) return st;
    }
    return app->Commit();
  };
  std::vector<Sample> request;
  for (int i = 1; i <= 10; ++i) request.push_back({i * 1000, i * 1.5});
  ASSERT_TRUE(append(request).ok());
  // The same request again (a retry): sealed and head samples alike are ignored.
  ASSERT_TRUE(append(request).ok());
  ASSERT_TRUE(db_->Compact().ok());
  ASSERT_TRUE(append(request).ok());
  // A retry that also carries a new sample adds it.
  request.push_back({11000, 7});
  ASSERT_TRUE(append(request).ok());
  // A different value at an old timestamp, or a timestamp never stored, is still out of order.
  EXPECT_EQ(RejectReasonOf(append({{2000, 99}})), RejectReason::kOutOfOrder);
  EXPECT_EQ(RejectReasonOf(append({{2500, 3}})), RejectReason::kOutOfOrder);
  Reopen();
  ASSERT_TRUE(append(request).ok());
  auto q = db_->NewQuerier("t1", kMin, kMax);
  ASSERT_TRUE(q.ok());
  auto series = (*q)->Select({M(MatchType::kEqual, "job", "a")}, SelectHints{kMin, kMax});
  ASSERT_TRUE(series.ok());
  ASSERT_EQ(series->size(), 1u);
  std::vector<Sample> got;
  while ((*series)[0].samples->Next()) got.push_back((*series)[0].samples->At());
  EXPECT_EQ(got, request);
}

}  // namespace
}  // namespace tidemark
