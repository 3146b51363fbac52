#include "storage/db.h"

#include "storage/db_impl.h"

namespace tidemark {

absl::StatusOr<std::unique_ptr<DB>> DB::Open(const Options& options) {
  auto db = std::make_unique<internal::DBImpl>(options);
  absl::Status s = db->Open();
  if (!s.ok()) return s;
  return std::unique_ptr<DB>(std::move(db));
}

}  // namespace tidemark
