// MemoryStorage: an in-memory Queryable of series and samples, for tests of the query layer.
//
// Series are kept sorted by labels; a Querier is a snapshot of the samples inside its time
// range taken when it is opened. Thread-safe: Add/Clear and NewQuerier may run concurrently;
// each Querier is used by one thread at a time, as the Querier contract says.
#ifndef TIDEMARK_STORAGE_MEMORY_QUERIER_H_
#define TIDEMARK_STORAGE_MEMORY_QUERIER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/labels.h"
#include "storage/querier.h"
#include "storage/sample.h"

namespace tidemark {

class MemoryStorage : public Queryable {
 public:
  MemoryStorage() = default;

  // Adds `samples` to the series `labels`, creating it when new. Samples may come in any order;
  // a sample at a timestamp already present replaces the old one. InvalidArgument when `labels`
  // is empty.
  absl::Status Add(const Labels& labels, std::vector<Sample> samples);

  // Removes every series.
  void Clear();

  // A snapshot Querier over samples with timestamps in [mint_ms, maxt_ms].
  absl::StatusOr<std::unique_ptr<Querier>> NewQuerier(int64_t mint_ms, int64_t maxt_ms) override;

 private:
  absl::Mutex mu_;
  std::map<Labels, std::vector<Sample>> series_ ABSL_GUARDED_BY(mu_);  // each sorted by time
};

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_MEMORY_QUERIER_H_
