// DBImpl's read path: queriers over sealed chunks and the head.
#include <algorithm>
#include <deque>
#include <span>
#include <functional>
#include <limits>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "storage/chunk.h"
#include "storage/db_impl.h"
#include "storage/index.h"
#include "storage/keys.h"
#include "storage/rocks_util.h"

namespace tidemark::internal {
namespace {

// One series' samples in [mint, maxt]: its sealed chunks, then its head samples newer than the
// last sealed one (a seal between copying the head and reading the chunks shows a sample in
// both; it is returned once). A query selects many series before it reads them one at a time,
// so an iterator not being read stays small: the chunks' bytes in one buffer, and the decoder
// only while a chunk is read.
class SeriesIterator : public SampleIterator {
 public:
  SeriesIterator(std::string chunk_bytes, std::vector<uint32_t> chunk_ends,
                 std::vector<Sample> head, int64_t mint, int64_t maxt)
      : chunk_bytes_(std::move(chunk_bytes)),
        chunk_ends_(std::move(chunk_ends)),
        head_(std::move(head)),
        mint_(mint),
        maxt_(maxt) {}

  bool Next() override {
    while (NextRaw()) {
      if (cur_.t < mint_) continue;
      if (cur_.t > maxt_) break;
      valid_ = true;
      return true;
    }
    valid_ = false;
    done_ = true;
    return false;
  }

  bool Seek(int64_t t) override {
    if (valid_ && cur_.t >= t) return true;
    if (done_) return false;
    while (Next()) {
      if (cur_.t >= t) return true;
    }
    return false;
  }

  Sample At() const override { return cur_; }
  absl::Status status() const override { return status_; }

 private:
  bool NextRaw() {
    while (chunk_ < chunk_ends_.size()) {
      if (it_ == nullptr) {
        const uint32_t begin = chunk_ == 0 ? 0 : chunk_ends_[chunk_ - 1];
        it_ = std::make_unique<ChunkIterator>(
            std::string_view(chunk_bytes_).substr(begin, chunk_ends_[chunk_] - begin));
      }
      if (it_->Next()) {
        Sample s = it_->At();
        if (started_ && s.t <= cur_.t) continue;
        cur_ = s;
        started_ = true;
        return true;
      }
      if (!it_->status().ok()) {
        status_ = it_->status();
        chunk_ = chunk_ends_.size();
        head_pos_ = head_.size();
        return false;
      }
      ++chunk_;
      it_.reset();
    }
    while (head_pos_ < head_.size()) {
      Sample s = head_[head_pos_++];
      if (started_ && s.t <= cur_.t) continue;
      cur_ = s;
      started_ = true;
      return true;
    }
    return false;
  }

  const std::string chunk_bytes_;        // the chunks, one after the other
  const std::vector<uint32_t> chunk_ends_;  // where each chunk ends in chunk_bytes_
  const std::vector<Sample> head_;
  const int64_t mint_, maxt_;
  size_t chunk_ = 0, head_pos_ = 0;
  bool started_ = false, valid_ = false, done_ = false;
  std::unique_ptr<ChunkIterator> it_;  // over chunk chunk_, while it is read
  Sample cur_;
  absl::Status status_;
};

class QuerierImpl;

class EmptyQuerier : public Querier {
 public:
  absl::StatusOr<std::vector<Series>> Select(const std::vector<LabelMatcher>& matchers,
                                             const SelectHints&) override {
    bool selective = std::any_of(matchers.begin(), matchers.end(),
                                 [](const LabelMatcher& m) { return !m.MatchesEmpty(); });
    if (!selective) {
      return absl::InvalidArgumentError(
          "vector selector must contain at least one non-empty matcher");
    }
    return std::vector<Series>{};
  }
  absl::StatusOr<std::vector<std::string>> LabelNames(const std::vector<LabelMatcher>&) override {
    return std::vector<std::string>{};
  }
  absl::StatusOr<std::vector<std::string>> LabelValues(const std::string&,
                                                       const std::vector<LabelMatcher>&) override {
    return std::vector<std::string>{};
  }
};

// A lazy selection, compactly: per series its id and hash (16 bytes, to read its samples when
// they are first used), and its labels as the ranks of its pairs in label order, 4 bytes each,
// each distinct label pair kept once (a selection of 500 k series holds a few tens of
// thousands). Holding the encoded labels instead would cost ~200 bytes per selected series
// (100 MB for a dashboard panel at 1 M series), and an iterator per series ~64; the ranks also
// sort the series by labels with integer comparisons.
class Selection : public SeriesSource {
 public:
  explicit Selection(QuerierImpl* querier) : querier_(querier) {}
  // Room for n series, which have about as many labels as the first one added.
  void Reserve(size_t n) {
    starts_.reserve(n);
    refs_.reserve(n);
  }
  // Adds the next series: its id, hash (SeriesHash) and labels (EncodeLabels form, checked).
  void Add(uint64_t id, uint64_t hash, std::string_view encoded) {
    refs_.push_back(Ref{id, hash});
    if (starts_.size() == 1) pairs_of_.reserve(starts_.capacity() * pairs_of_.size());
    starts_.push_back(static_cast<uint32_t>(pairs_of_.size()));
    std::string_view pair;
    while (SplitEncodedLabel(&encoded, &pair)) {
      auto it = ids_.find(pair);
      if (it == ids_.end()) {
        const std::string& stored = pairs_.emplace_back(pair);  // a deque: views stay valid
        it = ids_.emplace(stored, static_cast<uint32_t>(pairs_.size() - 1)).first;
      }
      pairs_of_.push_back(it->second);
    }
  }
  size_t size() const { return starts_.size(); }

  // Once every series is added: numbers the pairs in label order, so that comparing two series'
  // rank sequences compares their labels.
  void Rank() {
    // Each pair decoded once: views into pairs_, whose strings stay where they are.
    std::vector<LabelView> decoded(pairs_.size());
    std::vector<LabelView> one;
    for (size_t i = 0; i < pairs_.size(); ++i) {
      one.clear();
      DecodeLabelViews(pairs_[i], &one);  // one whole label (from SplitEncodedLabel)
      decoded[i] = one[0];
    }
    std::vector<uint32_t> by_rank(pairs_.size());
    for (uint32_t i = 0; i < by_rank.size(); ++i) by_rank[i] = i;
    std::sort(by_rank.begin(), by_rank.end(), [&decoded](uint32_t a, uint32_t b) {
      if (int c = decoded[a].name.compare(decoded[b].name); c != 0) return c < 0;
      return decoded[a].value < decoded[b].value;
    });
    std::vector<uint32_t> rank(pairs_.size());
    for (uint32_t r = 0; r < by_rank.size(); ++r) rank[by_rank[r]] = r;
    for (uint32_t& p : pairs_of_) p = rank[p];
    ranked_.reserve(by_rank.size());
    for (uint32_t id : by_rank) ranked_.push_back(decoded[id]);
    ids_.clear();
  }

  // After Rank: the order of two series' labels.
  bool Less(size_t a, size_t b) const {
    std::span<const uint32_t> x = PairsOf(a), y = PairsOf(b);
    return std::lexicographical_compare(x.begin(), x.end(), y.begin(), y.end());
  }

  absl::StatusOr<Labels> LabelsAt(size_t index) override {
    if (index >= starts_.size()) return absl::OutOfRangeError("no such series in the selection");
    std::vector<Label> items;
    const std::span<const uint32_t> pairs = PairsOf(index);
    items.reserve(pairs.size());
    for (uint32_t r : pairs) {
      items.push_back(Label{std::string(ranked_[r].name), std::string(ranked_[r].value)});
    }
    return Labels::FromSortedUnchecked(std::move(items));
  }

  std::unique_ptr<SampleIterator> SamplesAt(size_t index) override;  // after QuerierImpl
  uint64_t ReadOrderAt(size_t index) const override {
    return index < refs_.size() ? refs_[index].id : 0;  // chunks are keyed by day, then id
  }

 private:
  struct Ref {
    uint64_t id;
    uint64_t hash;
  };
  std::span<const uint32_t> PairsOf(size_t i) const {
    const uint32_t end =
        i + 1 < starts_.size() ? starts_[i + 1] : static_cast<uint32_t>(pairs_of_.size());
    return std::span<const uint32_t>(pairs_of_.data() + starts_[i], end - starts_[i]);
  }
  std::deque<std::string> pairs_;                         // by id
  absl::flat_hash_map<std::string_view, uint32_t> ids_;  // pair -> id, until Rank
  std::vector<LabelView> ranked_;                         // after Rank: name and value by rank
  std::vector<uint32_t> pairs_of_;                        // every series' pairs, one after another
  std::vector<uint32_t> starts_;                          // series -> its first in pairs_of_
  std::vector<Ref> refs_;                                 // series -> what reads its samples
  QuerierImpl* const querier_;
};

class QuerierImpl : public Querier {
 public:
  QuerierImpl(DBImpl* db, uint32_t tenant, int64_t mint, int64_t maxt)
      : db_(db), tenant_(tenant), mint_(mint), maxt_(maxt), registry_(db->chunk_iterators()) {
    registry_->Add(&chunk_it_);
  }
  ~QuerierImpl() override {
    registry_->Remove(&chunk_it_);
    absl::MutexLock lock(&chunk_it_.mu);
    chunk_it_.it.reset();
  }

  absl::StatusOr<std::vector<Series>> Select(const std::vector<LabelMatcher>& matchers,
                                             const SelectHints& hints) override {
    std::vector<Series> result;
    if (hints.lazy) {
      // Sorted by labels that stay compact until taken (Selection).
      auto selection = std::make_unique<Selection>(this);
      absl::Status st = db_->ForEachMatchingSeries(
          tenant_, matchers, mint_, maxt_,
          [&](uint64_t id, std::string_view bytes, std::span<const LabelView> views) {
            result.push_back(
                Series{{}, nullptr, selection.get(), static_cast<uint32_t>(selection->size())});
            selection->Add(id, SeriesHash(tenant_, LabelsHash(views)), bytes);
          },
          // A selection of 500 k series grown by doubling would hold up to 3x its size while
          // it moves.
          [&](size_t n) {
            result.reserve(n);
            selection->Reserve(n);
          });
      if (!st.ok()) return st;
      if (selection->size() > std::numeric_limits<uint32_t>::max()) {
        return absl::ResourceExhaustedError("a selection of 2^32 series or more");
      }
      selection->Rank();
      std::sort(result.begin(), result.end(), [&selection](const Series& a, const Series& b) {
        return selection->Less(a.index, b.index);
      });
      selections_.push_back(std::move(selection));
      return result;
    }
    auto selected = SelectLabels(matchers);
    if (!selected.ok()) return selected.status();
    for (auto& [id, labels] : *selected) {
      auto samples = LoadSamples(id, SeriesHash(tenant_, LabelsHash(labels)));
      if (!samples.ok()) return samples.status();
      if (*samples == nullptr) continue;
      result.push_back(Series{std::move(labels), *std::move(samples), nullptr, 0});
    }
    std::sort(result.begin(), result.end(),
              [](const Series& a, const Series& b) { return a.labels < b.labels; });
    return result;
  }

  absl::StatusOr<std::vector<std::string>> LabelNames(
      const std::vector<LabelMatcher>& matchers) override {
    if (db_->closed()) return absl::FailedPreconditionError("database is closed");
    if (matchers.empty()) return PostingNames(Source(), tenant_, mint_, maxt_);
    auto selected = SelectLabels(matchers);
    if (!selected.ok()) return selected.status();
    std::vector<std::string> names;
    for (const auto& [id, labels] : *selected) {
      for (const Label& l : labels) names.push_back(l.name);
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
  }

  absl::StatusOr<std::vector<std::string>> LabelValues(
      const std::string& name, const std::vector<LabelMatcher>& matchers) override {
    if (db_->closed()) return absl::FailedPreconditionError("database is closed");
    if (matchers.empty()) return PostingValues(Source(), tenant_, mint_, maxt_, name);
    auto selected = SelectLabels(matchers);
    if (!selected.ok()) return selected.status();
    std::vector<std::string> values;
    for (const auto& [id, labels] : *selected) {
      std::string_view v = labels.Get(name);
      if (!v.empty()) values.emplace_back(v);
    }
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
  }

 private:
  PostingsSource Source() { return PostingsSource{db_->rocks(), db_->postings_cf()}; }

  absl::StatusOr<std::vector<std::pair<uint64_t, Labels>>> SelectLabels(
      const std::vector<LabelMatcher>& matchers) {
    return db_->MatchSeries(tenant_, matchers, mint_, maxt_);
  }

 public:
  // The series' samples in range, or nullptr when it has none there.
  absl::StatusOr<std::unique_ptr<SampleIterator>> LoadSamples(uint64_t id, uint64_t hash) {
    if (db_->closed()) return absl::FailedPreconditionError("database is closed");
    // Copy the head first, then read the chunks: a concurrent seal writes its chunk before the
    // samples leave the head, so nothing falls between the two.
    std::vector<Sample> head;
    int64_t sealed_max_t = std::numeric_limits<int64_t>::max();
    const bool in_head =
        db_->CopyHeadSamples(tenant_, hash, id, mint_, maxt_, &head, &sealed_max_t);
    std::string chunk_bytes;
    std::vector<uint32_t> chunk_ends;
    bool chunk_in_range = false;
    if (in_head && sealed_max_t < mint_) {
      // Recent data of a series in the head: no sealed chunk reaches the range.
      if (head.empty()) return nullptr;
      return std::unique_ptr<SampleIterator>(std::make_unique<SeriesIterator>(
          std::move(chunk_bytes), std::move(chunk_ends), std::move(head), mint_, maxt_));
    }
    // One iterator for the series read one after another, made again when a chunk write
    // finished since it was made (DBImpl::chunk_writes: the head copied above may lack
    // samples that only a newer iterator sees in their chunk).
    // Past DBImpl::query_cache_fill_bytes of chunks, it is made again not to fill the cache.
    const uint64_t writes = db_->chunk_writes();
    absl::MutexLock lock(&chunk_it_.mu);
    const bool fill_cache = chunk_it_.bytes_read <= db_->query_cache_fill_bytes();
    if (chunk_it_.it == nullptr || writes != chunk_it_.writes ||
        fill_cache != chunk_it_.fills_cache) {
      chunk_it_.it.reset();  // first: an iterator pins what it reads
      rocksdb::ReadOptions read;
      read.fill_cache = fill_cache;
      chunk_it_.it.reset(db_->rocks()->NewIterator(read, db_->chunks_cf()));
      chunk_it_.writes = writes;
      chunk_it_.fills_cache = fill_cache;
    }
    // Counted only while the reads still fill the cache (the count decides nothing after).
    std::optional<BlockReadCounter> block_reads;
    if (fill_cache) block_reads.emplace();
    SeriesChunks chunks(chunk_it_.it.get(), tenant_, id, mint_, maxt_, db_->chunk_days());
    for (; chunks.Valid(); chunks.Next()) {
      const std::string_view chunk = chunks.value();
      auto info = ReadChunkInfo(chunk);
      if (!info.ok()) {
        return absl::DataLossError(absl::StrCat("chunk of series ", id, " (", chunk.size(),
                                                " bytes): ", info.status().message()));
      }
      if (info->max_time_ms < mint_) continue;
      if (chunk_bytes.size() + chunk.size() > std::numeric_limits<uint32_t>::max()) {
        return absl::ResourceExhaustedError(
            absl::StrCat("chunks of series ", id, " in range exceed 4 GiB"));
      }
      chunk_bytes.append(chunk);
      chunk_ends.push_back(static_cast<uint32_t>(chunk_bytes.size()));
      if (!chunk_in_range) {
        ChunkIterator probe(chunk);
        chunk_in_range = probe.Seek(mint_) && probe.At().t <= maxt_;
        if (!probe.status().ok()) {
          return absl::DataLossError(absl::StrCat("chunk of series ", id, ": ",
                                                  probe.status().message()));
        }
      }
    }
    if (block_reads) chunk_it_.bytes_read += block_reads->bytes();
    if (!chunks.status().ok()) {
      return absl::InternalError(absl::StrCat("read chunks: ", chunks.status().ToString()));
    }
    if (head.empty() && !chunk_in_range) return nullptr;
    return std::unique_ptr<SampleIterator>(
        std::make_unique<SeriesIterator>(std::move(chunk_bytes), std::move(chunk_ends),
                                         std::move(head), mint_, maxt_));
  }

 private:
  DBImpl* const db_;
  const uint32_t tenant_;
  const int64_t mint_, maxt_;
  std::vector<std::unique_ptr<Selection>> selections_;  // of the lazy Selects
  // LoadSamples' iterator over `chunks`, registered with the DB, which drops it when it closes.
  const std::shared_ptr<ChunkIteratorRegistry> registry_;
  CachedChunkIterator chunk_it_;
};

std::unique_ptr<SampleIterator> Selection::SamplesAt(size_t index) {
  if (index >= refs_.size()) {
    return NewEmptySampleIterator(absl::OutOfRangeError("no such series in the selection"));
  }
  absl::StatusOr<std::unique_ptr<SampleIterator>> loaded =
      querier_->LoadSamples(refs_[index].id, refs_[index].hash);
  if (!loaded.ok()) return NewEmptySampleIterator(loaded.status());
  if (*loaded == nullptr) return NewEmptySampleIterator();
  return *std::move(loaded);
}

class TenantQueryable : public Queryable {
 public:
  TenantQueryable(DBImpl* db, std::string_view tenant) : db_(db), tenant_(tenant) {}
  absl::StatusOr<std::unique_ptr<Querier>> NewQuerier(int64_t mint_ms, int64_t maxt_ms) override {
    return db_->NewQuerier(tenant_, mint_ms, maxt_ms);
  }

 private:
  DBImpl* const db_;
  const std::string tenant_;
};

}  // namespace

absl::Status DBImpl::ForEachMatchingSeries(
    uint32_t tenant, const std::vector<LabelMatcher>& matchers, int64_t mint, int64_t maxt,
    const std::function<void(uint64_t, std::string_view, std::span<const LabelView>)>& fn,
    const std::function<void(size_t)>& candidates) {
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  auto ids = SelectPostings(PostingsSource{db_, postings_cf()}, tenant, mint, maxt, matchers);
  if (!ids.ok()) return ids.status();
  // The day's postings hold every series written that day: drop those that ended before the
  // range without reading them.
  query_series_skipped_ += static_cast<int64_t>(bounds_.RemoveEndingBefore(&*ids, mint));
  if (candidates) candidates(ids->size());
  // Labels by id in sorted batches: neighbouring ids share blocks, which one MultiGet finds and
  // reads once. Past query_cache_fill_bytes read from files, the blocks stop filling the cache.
  constexpr size_t kBatch = 256;
  rocksdb::ReadOptions read;
  uint64_t bytes_read = 0;
  std::vector<std::string> keys;
  std::vector<rocksdb::Slice> slices;
  std::vector<rocksdb::PinnableSlice> values(kBatch);
  std::vector<rocksdb::Status> statuses(kBatch);
  std::vector<LabelView> views;
  for (size_t begin = 0; begin < ids->size(); begin += kBatch) {
    const size_t n = std::min(kBatch, ids->size() - begin);
    keys.clear();
    slices.clear();
    for (size_t i = 0; i < n; ++i) keys.push_back(SeriesByIdKey(tenant, (*ids)[begin + i]));
    for (const std::string& k : keys) slices.emplace_back(k);
    read.fill_cache = bytes_read <= query_cache_fill_bytes_;
    std::optional<BlockReadCounter> block_reads;
    if (read.fill_cache) block_reads.emplace();
    db_->MultiGet(read, series_cf(), n, slices.data(), values.data(), statuses.data(),
                  /*sorted_input=*/true);
    if (block_reads) bytes_read += block_reads->bytes();
    for (size_t i = 0; i < n; ++i) {
      const uint64_t id = (*ids)[begin + i];
      const rocksdb::Status& s = statuses[i];
      if (s.IsNotFound()) continue;
      if (!s.ok()) {
        return absl::InternalError(
            absl::StrCat("read labels of series ", id, ": ", s.ToString()));
      }
      const std::string_view bytes = View(values[i]);
      views.clear();
      if (!DecodeLabelViews(bytes, &views)) {
        return absl::DataLossError(absl::StrCat("labels of series ", id, ": truncated"));
      }
      bool match = std::all_of(matchers.begin(), matchers.end(), [&](const LabelMatcher& m) {
        std::string_view value;
        for (const LabelView& l : views) {
          if (l.name == m.name()) {
            value = l.value;
            break;
          }
        }
        return m.Matches(value);
      });
      if (match) fn(id, bytes, views);
      values[i].Reset();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<uint64_t, Labels>>> DBImpl::MatchSeries(
    uint32_t tenant, const std::vector<LabelMatcher>& matchers, int64_t mint, int64_t maxt) {
  std::vector<std::pair<uint64_t, Labels>> out;
  absl::Status st = ForEachMatchingSeries(
      tenant, matchers, mint, maxt,
      [&out](uint64_t id, std::string_view, std::span<const LabelView> views) {
        out.emplace_back(id, Labels::FromViewsUnchecked(views));
      });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::unique_ptr<Querier>> DBImpl::NewQuerier(std::string_view tenant,
                                                            int64_t mint_ms, int64_t maxt_ms) {
  if (closed_.load()) return absl::FailedPreconditionError("database is closed");
  std::optional<uint32_t> id = FindTenant(tenant);
  if (!id.has_value()) return std::unique_ptr<Querier>(std::make_unique<EmptyQuerier>());
  return std::unique_ptr<Querier>(std::make_unique<QuerierImpl>(this, *id, mint_ms, maxt_ms));
}

std::unique_ptr<Queryable> DBImpl::ForTenant(std::string_view tenant) {
  return std::make_unique<TenantQueryable>(this, tenant);
}

}  // namespace tidemark::internal
