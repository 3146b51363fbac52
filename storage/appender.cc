#include "storage/appender.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace tidemark {
namespace {

constexpr char kRejectReasonUrl[] = "type.tidemark.dev/RejectReason";

std::string_view ReasonMessage(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone: return "";
    case RejectReason::kOutOfOrder: return "out of order sample";
    case RejectReason::kDuplicate: return "duplicate sample for timestamp";
    case RejectReason::kOutOfBounds: return "out of bounds";
    case RejectReason::kInvalidLabels: return "invalid labels";
  }
  return "";
}

}  // namespace

std::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone: return "none";
    case RejectReason::kOutOfOrder: return "out_of_order";
    case RejectReason::kDuplicate: return "duplicate";
    case RejectReason::kOutOfBounds: return "out_of_bounds";
    case RejectReason::kInvalidLabels: return "invalid_labels";
  }
  return "unknown";
}

RejectReason RejectReasonOf(const absl::Status& status) {
  if (status.ok()) return RejectReason::kNone;
  auto payload = status.GetPayload(kRejectReasonUrl);
  if (!payload.has_value() || payload->size() != 1) return RejectReason::kNone;
  std::string byte(*payload);
  auto r = static_cast<uint8_t>(byte[0]);
  if (r > static_cast<uint8_t>(RejectReason::kInvalidLabels)) return RejectReason::kNone;
  return static_cast<RejectReason>(r);
}

absl::Status StatusOf(RejectReason reason, std::string_view detail) {
  std::string message(ReasonMessage(reason));
  if (!detail.empty()) absl::StrAppend(&message, ": ", std::string(detail));
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kRejectReasonUrl,
                    absl::Cord(std::string(1, static_cast<char>(reason))));
  return status;
}

absl::Status Appender::Append(std::span<const LabelView> labels, int64_t t_ms, double v) {
  return Append(Labels::FromViewsUnchecked(labels), t_ms, v);
}

}  // namespace tidemark
