// The one place where an absl::Status becomes an HTTP status code and a Prometheus errorType.
//
//   InvalidArgument, OutOfRange          -> 400 bad_data
//   Unimplemented, FailedPrecondition,
//   ResourceExhausted                    -> 422 execution
//   DeadlineExceeded                     -> 503 timeout
//   Cancelled                            -> 499 canceled
//   NotFound                             -> 404 not_found
//   Unavailable                          -> 503 unavailable
//   anything else                        -> 500 internal
#ifndef TIDEMARK_API_ERRORS_H_
#define TIDEMARK_API_ERRORS_H_

#include <string_view>

#include "absl/status/status.h"

namespace tidemark::api {

struct HttpError {
  int code = 500;
  std::string_view type = "internal";
};

// The HTTP status and errorType for a non-OK `status`.
HttpError MapStatus(const absl::Status& status);

}  // namespace tidemark::api

#endif  // TIDEMARK_API_ERRORS_H_
