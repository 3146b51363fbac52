// Prometheus remote write 1.0 and 2.0: snappy block -> prompb.WriteRequest (decoded in place by
// ingest/rw1_decode.h, views into the decoded body) or writev2.Request (libprotobuf) ->
// Appender, then exemplars and metadata -> SideStore.
//
// Order of checks: headers, framed-snappy magic, compressed and declared decoded size against
// the limit (before any allocation), snappy decode, protobuf parse (1.0: the whole request
// before anything is appended; 2.0: into an arena), then per
// series: histograms refused, labels validated (2.0: every symbol reference checked first),
// samples appended. The first failure rolls back. Exemplars and metadata are stored only after
// the samples are committed.
#include "ingest/remote_write.h"

#include <google/protobuf/arena.h>
#include <snappy.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ingest/proto/remote_write2.pb.h"
#include "ingest/rw1_decode.h"
#include "storage/labels.h"

namespace tidemark::ingest {
namespace {

namespace writev2 = ::tidemark::ingest::writev2;

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

absl::StatusOr<RemoteWriteVersion> ContentTypeVersion(std::string_view content_type) {
  std::string_view rest = content_type;
  size_t semi = rest.find(';');
  std::string_view media = TrimSpace(rest.substr(0, semi));
  rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
  if (media.empty() && TrimSpace(rest).empty()) return RemoteWriteVersion::k1;
  if (!EqualsIgnoreCase(media, "application/x-protobuf")) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported Content-Type \"", Str(content_type),
                     "\": remote write expects application/x-protobuf"));
  }
  RemoteWriteVersion version = RemoteWriteVersion::k1;
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
    if (value == kRemoteWrite1Proto) {
      version = RemoteWriteVersion::k1;
    } else if (value == kRemoteWrite2Proto) {
      version = RemoteWriteVersion::k2;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unsupported proto \"", Str(value), "\" in Content-Type: expected ",
          Str(kRemoteWrite1Proto), " or ", Str(kRemoteWrite2Proto)));
    }
  }
  return version;
}

absl::Status CheckContentEncoding(std::string_view content_encoding) {
  std::string_view enc = TrimSpace(content_encoding);
  if (enc.empty() || EqualsIgnoreCase(enc, "snappy")) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported Content-Encoding \"", Str(content_encoding),
                   "\": remote write bodies are snappy (block format) compressed"));
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

std::string DescribeSeries(const Labels& labels) { return DescribeSeries(labels.items()); }

std::string DescribeSeries(std::span<const LabelView> labels) {
  std::string s = Labels::FromViewsUnchecked(labels).ToString();
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

// Exemplars of one series and metadata of one metric family, kept until the samples are in.
struct SeriesExemplarBatch {
  Labels series;
  std::vector<Exemplar> exemplars;
};
struct SideData {
  std::vector<SeriesExemplarBatch> exemplars;
  std::map<std::string, MetricMetadata> metadata;  // first one of a family wins
};

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n;  // continuation bytes
    uint32_t cp;
    if (c < 0x80) {
      n = 0;
      cp = c;
    } else if ((c >> 5) == 0x6) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c >> 4) == 0xe) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c >> 3) == 0x1e) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n >= s.size() - i) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Records metadata of `family` unless it says nothing or is not valid text.
void AddMetadata(SideData& side, std::string family, MetricMetadata md) {
  if (family.empty() || !IsValidUtf8(family) || !IsValidUtf8(md.help) ||
      !IsValidUtf8(md.unit)) {
    return;
  }
  if (md.type == "unknown" && md.help.empty() && md.unit.empty()) return;
  side.metadata.emplace(std::move(family), std::move(md));
}

// Stores the side data after the samples are committed; counts what was stored.
absl::Status StoreSide(SideStore* store, const SideData& side, WriteResult& result) {
  if (store == nullptr) return absl::OkStatus();
  for (const SeriesExemplarBatch& batch : side.exemplars) {
    absl::Status s = store->AppendExemplars(batch.series, batch.exemplars);
    if (s.ok()) {
      result.exemplars_written += static_cast<int64_t>(batch.exemplars.size());
      continue;
    }
    if (!absl::IsInvalidArgument(s)) return s;
    // One invalid exemplar refuses the batch: store the others one by one, skip the invalid.
    for (const Exemplar& e : batch.exemplars) {
      absl::Status one = store->AppendExemplars(batch.series, std::span<const Exemplar>(&e, 1));
      if (one.ok()) {
        ++result.exemplars_written;
      } else if (!absl::IsInvalidArgument(one)) {
        return one;
      }
    }
  }
  for (const auto& [family, md] : side.metadata) {
    absl::Status s = store->PutMetadata(family, md);
    if (s.ok()) {
      ++result.metadata_written;
    } else if (!absl::IsInvalidArgument(s)) {
      return s;
    }
  }
  return absl::OkStatus();
}

std::string MetricTypeName(int type) {
  switch (type) {
    case 1: return "counter";
    case 2: return "gauge";
    case 3: return "histogram";
    case 4: return "gaugehistogram";
    case 5: return "summary";
    case 6: return "info";
    case 7: return "stateset";
    default: return "unknown";
  }
}

// The snappy-decoded body into *decoded, or the failure for the sender.
absl::Status DecodeBodyInto(std::string_view body, std::string_view content_encoding,
                            const WriteLimits& limits, std::string* decoded) {
  if (absl::Status s = CheckContentEncoding(content_encoding); !s.ok()) return s;
  if (body.substr(0, kFramedSnappyMagic.size()) == kFramedSnappyMagic) {
    return absl::InvalidArgumentError(
        "snappy framed format is not supported; use the block format");
  }
  const size_t max_decoded = std::min<size_t>(limits.max_decoded_bytes, INT_MAX);
  if (body.size() > snappy::MaxCompressedLength(max_decoded)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("request body of ", body.size(), " bytes exceeds the limit of ",
                     max_decoded, " decoded bytes"));
  }
  size_t decoded_size = 0;
  if (!snappy::GetUncompressedLength(body.data(), body.size(), &decoded_size)) {
    return absl::InvalidArgumentError(
        "decode snappy: corrupt input (bad length header; the body must be snappy "
        "block-compressed)");
  }
  if (decoded_size > max_decoded) {
    return absl::ResourceExhaustedError(
        absl::StrCat("decoded request body of ", decoded_size, " bytes exceeds the limit of ",
                     max_decoded, " bytes"));
  }
  decoded->resize(decoded_size);
  if (!snappy::RawUncompress(body.data(), body.size(), decoded->data())) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode snappy: corrupt input (", body.size(), " compressed bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> DecodeBody(std::string_view body, std::string_view content_encoding,
                                       const WriteLimits& limits) {
  std::string decoded;
  if (absl::Status s = DecodeBodyInto(body, content_encoding, limits, &decoded); !s.ok()) {
    return s;
  }
  return decoded;
}

// Remote write 1.0's decoded body and its decoded form, reused by the next request.
struct Rw1Scratch {
  std::string decoded;
  internal::Rw1Request request;
};

// A few Rw1Scratch for the requests being handled, taken most recently returned first.
// Allocated afresh per request, these buffers (hundreds of KB each) went through glibc's heap
// above its mmap threshold and left holes there. One per request thread would hold as many as
// the server has threads; a pool holds as many as requests ran at once (at most kKeep).
class Rw1ScratchPool {
 public:
  static constexpr size_t kKeep = 8;
  static constexpr size_t kKeepBytes = 4 << 20;  // larger buffers are let go after the request

  std::unique_ptr<Rw1Scratch> Take() {
    {
      absl::MutexLock lock(&mu_);
      if (!free_.empty()) {
        std::unique_ptr<Rw1Scratch> s = std::move(free_.back());
        free_.pop_back();
        return s;
      }
    }
    return std::make_unique<Rw1Scratch>();
  }
  void Return(std::unique_ptr<Rw1Scratch> s) {
    if (s->decoded.capacity() > kKeepBytes ||
        s->request.labels.capacity() * sizeof(internal::Rw1Label) > kKeepBytes) {
      return;  // freed
    }
    absl::MutexLock lock(&mu_);
    if (free_.size() < kKeep) free_.push_back(std::move(s));
  }

 private:
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Rw1Scratch>> free_ ABSL_GUARDED_BY(mu_);
};

Rw1ScratchPool& ScratchPool() {
  static auto* pool = new Rw1ScratchPool();
  return *pool;
}

}  // namespace

absl::Status CheckRemoteWriteHeaders(std::string_view content_type,
                                     std::string_view content_encoding) {
  if (auto v = ContentTypeVersion(content_type); !v.ok()) return v.status();
  return CheckContentEncoding(content_encoding);
}

absl::StatusOr<RemoteWriteVersion> RemoteWriteVersionOf(std::string_view content_type) {
  return ContentTypeVersion(content_type);
}

bool IsRemoteWrite1ContentType(std::string_view content_type) {
  auto v = ContentTypeVersion(content_type);
  return v.ok() && *v == RemoteWriteVersion::k1;
}

std::unique_ptr<SideStore> DBSideStore(DB& db, std::string_view tenant) {
  class Store : public SideStore {
   public:
    Store(DB& db, std::string_view tenant) : db_(db), tenant_(tenant) {}
    absl::Status PutMetadata(std::string_view metric, const MetricMetadata& md) override {
      return db_.PutMetadata(tenant_, metric, md);
    }
    absl::Status AppendExemplars(const Labels& series,
                                 std::span<const Exemplar> exemplars) override {
      return db_.AppendExemplars(tenant_, series, exemplars);
    }

   private:
    DB& db_;
    const std::string tenant_;
  };
  return std::make_unique<Store>(db, tenant);
}

namespace {

// Appends one series' samples; on failure rolls back and returns the result to send.
// `labels`: Labels, or views of valid-looking labels in canonical order.
template <typename LabelSet>
std::optional<WriteResult> AppendSamples(const LabelSet& labels,
                                         std::span<const internal::Rw1Sample> samples,
                                         Appender& appender, WriteResult& result,
                                         int64_t total_samples) {
  for (const internal::Rw1Sample& sample : samples) {
    const int64_t t = sample.timestamp;
    absl::Status s = appender.Append(labels, t, sample.value);
    if (s.ok()) continue;
    std::string where =
        absl::StrCat(" (series ", DescribeSeries(labels), ", timestamp ", t, ")");
    appender.Rollback();
    if (IsRejection(s)) {
      result.reject_reason = RejectReasonOf(s);
      result.samples_rejected = total_samples;
      return Fail(std::move(result),
                  absl::InvalidArgumentError(absl::StrCat(s.message(), where)));
    }
    return Fail(std::move(result),
                absl::Status(s.code(), absl::StrCat("append: ", s.message(), where)));
  }
  return std::nullopt;
}

// Commits, then stores the side data; the result to send.
WriteResult Finish(WriteResult result, Appender& appender, int64_t total_samples,
                   SideStore* store, const SideData& side) {
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
  if (absl::Status s = StoreSide(store, side, result); !s.ok()) {
    return Fail(std::move(result),
                absl::Status(s.code(), absl::StrCat("store exemplars and metadata: ",
                                                    s.message())));
  }
  result.status = absl::OkStatus();
  return result;
}

}  // namespace

WriteResult HandleRemoteWrite(std::string_view body, std::string_view content_encoding,
                              const WriteLimits& limits, Appender& appender, SideStore* store) {
  struct Borrowed {
    std::unique_ptr<Rw1Scratch> s = ScratchPool().Take();
    ~Borrowed() { ScratchPool().Return(std::move(s)); }
  } scratch;
  WriteResult result;
  std::string* decoded = &scratch.s->decoded;
  if (absl::Status s = DecodeBodyInto(body, content_encoding, limits, decoded); !s.ok()) {
    return Fail(std::move(result), s);
  }

  // --- protobuf: views into *decoded, which lives until the end ---
  internal::Rw1Request& request = scratch.s->request;
  if (absl::Status s = internal::DecodeRw1WriteRequest(*decoded, &request); !s.ok()) {
    return Fail(std::move(result),
                absl::InvalidArgumentError(absl::StrCat(
                    "decode protobuf: not a valid prometheus.WriteRequest (", decoded->size(),
                    " decoded bytes): ", s.message())));
  }

  const auto total_samples = static_cast<int64_t>(request.samples.size());
  result.series = static_cast<int64_t>(request.series.size());

  // Refusals of the request as a whole: every sample in it is rejected, nothing is stored.
  auto reject = [&](RejectReason reason, absl::Status status) {
    appender.Rollback();
    result.reject_reason = reason;
    result.samples_rejected = total_samples;
    return Fail(std::move(result), std::move(status));
  };

  // --- series ---
  // Labels stay views into *decoded: the appender copies them only for a series it does not
  // hold, and validates those (a known one was valid when it was made).
  appender.Reserve(request.series.size());
  SideData side;
  for (const internal::Rw1Series& ts : request.series) {
    const std::span<const LabelView> labels = request.LabelsOf(ts);
    if (labels.empty()) {
      return reject(RejectReason::kInvalidLabels,
                    absl::InvalidArgumentError("invalid labels: series with no labels"));
    }
    // Checked here only for a series without samples (exemplars alone).
    if (ts.samples_end == ts.samples_begin) {
      if (absl::Status s = Labels::Validate(Labels::FromViewsUnchecked(labels).items());
          !s.ok()) {
        return reject(RejectReason::kInvalidLabels,
                      absl::InvalidArgumentError(absl::StrCat(
                          s.message(), " (series ", DescribeSeries(labels), ")")));
      }
    }
    if (ts.histograms > 0) {
      return reject(RejectReason::kNone,
                    absl::InvalidArgumentError(absl::StrCat(
                        "native histograms are not supported yet (series ",
                        DescribeSeries(labels),
                        "); disable send_native_histograms for this remote write")));
    }
    if (auto failed =
            AppendSamples(labels, request.SamplesOf(ts), appender, result, total_samples)) {
      return *std::move(failed);
    }
    if (ts.exemplars_end > ts.exemplars_begin && store != nullptr) {
      SeriesExemplarBatch batch{Labels::FromViewsUnchecked(labels), {}};
      for (const internal::Rw1Exemplar& e : request.ExemplarsOf(ts)) {
        std::vector<Label> el;
        el.reserve(e.labels_end - e.labels_begin);
        for (const internal::Rw1Label& l : request.LabelsOf(e)) {
          el.push_back(Label{std::string(l.name), std::string(l.value)});
        }
        batch.exemplars.push_back(
            Exemplar{Labels::FromUnsorted(std::move(el)), e.value, e.timestamp});
      }
      side.exemplars.push_back(std::move(batch));
    }
  }
  if (store != nullptr) {
    for (const internal::Rw1Metadata& md : request.metadata) {
      AddMetadata(side, std::string(md.metric_family_name),
                  MetricMetadata{MetricTypeName(md.type), std::string(md.help),
                                 std::string(md.unit)});
    }
  }
  return Finish(std::move(result), appender, total_samples, store, side);
}

namespace {

// The metric family of a series for metadata: `__name__` without the suffixes of the series
// a histogram or summary is made of.
std::string FamilyName(std::string_view name, std::string_view type) {
  if (type == "histogram" || type == "gaugehistogram" || type == "summary") {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) {
        return std::string(name.substr(0, name.size() - suffix.size()));
      }
    }
  }
  return std::string(name);
}

// Resolves pairs of symbol references into labels; `what` names them in errors.
absl::Status ResolveLabels(const google::protobuf::RepeatedField<uint32_t>& refs,
                           const google::protobuf::RepeatedPtrField<std::string>& symbols,
                           std::string_view what, std::vector<Label>* out) {
  if (refs.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        Str(what), ": odd number of labels_refs (", refs.size(), "); they come in pairs"));
  }
  out->clear();
  out->reserve(refs.size() / 2);
  for (int i = 0; i < refs.size(); i += 2) {
    for (int k : {i, i + 1}) {
      if (refs[k] >= static_cast<uint32_t>(symbols.size())) {
        return absl::InvalidArgumentError(absl::StrCat(
            Str(what), ": labels_refs[", k, "] = ", refs[k],
            " is out of bounds of the symbols table (", symbols.size(), " symbols)"));
      }
    }
    out->push_back(Label{symbols[static_cast<int>(refs[i])],
                         symbols[static_cast<int>(refs[i + 1])]});
  }
  return absl::OkStatus();
}

}  // namespace

WriteResult HandleRemoteWrite2(std::string_view body, std::string_view content_encoding,
                               const WriteLimits& limits, Appender& appender,
                               SideStore* store) {
  WriteResult result;
  absl::StatusOr<std::string> decoded = DecodeBody(body, content_encoding, limits);
  if (!decoded.ok()) return Fail(std::move(result), decoded.status());

  google::protobuf::Arena arena;
  auto* request = google::protobuf::Arena::CreateMessage<writev2::Request>(&arena);
  if (!request->ParseFromArray(decoded->data(), static_cast<int>(decoded->size()))) {
    return Fail(std::move(result),
                absl::InvalidArgumentError(absl::StrCat(
                    "decode protobuf: not a valid io.prometheus.write.v2.Request (",
                    decoded->size(), " decoded bytes)")));
  }
  *decoded = std::string();
  const auto& symbols = request->symbols();

  int64_t total_samples = 0;
  for (const writev2::TimeSeries& ts : request->timeseries()) total_samples += ts.samples_size();
  result.series = request->timeseries_size();
  auto refuse = [&](RejectReason reason, absl::Status status) {
    result.reject_reason = reason;
    result.samples_rejected = total_samples;
    return Fail(std::move(result), std::move(status));
  };

  // --- resolve and check everything before the first append ---
  std::vector<Labels> series_labels;
  series_labels.reserve(request->timeseries_size());
  SideData side;
  std::vector<Label> raw;
  for (int i = 0; i < request->timeseries_size(); ++i) {
    const writev2::TimeSeries& ts = request->timeseries(i);
    const std::string what = absl::StrCat("timeseries[", i, "]");
    if (absl::Status s = ResolveLabels(ts.labels_refs(), symbols, what, &raw); !s.ok()) {
      return refuse(RejectReason::kInvalidLabels, s);
    }
    if (raw.empty()) {
      return refuse(RejectReason::kInvalidLabels,
                    absl::InvalidArgumentError(
                        absl::StrCat("invalid labels: ", what, " has no labels")));
    }
    if (absl::Status s = Labels::Validate(raw); !s.ok()) {
      return refuse(RejectReason::kInvalidLabels,
                    absl::InvalidArgumentError(absl::StrCat(
                        s.message(), " (series ", DescribeSeries(raw), ")")));
    }
    if (ts.histograms_size() > 0) {
      return refuse(RejectReason::kNone,
                    absl::InvalidArgumentError(absl::StrCat(
                        "native histograms are not supported yet (series ", DescribeSeries(raw),
                        "); disable send_native_histograms for this remote write")));
    }
    Labels labels = Labels::FromSortedUnchecked(std::move(raw));
    raw = std::vector<Label>();
    if (ts.has_metadata()) {
      const writev2::Metadata& md = ts.metadata();
      for (uint32_t ref : {md.help_ref(), md.unit_ref()}) {
        if (ref >= static_cast<uint32_t>(symbols.size())) {
          return refuse(RejectReason::kNone,
                        absl::InvalidArgumentError(absl::StrCat(
                            what, ": metadata reference ", ref,
                            " is out of bounds of the symbols table (", symbols.size(),
                            " symbols)")));
        }
      }
      if (store != nullptr) {
        std::string type = MetricTypeName(md.type());
        AddMetadata(side, FamilyName(labels.MetricName(), type),
                    MetricMetadata{type, symbols[static_cast<int>(md.help_ref())],
                                   symbols[static_cast<int>(md.unit_ref())]});
      }
    }
    if (ts.exemplars_size() > 0) {
      SeriesExemplarBatch batch{labels, {}};
      for (int j = 0; j < ts.exemplars_size(); ++j) {
        const writev2::Exemplar& e = ts.exemplars(j);
        std::vector<Label> el;
        if (absl::Status s = ResolveLabels(e.labels_refs(), symbols,
                                           absl::StrCat(what, ".exemplars[", j, "]"), &el);
            !s.ok()) {
          return refuse(RejectReason::kNone, s);
        }
        batch.exemplars.push_back(
            Exemplar{Labels::FromUnsorted(std::move(el)), e.value(), e.timestamp()});
      }
      if (store != nullptr) side.exemplars.push_back(std::move(batch));
    }
    series_labels.push_back(std::move(labels));
  }

  // --- append ---
  std::vector<internal::Rw1Sample> samples;
  for (int i = 0; i < request->timeseries_size(); ++i) {
    samples.clear();
    for (const writev2::Sample& sample : request->timeseries(i).samples()) {
      samples.push_back(internal::Rw1Sample{sample.value(), sample.timestamp()});
    }
    if (auto failed = AppendSamples(series_labels[static_cast<size_t>(i)], samples, appender,
                                    result, total_samples)) {
      return *std::move(failed);
    }
  }
  return Finish(std::move(result), appender, total_samples, store, side);
}

}  // namespace tidemark::ingest
