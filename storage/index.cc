#include "storage/index.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "storage/keys.h"
#include "storage/rocks_util.h"

namespace tidemark::internal {
namespace {

// Calls fn(day) for each day in [DayOf(mint), DayOf(maxt)] that has postings for `tenant`,
// skipping empty days with one seek each.
template <typename Fn>
absl::Status ForEachDay(rocksdb::Iterator* it, uint32_t tenant, int64_t mint, int64_t maxt,
                        Fn fn) {
  if (mint > maxt) return absl::OkStatus();
  int64_t day = DayOf(mint);
  const int64_t last = DayOf(maxt);
  std::string tenant_prefix;
  PutU32BE(&tenant_prefix, tenant);
  while (day <= last) {
    it->Seek(PostingsDayPrefix(tenant, static_cast<int32_t>(day)));
    if (!it->Valid() || !StartsWith(it->key(), tenant_prefix) || it->key().size() < 8) break;
    int32_t found = GetI32Ordered(View(it->key()).substr(4));
    if (found > last) break;
    absl::Status s = fn(found);
    if (!s.ok()) return s;
    day = static_cast<int64_t>(found) + 1;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scan postings");
  return absl::OkStatus();
}

// Sorted ids of the postings of one matcher on one day.
std::vector<uint64_t> MatcherPostings(rocksdb::Iterator* it, uint32_t tenant, int32_t day,
                                      const LabelMatcher& m) {
  std::vector<uint64_t> ids;
  if (m.type() == MatchType::kEqual) {
    std::string prefix = PostingsValuePrefix(tenant, day, m.name(), m.value());
    for (it->Seek(prefix); it->Valid() && StartsWith(it->key(), prefix); it->Next()) {
      if (it->key().size() != prefix.size() + 8) continue;  // a longer value with a \0 in it
      ids.push_back(GetU64BE(View(it->key()).substr(prefix.size())));
    }
    return ids;  // keys are ordered by id within one value
  }
  std::string prefix = PostingsNamePrefix(tenant, day, m.name());
  std::string last_value;
  bool last_match = false, have_last = false;
  for (it->Seek(prefix); it->Valid() && StartsWith(it->key(), prefix); it->Next()) {
    ParsedPosting p;
    if (!ParsePostingKey(View(it->key()), &p)) continue;
    if (!have_last || p.value != last_value) {
      last_value = std::string(p.value);
      last_match = m.Matches(p.value);
      have_last = true;
    }
    if (last_match) ids.push_back(p.series_id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace

absl::StatusOr<std::vector<uint64_t>> SelectPostings(const PostingsSource& src, uint32_t tenant,
                                                     int64_t mint, int64_t maxt,
                                                     const std::vector<LabelMatcher>& matchers) {
  std::vector<const LabelMatcher*> selective;
  for (const LabelMatcher& m : matchers) {
    if (!m.MatchesEmpty()) selective.push_back(&m);
  }
  if (selective.empty()) {
    return absl::InvalidArgumentError(
        "vector selector must contain at least one non-empty matcher");
  }
  // Equality matchers first: they are the cheapest and usually the most selective.
  std::stable_sort(selective.begin(), selective.end(), [](const auto* a, const auto* b) {
    return (a->type() == MatchType::kEqual) > (b->type() == MatchType::kEqual);
  });
  std::unique_ptr<rocksdb::Iterator> it(src.db->NewIterator(rocksdb::ReadOptions(), src.cf));
  std::unique_ptr<rocksdb::Iterator> day_it(src.db->NewIterator(rocksdb::ReadOptions(), src.cf));
  std::vector<uint64_t> result;
  absl::Status s = ForEachDay(day_it.get(), tenant, mint, maxt, [&](int32_t day) {
    std::vector<uint64_t> ids = MatcherPostings(it.get(), tenant, day, *selective[0]);
    for (size_t i = 1; i < selective.size() && !ids.empty(); ++i) {
      std::vector<uint64_t> other = MatcherPostings(it.get(), tenant, day, *selective[i]);
      std::vector<uint64_t> both;
      std::set_intersection(ids.begin(), ids.end(), other.begin(), other.end(),
                            std::back_inserter(both));
      ids = std::move(both);
    }
    result.insert(result.end(), ids.begin(), ids.end());
    if (!it->status().ok()) return FromRocks(it->status(), "scan postings");
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(result.begin(), result.end());
  result.erase(std::unique(result.begin(), result.end()), result.end());
  return result;
}

absl::StatusOr<std::vector<std::string>> PostingNames(const PostingsSource& src, uint32_t tenant,
                                                      int64_t mint, int64_t maxt) {
  std::unique_ptr<rocksdb::Iterator> it(src.db->NewIterator(rocksdb::ReadOptions(), src.cf));
  std::unique_ptr<rocksdb::Iterator> day_it(src.db->NewIterator(rocksdb::ReadOptions(), src.cf));
  std::vector<std::string> names;
  absl::Status s = ForEachDay(day_it.get(), tenant, mint, maxt, [&](int32_t day) {
    std::string prefix = PostingsDayPrefix(tenant, day);
    it->Seek(prefix);
    while (it->Valid() && StartsWith(it->key(), prefix)) {
      ParsedPosting p;
      if (!ParsePostingKey(View(it->key()), &p)) {
        it->Next();
        continue;
      }
      names.emplace_back(p.name);
      // Names hold no \0, so name \1 sorts after every key of this name.
      std::string next = prefix;
      next.append(p.name);
      next.push_back('\1');
      it->Seek(next);
    }
    if (!it->status().ok()) return FromRocks(it->status(), "scan postings");
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

absl::StatusOr<std::vector<std::string>> PostingValues(const PostingsSource& src, uint32_t tenant,
                                                       int64_t mint, int64_t maxt,
                                                       const std::string& name) {
  std::unique_ptr<rocksdb::Iterator> it(src.db->NewIterator(rocksdb::ReadOptions(), src.cf));
  std::unique_ptr<rocksdb::Iterator> day_it(src.db->NewIterator(rocksdb::ReadOptions(), src.cf));
  std::vector<std::string> values;
  absl::Status s = ForEachDay(day_it.get(), tenant, mint, maxt, [&](int32_t day) {
    std::string prefix = PostingsNamePrefix(tenant, day, name);
    for (it->Seek(prefix); it->Valid() && StartsWith(it->key(), prefix); it->Next()) {
      ParsedPosting p;
      if (!ParsePostingKey(View(it->key()), &p)) continue;
      if (values.empty() || values.back() != p.value) values.emplace_back(p.value);
    }
    if (!it->status().ok()) return FromRocks(it->status(), "scan postings");
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return values;
}

}  // namespace tidemark::internal
