// Prometheus remote write 1.0: snappy block -> prompb.WriteRequest -> Appender.
//
// Order of checks: headers, framed-snappy magic, compressed and declared decoded size against
// the limit (before any allocation), snappy decode, protobuf parse (into an arena), then per
// series: histograms refused, labels validated, samples appended. The first failure rolls back.
#include "ingest/remote_write.h"

#include <google/protobuf/arena.h>
#include <snappy.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ingest/proto/remote_write.pb.h"
#include "storage/labels.h"

namespace tidemark::ingest {
namespace {

namespace prompb = ::tidemark::ingest::prompb;

// A snappy framing-format stream opens with this stream-identifier chunk.
constexpr std::string_view kFramedSnappyMagic("\xff\x06\x00\x00sNaPpY", 10);

constexpr std::string_view kRemoteWrite1Proto = "prometheus.WriteRequest";
constexpr std::string_view kRemoteWrite2Proto = "io.prometheus.write.v2.Request";

// Error messages name a series; a label value may be huge, so the rendering is cut.
constexpr size_t kMaxSeriesInMessage = 512;

std::string Str(std::string_view sv) { return std::string(sv); }

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

absl::Status CheckContentType(std::string_view content_type) {
  std::string_view rest = content_type;
  size_t semi = rest.find(';');
  std::string_view media = TrimSpace(rest.substr(0, semi));
  rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
  if (media.empty() && TrimSpace(rest).empty()) return absl::OkStatus();
  if (!EqualsIgnoreCase(media, "application/x-protobuf")) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported Content-Type \"", Str(content_type),
                     "\": remote write 1.0 expects application/x-protobuf"));
  }
  while (!rest.empty()) {
    semi = rest.find(';');
    std::string_view param = TrimSpace(rest.substr(0, semi));
    rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
    size_t eq = param.find('=');
    if (eq == std::string_view::npos) continue;
    if (!EqualsIgnoreCase(TrimSpace(param.substr(0, eq)), "proto")) continue;
    std::string_view value = TrimSpace(param.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (value == kRemoteWrite1Proto) continue;
    if (value == kRemoteWrite2Proto) {
      return absl::UnimplementedError(
          absl::StrCat("remote write 2.0 (proto=", Str(kRemoteWrite2Proto),
                       ") is not supported yet; send remote write 1.0 (proto=",
                       Str(kRemoteWrite1Proto), ")"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported proto \"", Str(value), "\" in Content-Type: expected ",
        Str(kRemoteWrite1Proto)));
  }
  return absl::OkStatus();
}

absl::Status CheckContentEncoding(std::string_view content_encoding) {
  std::string_view enc = TrimSpace(content_encoding);
  if (enc.empty() || EqualsIgnoreCase(enc, "snappy")) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported Content-Encoding \"", Str(content_encoding),
                   "\": remote write 1.0 bodies are snappy (block format) compressed"));
}

// `{a="1", b="2"}` of the labels as received (possibly invalid), cut to a readable length.
std::string DescribeSeries(const std::vector<Label>& labels) {
  std::string s = Labels::FromSortedUnchecked(labels).ToString();
  if (s.size() > kMaxSeriesInMessage) {
    s.resize(kMaxSeriesInMessage);
    s += "...";
  }
  return s;
}

WriteResult Fail(WriteResult result, absl::Status status) {
  result.status = std::move(status);
  return result;
}

// True when `status` from Append or Commit means "this sample can never be stored" (400), as
// opposed to trouble a retry may cure.
bool IsRejection(const absl::Status& status) {
  return RejectReasonOf(status) != RejectReason::kNone ||
         status.code() == absl::StatusCode::kInvalidArgument;
}

}  // namespace

absl::Status CheckRemoteWriteHeaders(std::string_view content_type,
                                     std::string_view content_encoding) {
  if (absl::Status s = CheckContentType(content_type); !s.ok()) return s;
  return CheckContentEncoding(content_encoding);
}

bool IsRemoteWrite1ContentType(std::string_view content_type) {
  return CheckContentType(content_type).ok();
}

WriteResult HandleRemoteWrite(std::string_view body, std::string_view content_encoding,
                              const WriteLimits& limits, Appender& appender) {
  WriteResult result;
  if (absl::Status s = CheckContentEncoding(content_encoding); !s.ok()) {
    return Fail(std::move(result), std::move(s));
  }

  // --- snappy block format ---
  if (body.substr(0, kFramedSnappyMagic.size()) == kFramedSnappyMagic) {
    return Fail(std::move(result),
                absl::InvalidArgumentError(
                    "snappy framed format is not supported; use the block format"));
  }
  const size_t max_decoded = std::min<size_t>(limits.max_decoded_bytes, INT_MAX);
  if (body.size() > snappy::MaxCompressedLength(max_decoded)) {
    return Fail(std::move(result),
                absl::ResourceExhaustedError(absl::StrCat(
                    "request body of ", body.size(), " bytes exceeds the limit of ",
                    max_decoded, " decoded bytes")));
  }
  size_t decoded_size = 0;
  if (!snappy::GetUncompressedLength(body.data(), body.size(), &decoded_size)) {
    return Fail(std::move(result),
                absl::InvalidArgumentError(
                    "decode snappy: corrupt input (bad length header; the body must be "
                    "snappy block-compressed)"));
  }
  if (decoded_size > max_decoded) {
    return Fail(std::move(result),
                absl::ResourceExhaustedError(absl::StrCat(
                    "decoded request body of ", decoded_size, " bytes exceeds the limit of ",
                    max_decoded, " bytes")));
  }
  std::unique_ptr<char[]> decoded = std::make_unique_for_overwrite<char[]>(decoded_size + 1);
  if (!snappy::RawUncompress(body.data(), body.size(), decoded.get())) {
    return Fail(std::move(result),
                absl::InvalidArgumentError(absl::StrCat(
                    "decode snappy: corrupt input (", body.size(), " compressed bytes)")));
  }

  // --- protobuf ---
  google::protobuf::Arena arena;
  auto* request = google::protobuf::Arena::CreateMessage<prompb::WriteRequest>(&arena);
  if (!request->ParseFromArray(decoded.get(), static_cast<int>(decoded_size))) {
    return Fail(std::move(result),
                absl::InvalidArgumentError(absl::StrCat(
                    "decode protobuf: not a valid prometheus.WriteRequest (", decoded_size,
                    " decoded bytes)")));
  }
  decoded.reset();

  int64_t total_samples = 0;
  for (const prompb::TimeSeries& ts : request->timeseries()) total_samples += ts.samples_size();
  result.series = request->timeseries_size();

  // Refusals of the request as a whole: every sample in it is rejected, nothing is stored.
  auto reject = [&](RejectReason reason, absl::Status status) {
    appender.Rollback();
    result.reject_reason = reason;
    result.samples_rejected = total_samples;
    return Fail(std::move(result), std::move(status));
  };

  // --- series ---
  std::vector<Label> raw;
  for (prompb::TimeSeries& ts : *request->mutable_timeseries()) {
    raw.clear();
    raw.reserve(ts.labels_size());
    for (prompb::Label& l : *ts.mutable_labels()) {
      raw.push_back(Label{std::move(*l.mutable_name()), std::move(*l.mutable_value())});
    }
    if (raw.empty()) {
      return reject(RejectReason::kInvalidLabels,
                    absl::InvalidArgumentError("invalid labels: series with no labels"));
    }
    if (absl::Status s = Labels::Validate(raw); !s.ok()) {
      return reject(RejectReason::kInvalidLabels,
                    absl::InvalidArgumentError(absl::StrCat(
                        s.message(), " (series ", DescribeSeries(raw), ")")));
    }
    if (ts.histograms_size() > 0) {
      return reject(RejectReason::kNone,
                    absl::InvalidArgumentError(absl::StrCat(
                        "native histograms are not supported yet (series ", DescribeSeries(raw),
                        "); disable send_native_histograms for this remote write")));
    }
    const Labels labels = Labels::FromSortedUnchecked(std::move(raw));
    for (const prompb::Sample& sample : ts.samples()) {
      absl::Status s = appender.Append(labels, sample.timestamp(), sample.value());
      if (s.ok()) continue;
      std::string where = absl::StrCat(" (series ", DescribeSeries(labels.items()),
                                       ", timestamp ", sample.timestamp(), ")");
      if (IsRejection(s)) {
        return reject(RejectReasonOf(s), absl::InvalidArgumentError(
                                             absl::StrCat(s.message(), where)));
      }
      appender.Rollback();
      return Fail(std::move(result),
                  absl::Status(s.code(), absl::StrCat("append: ", s.message(), where)));
    }
    raw = std::vector<Label>();  // moved from above; start afresh
  }

  // --- commit ---
  if (total_samples > 0) {
    absl::Status s = appender.Commit();
    if (!s.ok()) {
      if (IsRejection(s)) {
        result.reject_reason = RejectReasonOf(s);
        result.samples_rejected = total_samples;
        return Fail(std::move(result), absl::InvalidArgumentError(s.message()));
      }
      return Fail(std::move(result),
                  absl::Status(s.code(), absl::StrCat("commit: ", s.message())));
    }
  }
  result.samples_accepted = total_samples;
  result.status = absl::OkStatus();
  return result;
}

}  // namespace tidemark::ingest
