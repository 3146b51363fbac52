#include "storage/memory_querier.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>

namespace tidemark {
namespace {

// Iterates a shared, immutable sample vector.
class VectorIterator : public SampleIterator {
 public:
  explicit VectorIterator(std::shared_ptr<const std::vector<Sample>> samples)
      : samples_(std::move(samples)) {}

  bool Next() override {
    if (pos_ < size()) ++pos_;
    return pos_ < size();
  }

  bool Seek(int64_t t) override {
    if (pos_ < 0) pos_ = 0;
    while (pos_ < size() && (*samples_)[pos_].t < t) ++pos_;
    return pos_ < size();
  }

  Sample At() const override { return (*samples_)[pos_]; }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  std::shared_ptr<const std::vector<Sample>> samples_;
  int64_t size() const { return static_cast<int64_t>(samples_->size()); }

  int64_t pos_ = -1;  // -1: before the first sample
};

struct SnapshotSeries {
  Labels labels;
  std::shared_ptr<const std::vector<Sample>> samples;  // non-empty
};

bool MatchesAll(const Labels& labels, const std::vector<LabelMatcher>& matchers) {
  for (const LabelMatcher& m : matchers) {
    if (!m.Matches(labels.Get(m.name()))) return false;
  }
  return true;
}

class MemoryQuerier : public Querier {
 public:
  explicit MemoryQuerier(std::vector<SnapshotSeries> series) : series_(std::move(series)) {}

  absl::StatusOr<std::vector<Series>> Select(const std::vector<LabelMatcher>& matchers,
                                             const SelectHints& hints) override {
    bool has_non_empty = std::any_of(matchers.begin(), matchers.end(),
                                     [](const LabelMatcher& m) { return !m.MatchesEmpty(); });
    if (!has_non_empty) {
      return absl::InvalidArgumentError(
          "vector selector must contain at least one non-empty matcher");
    }
    std::vector<Series> out;
    for (const SnapshotSeries& s : series_) {
      if (!MatchesAll(s.labels, matchers)) continue;
      out.push_back(Series{s.labels, std::make_unique<VectorIterator>(s.samples), nullptr, 0});
    }
    return out;
  }

  absl::StatusOr<std::vector<std::string>> LabelNames(
      const std::vector<LabelMatcher>& matchers) override {
    std::set<std::string> names;
    for (const SnapshotSeries& s : series_) {
      if (!MatchesAll(s.labels, matchers)) continue;
      for (const Label& l : s.labels) names.insert(l.name);
    }
    return std::vector<std::string>(names.begin(), names.end());
  }

  absl::StatusOr<std::vector<std::string>> LabelValues(
      const std::string& name, const std::vector<LabelMatcher>& matchers) override {
    std::set<std::string> values;
    for (const SnapshotSeries& s : series_) {
      if (!MatchesAll(s.labels, matchers)) continue;
      std::string_view v = s.labels.Get(name);
      if (!v.empty()) values.insert(std::string(v));
    }
    return std::vector<std::string>(values.begin(), values.end());
  }

 private:
  std::vector<SnapshotSeries> series_;  // sorted by labels
};

}  // namespace

absl::Status MemoryStorage::Add(const Labels& labels, std::vector<Sample> samples) {
  if (labels.empty()) return absl::InvalidArgumentError("series without labels");
  absl::MutexLock lock(&mu_);
  std::vector<Sample>& dst = series_[labels];
  // Later samples win on equal timestamps: stable sort of old ++ new, keep the last of a run.
  dst.insert(dst.end(), samples.begin(), samples.end());
  std::stable_sort(dst.begin(), dst.end(),
                   [](const Sample& a, const Sample& b) { return a.t < b.t; });
  std::vector<Sample> merged;
  merged.reserve(dst.size());
  for (const Sample& s : dst) {
    if (!merged.empty() && merged.back().t == s.t) {
      merged.back() = s;
    } else {
      merged.push_back(s);
    }
  }
  dst = std::move(merged);
  return absl::OkStatus();
}

void MemoryStorage::Clear() {
  absl::MutexLock lock(&mu_);
  series_.clear();
}

absl::StatusOr<std::unique_ptr<Querier>> MemoryStorage::NewQuerier(int64_t mint_ms,
                                                                   int64_t maxt_ms) {
  std::vector<SnapshotSeries> snapshot;
  absl::MutexLock lock(&mu_);
  for (const auto& [labels, samples] : series_) {
    auto lo = std::lower_bound(samples.begin(), samples.end(), mint_ms,
                               [](const Sample& s, int64_t t) { return s.t < t; });
    auto hi = std::upper_bound(samples.begin(), samples.end(), maxt_ms,
                               [](int64_t t, const Sample& s) { return t < s.t; });
    if (lo >= hi) continue;
    snapshot.push_back(
        SnapshotSeries{labels, std::make_shared<const std::vector<Sample>>(lo, hi)});
  }
  return std::make_unique<MemoryQuerier>(std::move(snapshot));
}

}  // namespace tidemark
