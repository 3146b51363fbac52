#include "api/errors.h"

namespace tidemark::api {

HttpError MapStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return {400, "bad_data"};
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
      return {422, "execution"};
    case absl::StatusCode::kDeadlineExceeded:
      return {503, "timeout"};
    case absl::StatusCode::kCancelled:
      return {499, "canceled"};
    case absl::StatusCode::kNotFound:
      return {404, "not_found"};
    case absl::StatusCode::kUnavailable:
      return {503, "unavailable"};
    default:
      return {500, "internal"};
  }
}

}  // namespace tidemark::api
