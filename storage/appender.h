// Appender: adds samples to one tenant's series and commits them atomically.
//
// Samples passed to Append are buffered and checked against what is stored; nothing is visible
// or durable until Commit returns OK. After Commit (OK or not) or Rollback the appender is empty
// and may be reused. Not thread-safe; use one appender per request.
#ifndef TIDEMARK_STORAGE_APPENDER_H_
#define TIDEMARK_STORAGE_APPENDER_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "storage/labels.h"

namespace tidemark {

// Why a sample was refused, with the messages Prometheus uses. `StatusOf` builds the status that
// Append returns; `RejectReasonOf` reads the reason back from such a status (kNone otherwise).
enum class RejectReason : uint8_t {
  kNone = 0,
  kOutOfOrder,      // "out of order sample"
  kDuplicate,       // "duplicate sample for timestamp"
  kOutOfBounds,     // "out of bounds": older than the head accepts (e.g. beyond retention)
  kInvalidLabels,   // labels not canonical or not valid
};
std::string_view RejectReasonName(RejectReason reason);  // "out_of_order", ... for metrics
RejectReason RejectReasonOf(const absl::Status& status);
// InvalidArgument whose message starts with the reason's Prometheus message (then ": detail"
// when `detail` is not empty), carrying `reason` for RejectReasonOf.
absl::Status StatusOf(RejectReason reason, std::string_view detail = {});

class Appender {
 public:
  virtual ~Appender() = default;

  // Buffers one sample for the series `labels`. Returns InvalidArgument carrying a RejectReason
  // when the sample can never be stored: labels not canonical (see Labels::Validate; checked
  // for a series not stored yet, since a stored series' labels were checked when it was made),
  // out of order, a different value at an existing timestamp, out of bounds. A sample identical (bit for bit)
  // to a stored one of its series (the last, as in Prometheus, or an older one: a retried
  // request) is accepted and ignored.
  virtual absl::Status Append(const Labels& labels, int64_t t_ms, double v) = 0;
  // The same for labels given as views in canonical order (sorted by name, as a remote-write
  // request carries them; checked as above for a new series). They are copied only when the
  // series is not in the head; the default implementation always copies.
  virtual absl::Status Append(std::span<const LabelView> labels, int64_t t_ms, double v);

  // Makes every buffered sample durable (per the DB's sync policy) and visible, all or none.
  // On error nothing was applied; Unavailable means a retry may succeed.
  virtual absl::Status Commit() = 0;

  // Drops every buffered sample.
  virtual void Rollback() = 0;

  // Samples buffered since the last Commit/Rollback.
  virtual size_t pending() const = 0;

  // A hint: about `series` distinct series follow before the next Commit (a request's count),
  // so buffers are sized once instead of growing.
  virtual void Reserve(size_t series) {}
};

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_APPENDER_H_
