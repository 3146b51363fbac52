// OtlpReceiver: decode (on an arena) then translate; translation strategy names.
#include "ingest/otlp.h"

#include <google/protobuf/arena.h>

#include "absl/strings/str_cat.h"
#include "ingest/proto/otlp/metrics_service.pb.h"

namespace tidemark::ingest {

absl::StatusOr<OtlpTranslationStrategy> ParseOtlpTranslationStrategy(std::string_view name) {
  if (name == "UnderscoreEscapingWithSuffixes") {
    return OtlpTranslationStrategy::kUnderscoreEscapingWithSuffixes;
  }
  if (name == "UnderscoreEscapingWithoutSuffixes") {
    return OtlpTranslationStrategy::kUnderscoreEscapingWithoutSuffixes;
  }
  if (name == "NoUTF8EscapingWithSuffixes" || name == "NoTranslation") {
    return absl::InvalidArgumentError(absl::StrCat(
        "translation strategy ", std::string(name),
        " keeps UTF-8 names, which Tidemark does not store; use UnderscoreEscapingWithSuffixes or "
        "UnderscoreEscapingWithoutSuffixes"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown translation strategy \"", std::string(name),
      "\" (want UnderscoreEscapingWithSuffixes or UnderscoreEscapingWithoutSuffixes)"));
}

std::string_view OtlpTranslationStrategyName(OtlpTranslationStrategy strategy) {
  switch (strategy) {
    case OtlpTranslationStrategy::kUnderscoreEscapingWithSuffixes:
      return "UnderscoreEscapingWithSuffixes";
    case OtlpTranslationStrategy::kUnderscoreEscapingWithoutSuffixes:
      return "UnderscoreEscapingWithoutSuffixes";
  }
  return "unknown";
}

OtlpReceiver::OtlpReceiver(OtlpOptions options) : options_(std::move(options)) {}

OtlpResult OtlpReceiver::Export(std::string_view tenant, std::string_view body,
                                OtlpEncoding encoding, std::string_view content_encoding,
                                Appender& appender, DeltaStateStore* store, SideStore* side) {
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 << 10;
  arena_options.max_block_size = 1 << 20;
  google::protobuf::Arena arena(arena_options);
  auto* request = google::protobuf::Arena::CreateMessage<
      opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest>(&arena);
  absl::Status s =
      DecodeOtlpRequest(body, encoding, content_encoding, options_.max_decoded_bytes, request);
  if (!s.ok()) {
    OtlpResult result;
    result.status = std::move(s);
    return result;
  }
  return Translate(tenant, *request, appender, store, side);
}

}  // namespace tidemark::ingest
