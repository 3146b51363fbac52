// Index: reads of the day-partitioned postings column family (internal to storage/).
//
// A posting `tenant | day | name \0 value \0 | series id` says the series has a sample on that
// day and carries that label. Reads here see RocksDB's latest state; the functions are
// stateless and thread-safe.
#ifndef TIDEMARK_STORAGE_INDEX_H_
#define TIDEMARK_STORAGE_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/matcher.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace tidemark::internal {

struct PostingsSource {
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* cf = nullptr;
};

// Sorted unique ids of the tenant's series that have postings on a day overlapping
// [mint, maxt] and match every matcher that does not match the empty string. Matchers that
// match "" are not applied (the caller checks them against the series' labels).
// InvalidArgument when every matcher matches "".
absl::StatusOr<std::vector<uint64_t>> SelectPostings(const PostingsSource& src, uint32_t tenant,
                                                     int64_t mint, int64_t maxt,
                                                     const std::vector<LabelMatcher>& matchers);

// Sorted unique label names / values of label `name` with postings on days overlapping
// [mint, maxt].
absl::StatusOr<std::vector<std::string>> PostingNames(const PostingsSource& src, uint32_t tenant,
                                                      int64_t mint, int64_t maxt);
absl::StatusOr<std::vector<std::string>> PostingValues(const PostingsSource& src, uint32_t tenant,
                                                       int64_t mint, int64_t maxt,
                                                       const std::string& name);

}  // namespace tidemark::internal

#endif  // TIDEMARK_STORAGE_INDEX_H_
