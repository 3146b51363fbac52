// Prometheus remote write 1.0: a snappy-compressed protobuf WriteRequest turned into appends.
//
// Takes the body bytes and the request headers' values; no socket, no HTTP types, so it can be
// unit-tested and fuzzed. Thread-safe (stateless apart from the appender passed in).
#ifndef TIDEMARK_INGEST_REMOTE_WRITE_H_
#define TIDEMARK_INGEST_REMOTE_WRITE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "storage/appender.h"

namespace tidemark::ingest {

struct WriteLimits {
  size_t max_decoded_bytes = 64 << 20;  // the uncompressed body may not exceed this
};

// What a write did. `status` carries the outcome for the sender:
//   OK                   -> 204
//   InvalidArgument      -> 400 (malformed body, invalid labels, out-of-order/duplicate samples)
//   ResourceExhausted    -> 413 (decoded body over the limit)
//   Unavailable/Internal -> 5xx (storage trouble: a retry may succeed)
// On any error nothing of the request is stored.
struct WriteResult {
  absl::Status status;
  int64_t samples_accepted = 0;
  int64_t series = 0;
  RejectReason reject_reason = RejectReason::kNone;  // why, when samples were refused
  int64_t samples_rejected = 0;
};

// True for the content types remote write 1.0 senders use (`application/x-protobuf`, with or
// without `proto=prometheus.WriteRequest`, or empty). False means 415.
bool IsRemoteWrite1ContentType(std::string_view content_type);

// Checks a remote write request's `Content-Type` and `Content-Encoding` header values before the
// body is read. OK means go on with HandleRemoteWrite; any error means 415 Unsupported Media
// Type, with a reason the sender can act on as the message (Unimplemented for remote write 2.0,
// `proto=io.prometheus.write.v2.Request`; InvalidArgument for anything else). Accepted: an
// empty or `application/x-protobuf` type (parameters other than `proto` ignored, `proto` absent
// or `prometheus.WriteRequest`), and an empty or `snappy` encoding (case-insensitive).
absl::Status CheckRemoteWriteHeaders(std::string_view content_type,
                                     std::string_view content_encoding);

// Decodes `body` (snappy block format; `content_encoding` "snappy" or empty) and appends every
// sample through `appender`, committing once at the end.
//
// Every label set must be canonical (Labels::Validate: sorted, unique, valid names, non-empty
// UTF-8 values) and non-empty; a series without `__name__` is accepted, as Prometheus does.
// Exemplars and metadata are ignored; native histograms are refused (InvalidArgument). The first
// sample the appender refuses rolls the whole request back; `reject_reason` says why and
// `samples_rejected` counts every sample of the request. The snappy length header is checked
// against `limits` before anything is decompressed.
WriteResult HandleRemoteWrite(std::string_view body, std::string_view content_encoding,
                              const WriteLimits& limits, Appender& appender);

}  // namespace tidemark::ingest

#endif  // TIDEMARK_INGEST_REMOTE_WRITE_H_
