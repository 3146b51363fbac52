// OTLP/HTTP bodies: content negotiation, gzip, protobuf and OTLP JSON decoding, response bodies.
//
// OTLP JSON is protobuf's canonical JSON mapping (lowerCamelCase keys, original names accepted,
// 64-bit integers as strings or numbers, enums by name or number) with one exception: trace_id
// and span_id are hex, not base64. Bodies that mention them are rewritten (hex -> base64) before
// protobuf's JSON parser sees them; others go straight to it.
#include <google/protobuf/util/json_util.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ingest/otlp.h"
#include "ingest/proto/otlp/metrics_service.pb.h"
#include "ingest/proto/otlp/status.pb.h"

namespace tidemark::ingest {
namespace {

namespace otlp_collector = ::opentelemetry::proto::collector::metrics::v1;

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Inflates a gzip stream (one or more members) into `out`, refusing more than `limit` bytes.
absl::Status Gunzip(std::string_view in, size_t limit, std::string* out) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError("gzip: cannot initialise zlib");
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT_MAX));
  out->clear();
  char buf[64 * 1024];
  int rc = Z_OK;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    size_t produced = sizeof(buf) - zs.avail_out;
    if (out->size() + produced > limit) {
      inflateEnd(&zs);
      return absl::ResourceExhaustedError(absl::StrCat(
          "decompressed request body exceeds the limit of ", limit, " bytes"));
    }
    out->append(buf, produced);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      // Another gzip member follows.
      if (inflateReset(&zs) != Z_OK) break;
      continue;
    }
    if (zs.avail_in == 0 && produced == 0) {
      rc = Z_BUF_ERROR;  // truncated stream
      break;
    }
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gzip: corrupt or truncated body (", in.size(), " compressed bytes",
        zs.msg != nullptr ? absl::StrCat(": ", zs.msg) : std::string(), ")"));
  }
  return absl::OkStatus();
}

bool IsIdKey(const std::string& key) {
  return key == "traceId" || key == "spanId" || key == "trace_id" || key == "span_id";
}

// Rewrites hex trace/span ids to base64 everywhere in `j`.
absl::Status RewriteIds(nlohmann::json& j) {
  if (j.is_array()) {
    for (auto& e : j) {
      if (absl::Status s = RewriteIds(e); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (!j.is_object()) return absl::OkStatus();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (IsIdKey(it.key()) && it.value().is_string()) {
      const std::string& hex = it.value().get_ref<const std::string&>();
      if (hex.size() % 2 != 0 ||
          !std::all_of(hex.begin(), hex.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; })) {
        return absl::InvalidArgumentError(absl::StrCat(
            "OTLP JSON: ", it.key(), " must be a hex string, got \"", hex.substr(0, 64), "\""));
      }
      it.value() = absl::Base64Escape(absl::HexStringToBytes(hex));
    } else if (absl::Status s = RewriteIds(it.value()); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ParseJson(std::string_view text, otlp_collector::ExportMetricsServiceRequest* request) {
  std::string rewritten;
  const bool has_ids = text.find("traceId") != std::string_view::npos ||
                       text.find("spanId") != std::string_view::npos ||
                       text.find("trace_id") != std::string_view::npos ||
                       text.find("span_id") != std::string_view::npos;
  if (has_ids) {
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr,
                                             /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError("decode OTLP JSON: not valid JSON");
    }
    if (absl::Status s = RewriteIds(j); !s.ok()) return s;
    try {
      rewritten = j.dump();
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("decode OTLP JSON: ", e.what()));
    }
    text = rewritten;
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), request, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode OTLP JSON: ", std::string(status.message().data(), status.message().size())));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OtlpEncoding> OtlpEncodingOf(std::string_view content_type) {
  std::string_view media = TrimSpace(content_type.substr(0, content_type.find(';')));
  if (EqualsIgnoreCase(media, "application/x-protobuf")) return OtlpEncoding::kProtobuf;
  if (EqualsIgnoreCase(media, "application/json")) return OtlpEncoding::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported Content-Type \"", std::string(content_type),
                   "\": OTLP/HTTP takes application/x-protobuf or application/json"));
}

std::string_view OtlpContentType(OtlpEncoding encoding) {
  return encoding == OtlpEncoding::kJson ? "application/json" : "application/x-protobuf";
}

absl::Status CheckOtlpContentEncoding(std::string_view content_encoding) {
  std::string_view e = TrimSpace(content_encoding);
  if (e.empty() || EqualsIgnoreCase(e, "identity") || EqualsIgnoreCase(e, "gzip")) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported Content-Encoding \"", std::string(content_encoding),
                   "\": OTLP/HTTP takes gzip or none"));
}

absl::Status DecodeOtlpRequest(std::string_view body, OtlpEncoding encoding,
                               std::string_view content_encoding, size_t max_decoded_bytes,
                               otlp_collector::ExportMetricsServiceRequest* request) {
  if (absl::Status s = CheckOtlpContentEncoding(content_encoding); !s.ok()) return s;
  std::string inflated;
  if (EqualsIgnoreCase(TrimSpace(content_encoding), "gzip")) {
    if (absl::Status s = Gunzip(body, max_decoded_bytes, &inflated); !s.ok()) return s;
    body = inflated;
  } else if (body.size() > max_decoded_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "request body of ", body.size(), " bytes exceeds the limit of ", max_decoded_bytes));
  }
  if (encoding == OtlpEncoding::kJson) return ParseJson(body, request);
  if (body.size() > static_cast<size_t>(INT_MAX) ||
      !request->ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "decode protobuf: not a valid ExportMetricsServiceRequest (", body.size(), " bytes)"));
  }
  return absl::OkStatus();
}

std::string EncodeOtlpResponse(const OtlpResult& result, OtlpEncoding encoding) {
  std::string out;
  if (result.status.ok()) {
    otlp_collector::ExportMetricsServiceResponse response;
    if (result.points_rejected > 0 || !result.error_message.empty()) {
      auto* partial = response.mutable_partial_success();
      partial->set_rejected_data_points(result.points_rejected);
      partial->set_error_message(result.error_message);
    }
    if (encoding == OtlpEncoding::kJson) {
      (void)google::protobuf::util::MessageToJsonString(response, &out);
    } else {
      response.SerializeToString(&out);
    }
    return out;
  }
  rpc::Status status;
  status.set_code(static_cast<int32_t>(result.status.code()));
  status.set_message(std::string(result.status.message()));
  if (encoding == OtlpEncoding::kJson) {
    (void)google::protobuf::util::MessageToJsonString(status, &out);
  } else {
    status.SerializeToString(&out);
  }
  return out;
}

}  // namespace tidemark::ingest
