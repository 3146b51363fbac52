// Querier: a read-only view of one tenant's series over a time range.
//
// `query/` reaches storage only through these interfaces, so PromQL evaluates equally over the
// database (DB::NewQuerier) and over an in-memory series set in tests (MemoryQuerier). A Querier
// is a snapshot: samples appended after it was created may or may not be seen. A Querier and
// the iterators it returns are used by one thread at a time.
#ifndef TIDEMARK_STORAGE_QUERIER_H_
#define TIDEMARK_STORAGE_QUERIER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/labels.h"
#include "storage/matcher.h"
#include "storage/sample.h"

namespace tidemark {

// Iterates one series' samples in increasing timestamp order. The contract for every iterator:
// Next()/Seek() return whether a sample is there, At() reads it, status() is checked once after
// the loop ends.
class SampleIterator {
 public:
  virtual ~SampleIterator() = default;
  // Moves to the next sample; false at the end or on error.
  virtual bool Next() = 0;
  // Moves to the first sample with timestamp >= t, never backwards; false when none.
  // Valid before the first Next(), in which case it starts from the beginning.
  virtual bool Seek(int64_t t) = 0;
  // The current sample; only valid after Next()/Seek() returned true.
  virtual Sample At() const = 0;
  virtual absl::Status status() const = 0;
  // Where the samples lie in storage, for a caller that reads many series: reading them in
  // increasing order of this value, before they are first used, is cheapest (neighbours share
  // blocks). 0 when it does not matter.
  virtual uint64_t ReadOrder() const { return 0; }
};

// Where the series of a lazy selection come from (see SelectHints::lazy): their labels and
// their samples, read when they are taken. Owned by the querier, which outlives its series.
class SeriesSource {
 public:
  virtual ~SeriesSource() = default;
  // The labels of the series at `index` of the selection. Cheapest in increasing index order.
  virtual absl::StatusOr<Labels> LabelsAt(size_t index) = 0;
  // An iterator over the samples of the series at `index` within the querier's time range
  // (empty when it has none there; failing with the read's error).
  virtual std::unique_ptr<SampleIterator> SamplesAt(size_t index) = 0;
  // SampleIterator::ReadOrder of that series.
  virtual uint64_t ReadOrderAt(size_t index) const = 0;
};

// An iterator without samples whose status() is `status`.
std::unique_ptr<SampleIterator> NewEmptySampleIterator(absl::Status status = absl::OkStatus());

// One series: its labels and an iterator over its samples within the querier's time range.
struct Series {
  Labels labels;
  std::unique_ptr<SampleIterator> samples;
  // With SelectHints::lazy a querier may leave `labels` empty and `samples` null, and have
  // TakeLabels and Samples read them from here: selecting a million series then holds no labels
  // (as a Labels, ~800 bytes each; encoded, ~200) and no iterators (~64 bytes each).
  SeriesSource* source = nullptr;
  uint32_t index = 0;  // in the source's selection
  bool labels_taken = false;

  // The labels, moved out of this series (or read from its source); empty once taken.
  absl::StatusOr<Labels> TakeLabels();
  // The samples' iterator (made from the source when first used; after `samples` is reset,
  // made again, from the start).
  SampleIterator& Samples();
  uint64_t ReadOrder() const;
};

// Hints from PromQL about what a selection is for; a querier may ignore them.
struct SelectHints {
  int64_t start_ms = 0;  // samples needed from here ...
  int64_t end_ms = 0;    // ... to here (inclusive)
  // The caller reads the series one at a time, in order, and takes each one's labels with
  // Series::TakeLabels: each series' samples may be read when its iterator is first used (and
  // let go once it is exhausted), series without samples in range may be returned (their
  // iterators are empty), the labels may be read only when taken, and the series need not be
  // sorted by labels (the database returns them in the order it created them, as Prometheus's
  // head does). Selecting many series then costs a few dozen bytes each.
  bool lazy = false;
};

class Querier {
 public:
  virtual ~Querier() = default;

  // The series that match all `matchers` and have samples in [mint, maxt] of the querier,
  // sorted by labels (with `hints.lazy`, possibly also some without samples there). At least one matcher must not match the empty string, otherwise
  // InvalidArgument (as Prometheus: "vector selector must contain at least one non-empty
  // matcher"; the query layer checks this first).
  virtual absl::StatusOr<std::vector<Series>> Select(const std::vector<LabelMatcher>& matchers,
                                                     const SelectHints& hints) = 0;

  // Sorted unique label names of series that match all `matchers` (every series when empty).
  virtual absl::StatusOr<std::vector<std::string>> LabelNames(
      const std::vector<LabelMatcher>& matchers) = 0;

  // Sorted unique values of label `name` over series that match all `matchers`.
  virtual absl::StatusOr<std::vector<std::string>> LabelValues(
      const std::string& name, const std::vector<LabelMatcher>& matchers) = 0;
};

// Opens queriers over time ranges of one tenant's data. PromQL asks for the range it needs once
// it has parsed a query. Thread-safe.
class Queryable {
 public:
  virtual ~Queryable() = default;
  virtual absl::StatusOr<std::unique_ptr<Querier>> NewQuerier(int64_t mint_ms, int64_t maxt_ms) = 0;
};

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_QUERIER_H_
