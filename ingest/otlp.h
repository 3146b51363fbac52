// OTLP/HTTP metrics ingest: an ExportMetricsServiceRequest (protobuf or OTLP JSON, optionally
// gzip-compressed) translated to Prometheus series and appended.
//
//   OtlpReceiver receiver(options);                 // one per server; thread-safe
//   OtlpResult r = receiver.Export(tenant, body, encoding, content_encoding, *appender, store,
//                                  side.get());   // side: DBSideStore(db, tenant), may be null
//   std::string reply = EncodeOtlpResponse(r, encoding);
//
// Translation follows the OpenTelemetry "Prometheus and OpenMetrics Compatibility"
// specification as Prometheus 3's OTLP receiver applies it (UnderscoreEscapingWithSuffixes by
// default). Delta temporality is turned into cumulative values in the server with running totals
// kept in a DeltaStateStore (durable in the DB, so they survive restarts). No sockets, no HTTP
// types: unit-testable and fuzzable.
#ifndef TIDEMARK_INGEST_OTLP_H_
#define TIDEMARK_INGEST_OTLP_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ingest/remote_write.h"
#include "storage/appender.h"

namespace opentelemetry::proto::collector::metrics::v1 {
class ExportMetricsServiceRequest;
}  // namespace opentelemetry::proto::collector::metrics::v1

namespace tidemark {
class DB;
}  // namespace tidemark

namespace tidemark::ingest {

// How OTLP names become Prometheus names. Only the escaping strategies exist: storage keeps
// legacy names, so Prometheus's NoUTF8EscapingWithSuffixes and NoTranslation are refused.
enum class OtlpTranslationStrategy : uint8_t {
  kUnderscoreEscapingWithSuffixes = 0,     // Prometheus 3's default
  kUnderscoreEscapingWithoutSuffixes = 1,  // no unit, _total or _ratio suffixes
};
// Prometheus's spelling ("UnderscoreEscapingWithSuffixes", ...). InvalidArgument otherwise.
absl::StatusOr<OtlpTranslationStrategy> ParseOtlpTranslationStrategy(std::string_view name);
std::string_view OtlpTranslationStrategyName(OtlpTranslationStrategy strategy);

struct OtlpOptions {
  OtlpTranslationStrategy translation_strategy =
      OtlpTranslationStrategy::kUnderscoreEscapingWithSuffixes;
  // Resource attributes copied (sanitised) onto every series of their resource, unless a data
  // point attribute of the same label name is there.
  std::vector<std::string> promote_resource_attributes;
  // otel_scope_name, otel_scope_version, otel_scope_schema_url and otel_scope_<attribute> labels.
  bool promote_scope_metadata = true;
  // `<family>_created` series for counters, histograms and summaries. The value is the start
  // time in milliseconds since the epoch, as Prometheus 3's OTLP receiver writes it.
  bool export_created_metric = false;
  // Delta sums and histograms are accumulated into cumulative series; when false they are
  // rejected (as Prometheus does without its experimental flag).
  bool convert_delta_to_cumulative = true;
  // Exponential histograms become classic `_bucket{le}` series at most at this scale (bucket
  // bounds 2^(i * 2^-scale)); finer ones are merged down. 0: powers of two. Range [-4, 8].
  int32_t exponential_histogram_max_scale = 0;
  // target_info gets a sample every lookback_delta/2 between a resource's first and last point.
  int64_t lookback_delta_ms = 5 * 60 * 1000;
  // The decompressed body may not exceed this.
  size_t max_decoded_bytes = 64 << 20;
};

enum class OtlpEncoding : uint8_t { kProtobuf = 0, kJson = 1 };

// `application/x-protobuf` or `application/json` (parameters ignored). Anything else:
// InvalidArgument, to be answered 415.
absl::StatusOr<OtlpEncoding> OtlpEncodingOf(std::string_view content_type);
// The Content-Type of responses in `encoding`.
std::string_view OtlpContentType(OtlpEncoding encoding);
// Empty, `identity` or `gzip` (case-insensitive). Anything else: InvalidArgument (415).
absl::Status CheckOtlpContentEncoding(std::string_view content_encoding);

// Decompresses (gzip when `content_encoding` says so, with `max_decoded_bytes` as the limit) and
// parses `body` into `request`. OTLP JSON's hex trace/span ids are accepted. InvalidArgument for
// a malformed body, ResourceExhausted over the limit.
absl::Status DecodeOtlpRequest(
    std::string_view body, OtlpEncoding encoding, std::string_view content_encoding,
    size_t max_decoded_bytes,
    opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest* request);

// Durable per-tenant key-value state for delta-to-cumulative running totals. Implementations
// must be thread-safe. Put with an empty value deletes.
class DeltaStateStore {
 public:
  virtual ~DeltaStateStore() = default;
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view tenant,
                                                         std::string_view key) = 0;
  virtual absl::Status Put(std::string_view tenant, std::string_view key,
                           std::string_view value) = 0;
};

// A DeltaStateStore over DB::GetState/PutState with an in-memory cache (the DB is read once per
// series and process). `db` must outlive the store.
std::unique_ptr<DeltaStateStore> NewDbDeltaStateStore(DB* db);

// What an export did. `status`:
//   OK                 -> 200; `points_rejected` > 0 makes it a partial success
//   InvalidArgument    -> 400 (malformed body; nothing stored)
//   ResourceExhausted  -> 413 (decoded body over the limit)
//   Unavailable        -> 503 with Retry-After (storage trouble; a retry may succeed)
//   anything else      -> 500
struct OtlpResult {
  absl::Status status;
  int64_t points_received = 0;   // OTLP data points in the request
  int64_t points_rejected = 0;   // of which not stored
  int64_t samples_appended = 0;  // Prometheus samples committed
  std::string error_message;     // why points were rejected (first reasons), for partial_success
  RejectReason reject_reason = RejectReason::kNone;  // the storage reason of the first rejection
  int64_t samples_rejected = 0;                      // samples the appender refused
  int64_t exemplars_written = 0;  // exemplars handed to the SideStore and accepted
  int64_t metadata_written = 0;   // metric families whose metadata was recorded
};

// The response body: ExportMetricsServiceResponse (with partial_success when points were
// rejected) for an OK result, a google.rpc.Status otherwise; protobuf or JSON per `encoding`.
std::string EncodeOtlpResponse(const OtlpResult& result, OtlpEncoding encoding);

class OtlpReceiver {
 public:
  explicit OtlpReceiver(OtlpOptions options);

  const OtlpOptions& options() const { return options_; }

  // Decodes the request and appends every translatable data point through `appender`, committing
  // once. Points that cannot be stored (no valid name, unsupported temporality, a delta point
  // older than the running total, samples refused by storage) are counted in `points_rejected`;
  // the rest is stored. `store` holds the delta running totals; with null, delta points are
  // rejected. Running totals are updated only after a successful commit.
  //
  // After the commit, when `side` is given: metadata per metric family (type counter, gauge,
  // histogram or summary; help = description; unit as its Prometheus word, e.g. "seconds") of
  // every metric with a stored sample, and the exemplars of sum, histogram and exponential
  // histogram points (labels trace_id and span_id in hex plus the filtered attributes, which
  // are dropped when the set would exceed 128 characters). A sum's exemplars go to its series,
  // a histogram's to the `_bucket` series of the smallest `le` >= the exemplar's value.
  // Exemplars the store refuses as invalid are skipped; any other store failure makes the
  // result Unavailable (the samples are stored; a retry stores nothing twice).
  OtlpResult Export(std::string_view tenant, std::string_view body, OtlpEncoding encoding,
                    std::string_view content_encoding, Appender& appender,
                    DeltaStateStore* store, SideStore* side = nullptr);

  // Translates an already decoded request (the benchmark's entry point).
  OtlpResult Translate(std::string_view tenant,
                       const opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest&
                           request,
                       Appender& appender, DeltaStateStore* store, SideStore* side = nullptr);

 private:
  const OtlpOptions options_;
  absl::Mutex delta_mu_;  // serialises requests with delta points: read, append, commit, save
};

}  // namespace tidemark::ingest

#endif  // TIDEMARK_INGEST_OTLP_H_
