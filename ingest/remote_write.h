// Prometheus remote write 1.0 and 2.0: a snappy-compressed protobuf request (1.0's
// `prometheus.WriteRequest` or 2.0's `io.prometheus.write.v2.Request`, told apart by the
// Content-Type) turned into appends, exemplars and metric metadata.
//
// Takes the body bytes and the request headers' values; no socket, no HTTP types, so it can be
// unit-tested and fuzzed. Thread-safe (stateless apart from the appender and store passed in).
#ifndef TIDEMARK_INGEST_REMOTE_WRITE_H_
#define TIDEMARK_INGEST_REMOTE_WRITE_H_

#include <cstdint>
#include <string>
#include <memory>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/appender.h"
#include "storage/db.h"

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
  // What remote write 2.0's X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written
  // response headers report (samples_accepted for samples).
  int64_t histograms_written = 0;
  int64_t exemplars_written = 0;
  int64_t metadata_written = 0;  // metric names whose metadata was recorded
};

// Where a write's exemplars and metric metadata go: the DB for one tenant in the server
// (DBSideStore), a model in tests. Errors: InvalidArgument for an exemplar that can never be
// stored (skipped, as Prometheus does), anything else is trouble a retry may cure.
class SideStore {
 public:
  virtual ~SideStore() = default;
  virtual absl::Status PutMetadata(std::string_view metric, const MetricMetadata& metadata) = 0;
  virtual absl::Status AppendExemplars(const Labels& series,
                                       std::span<const Exemplar> exemplars) = 0;
};

// A SideStore writing to `db` (which must outlive it) for `tenant`.
std::unique_ptr<SideStore> DBSideStore(DB& db, std::string_view tenant);

enum class RemoteWriteVersion : uint8_t { k1, k2 };

// True for the content types remote write 1.0 senders use (`application/x-protobuf`, with or
// without `proto=prometheus.WriteRequest`, or empty). False means 415.
bool IsRemoteWrite1ContentType(std::string_view content_type);

// Checks a remote write request's `Content-Type` and `Content-Encoding` header values before the
// body is read. OK means go on with HandleRemoteWrite (1.0) or HandleRemoteWrite2 (2.0); any
// error means 415 Unsupported Media Type, with a reason the sender can act on as the message
// (InvalidArgument). Accepted: an empty or `application/x-protobuf` type (parameters other than
// `proto` ignored, `proto` absent or `prometheus.WriteRequest` for 1.0,
// `io.prometheus.write.v2.Request` for 2.0), and an empty or `snappy` encoding
// (case-insensitive).
absl::Status CheckRemoteWriteHeaders(std::string_view content_type,
                                     std::string_view content_encoding);

// The protocol version a `Content-Type` asks for; InvalidArgument (415) when neither.
absl::StatusOr<RemoteWriteVersion> RemoteWriteVersionOf(std::string_view content_type);

// Decodes a remote write 1.0 `body` (snappy block format; `content_encoding` "snappy" or empty)
// and appends every sample through `appender`, committing once at the end.
//
// Every label set must be canonical (Labels::Validate: sorted, unique, valid names, non-empty
// UTF-8 values) and non-empty; a series without `__name__` is accepted, as Prometheus does.
// Native histograms are refused (InvalidArgument). The first sample the appender refuses rolls
// the whole request back; `reject_reason` says why and `samples_rejected` counts every sample
// of the request. The snappy length header is checked against `limits` before anything is
// decompressed.
//
// After the samples are committed, the series' exemplars and the request's metadata (type as
// Prometheus's lower-case name, help, unit, per metric family name) go to `side` when given
// (ignored when null). Exemplars the store refuses as invalid are skipped (not counted); a
// store failure fails the request with its status (the samples are stored already: a retry
// is safe, identical samples, exemplars and metadata are ignored).
WriteResult HandleRemoteWrite(std::string_view body, std::string_view content_encoding,
                              const WriteLimits& limits, Appender& appender,
                              SideStore* side = nullptr);

// The same for a remote write 2.0 `io.prometheus.write.v2.Request`: labels, exemplar labels and
// metadata strings are references into the request's symbol table, all checked before anything
// is appended (a reference out of range, an odd number of label references, invalid labels:
// InvalidArgument, nothing stored). Metadata (type, help, unit) is recorded under the series'
// metric family name (`__name__` without `_bucket`/`_sum`/`_count` for histograms and
// summaries). `created_timestamp` is accepted and ignored, as Prometheus does by default.
WriteResult HandleRemoteWrite2(std::string_view body, std::string_view content_encoding,
                               const WriteLimits& limits, Appender& appender, SideStore* side);

}  // namespace tidemark::ingest

#endif  // TIDEMARK_INGEST_REMOTE_WRITE_H_
