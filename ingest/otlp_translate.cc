// OTLP metrics -> Prometheus series, appended through an Appender.
//
// Per resource: job/instance from service.namespace/service.name/service.instance.id, promoted
// resource attributes, and a target_info series of the other resource attributes. Per scope:
// otel_scope_* labels. Per metric: the family name (otlp_naming.h) and one or more series per
// data point, by type:
//   gauge, non-monotonic sum      -> <name>
//   monotonic sum                 -> <name> (ending in _total), [<name>_created]
//   histogram                     -> <name>_bucket{le} (cumulative, +Inf), _sum, _count, [_created]
//   exponential histogram         -> the same, classic buckets at max scale options.exponential_...
//   summary                       -> <name>{quantile}, _sum, _count, [_created]
// Delta sums and histograms are turned into cumulative ones with DeltaState running totals.
// NoRecordedValue points become stale markers. After the commit, metric metadata and the
// exemplars of sums and histograms go to the SideStore.
#include <google/protobuf/arena.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ingest/otlp.h"
#include "ingest/otlp_delta.h"
#include "ingest/otlp_naming.h"
#include "ingest/proto/otlp/metrics_service.pb.h"
#include "storage/labels.h"
#include "storage/sample.h"

namespace tidemark::ingest {
namespace {

namespace otlp_collector = ::opentelemetry::proto::collector::metrics::v1;
namespace otlp_metrics = ::opentelemetry::proto::metrics::v1;
namespace otlp_common = ::opentelemetry::proto::common::v1;
using google::protobuf::RepeatedPtrField;
using internal::DeltaState;
using internal::ExpBuckets;

constexpr std::string_view kServiceName = "service.name";
constexpr std::string_view kServiceNamespace = "service.namespace";
constexpr std::string_view kServiceInstanceId = "service.instance.id";
constexpr std::string_view kDeltaKeyPrefix = "otlp/d2c/";
constexpr uint32_t kNoRecordedValue = 1;
constexpr size_t kMaxMessages = 5;
constexpr int32_t kMinScale = -10;
constexpr int32_t kMaxScale = 20;
// Prometheus's limit on an exemplar's label set (names and values, in characters).
constexpr size_t kMaxExemplarRunes = 128;
// At most this many target_info samples (one every lookback_delta/2) per resource and request.
constexpr int64_t kMaxTargetInfoSamples = 1000;

// Go's strconv.FormatFloat(v, 'f', -1, 64), as Prometheus writes le and quantile values.
std::string FormatFixed(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[400];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  if (ec != std::errc()) return absl::StrCat(v);
  return std::string(buf, end);
}

std::string FormatShortest(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return absl::StrCat(v);
  return std::string(buf, end);
}

void AppendJsonQuoted(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void AppendAnyJson(std::string& out, const otlp_common::AnyValue& v);

// An attribute value as a label value (pcommon's AsString): strings as they are, numbers and
// booleans spelled out, bytes in base64, arrays and maps as JSON.
std::string AsString(const otlp_common::AnyValue& v) {
  switch (v.value_case()) {
    case otlp_common::AnyValue::kStringValue: return v.string_value();
    case otlp_common::AnyValue::kBoolValue: return v.bool_value() ? "true" : "false";
    case otlp_common::AnyValue::kIntValue: return absl::StrCat(v.int_value());
    case otlp_common::AnyValue::kDoubleValue: return FormatShortest(v.double_value());
    case otlp_common::AnyValue::kBytesValue: return absl::Base64Escape(v.bytes_value());
    case otlp_common::AnyValue::kArrayValue:
    case otlp_common::AnyValue::kKvlistValue: {
      std::string out;
      AppendAnyJson(out, v);
      return out;
    }
    case otlp_common::AnyValue::VALUE_NOT_SET: return "";
  }
  return "";
}

void AppendAnyJson(std::string& out, const otlp_common::AnyValue& v) {
  switch (v.value_case()) {
    case otlp_common::AnyValue::kStringValue:
    case otlp_common::AnyValue::kBytesValue:
      AppendJsonQuoted(out, AsString(v));
      return;
    case otlp_common::AnyValue::kArrayValue: {
      out.push_back('[');
      for (int i = 0; i < v.array_value().values_size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendAnyJson(out, v.array_value().values(i));
      }
      out.push_back(']');
      return;
    }
    case otlp_common::AnyValue::kKvlistValue: {
      out.push_back('{');
      for (int i = 0; i < v.kvlist_value().values_size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendJsonQuoted(out, v.kvlist_value().values(i).key());
        out.push_back(':');
        AppendAnyJson(out, v.kvlist_value().values(i).value());
      }
      out.push_back('}');
      return;
    }
    case otlp_common::AnyValue::VALUE_NOT_SET:
      out += "null";
      return;
    default:
      out += AsString(v);
  }
}

const otlp_common::AnyValue* Find(const RepeatedPtrField<otlp_common::KeyValue>& attrs,
                                  std::string_view key) {
  for (const otlp_common::KeyValue& kv : attrs) {
    if (kv.key() == key) return &kv.value();
  }
  return nullptr;
}

int64_t ToMillis(uint64_t ns) { return static_cast<int64_t>(ns / 1'000'000); }

size_t Runes(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xc0) != 0x80;
  return n;
}

// OTLP exemplars as Prometheus's OTLP receiver builds them: labels trace_id and span_id (lower-case
// hex, when set), then the filtered attributes (names sanitised as attribute labels; empty names
// and values dropped) unless they would take the label set over 128 characters. An exemplar
// without a value is skipped; one without a timestamp takes the point's.
std::vector<Exemplar> ToExemplars(
    const RepeatedPtrField<::opentelemetry::proto::metrics::v1::Exemplar>& in, int64_t point_ms) {
  std::vector<Exemplar> out;
  out.reserve(in.size());
  for (const auto& e : in) {
    Exemplar ex;
    switch (e.value_case()) {
      case ::opentelemetry::proto::metrics::v1::Exemplar::kAsDouble: ex.value = e.as_double(); break;
      case ::opentelemetry::proto::metrics::v1::Exemplar::kAsInt:
        ex.value = static_cast<double>(e.as_int());
        break;
      default: continue;
    }
    ex.t_ms = e.time_unix_nano() != 0 ? ToMillis(e.time_unix_nano()) : point_ms;
    std::map<std::string, std::string, std::less<>> labels;
    size_t runes = 0;
    auto put_id = [&](std::string_view name, const std::string& bytes) {
      if (bytes.empty()) return;
      std::string hex = absl::BytesToHexString(bytes);
      runes += name.size() + hex.size();
      labels.emplace(std::string(name), std::move(hex));
    };
    put_id("trace_id", e.trace_id());
    put_id("span_id", e.span_id());
    std::map<std::string, std::string, std::less<>> attrs;
    size_t attr_runes = 0;
    for (const otlp_common::KeyValue& kv : e.filtered_attributes()) {
      std::string name = BuildOtlpLabelName(kv.key());
      std::string value = AsString(kv.value());
      if (name.empty() || value.empty() || labels.count(name) != 0) continue;
      auto [it, fresh] = attrs.try_emplace(name, value);
      if (fresh) {
        attr_runes += Runes(name) + Runes(value);
      } else {
        absl::StrAppend(&it->second, ";", value);
        attr_runes += 1 + Runes(value);
      }
    }
    if (runes + attr_runes <= kMaxExemplarRunes) labels.merge(attrs);
    std::vector<Label> sorted;
    sorted.reserve(labels.size());
    for (auto& [name, value] : labels) sorted.push_back(Label{name, std::move(value)});
    ex.labels = Labels::FromSortedUnchecked(std::move(sorted));
    out.push_back(std::move(ex));
  }
  return out;
}

// The Prometheus metadata type of an OTLP metric kind.
std::string_view PromType(OtlpMetricType type) {
  switch (type) {
    case OtlpMetricType::kGauge:
    case OtlpMetricType::kNonMonotonicCounter: return "gauge";
    case OtlpMetricType::kMonotonicCounter: return "counter";
    case OtlpMetricType::kHistogram:
    case OtlpMetricType::kExponentialHistogram: return "histogram";
    case OtlpMetricType::kSummary: return "summary";
  }
  return "unknown";
}

// Sorted label set under construction; later Set() calls win, Merge() joins collisions with ';'.
using LabelMap = std::map<std::string, std::string, std::less<>>;

// Adds attributes as labels: sorted by key first so that colliding keys merge in a stable order.
// Returns the first key that has no valid label name, or nullopt.
std::optional<std::string> AddAttributes(LabelMap& out,
                                         const RepeatedPtrField<otlp_common::KeyValue>& attrs,
                                         const std::vector<std::string_view>& skip = {}) {
  std::vector<const otlp_common::KeyValue*> sorted;
  sorted.reserve(attrs.size());
  for (const otlp_common::KeyValue& kv : attrs) {
    if (std::find(skip.begin(), skip.end(), kv.key()) == skip.end()) sorted.push_back(&kv);
  }
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto* a, const auto* b) { return a->key() < b->key(); });
  for (const otlp_common::KeyValue* kv : sorted) {
    std::string name = BuildOtlpLabelName(kv->key());
    if (name.empty()) return kv->key();
    std::string value = AsString(kv->value());
    auto [it, inserted] = out.try_emplace(std::move(name), value);
    if (!inserted) absl::StrAppend(&it->second, ";", value);
  }
  return std::nullopt;
}

// Labels of one series: `base` plus __name__ and optionally one more label.
Labels SeriesLabels(const std::vector<Label>& base, std::string_view name,
                    std::string_view extra_name = {}, std::string_view extra_value = {}) {
  std::vector<Label> out;
  out.reserve(base.size() + 2);
  auto put = [&out](std::string_view n, std::string_view v) {
    auto it = std::lower_bound(out.begin(), out.end(), n,
                               [](const Label& l, std::string_view key) { return l.name < key; });
    if (it != out.end() && it->name == n) {
      it->value = std::string(v);
    } else {
      out.insert(it, Label{std::string(n), std::string(v)});
    }
  };
  out = base;
  put(kMetricNameLabel, name);
  if (!extra_name.empty()) put(extra_name, extra_value);
  return Labels::FromSortedUnchecked(std::move(out));
}

// One classic histogram sample set: (upper bound, cumulative count) ascending, then +Inf = count.
struct ClassicHistogram {
  std::vector<std::pair<double, double>> buckets;
  double count = 0;
  double sum = 0;
  bool has_sum = false;
};

ClassicHistogram FromExplicit(const std::vector<double>& bounds, const std::vector<double>& counts,
                              double count, double sum, bool has_sum) {
  ClassicHistogram h;
  h.count = count;
  h.sum = sum;
  h.has_sum = has_sum;
  double cumulative = 0;
  for (size_t i = 0; i < bounds.size() && i < counts.size(); ++i) {
    cumulative += counts[i];
    h.buckets.emplace_back(bounds[i], cumulative);
  }
  return h;
}

double ExpBound(int32_t index, int32_t scale) {
  return std::exp2(std::ldexp(static_cast<double>(index), -scale));
}

ClassicHistogram FromExponential(const ExpBuckets& e, double count, double sum, bool has_sum) {
  ClassicHistogram h;
  h.count = count;
  h.sum = sum;
  h.has_sum = has_sum;
  double cumulative = 0;
  auto emit = [&h, &cumulative](double bound) {
    if (!h.buckets.empty() && bound <= h.buckets.back().first) {
      h.buckets.back().second = cumulative;  // bound collapsed into the zero bucket's
      return;
    }
    h.buckets.emplace_back(bound, cumulative);
  };
  // Negative values: bucket j holds [-base^(j+1), -base^j); walk from the most negative.
  for (size_t k = e.neg.size(); k-- > 0;) {
    cumulative += e.neg[k];
    emit(-ExpBound(e.neg_offset + static_cast<int32_t>(k), e.scale));
  }
  if (e.zero_count > 0 || !e.neg.empty()) {
    cumulative += e.zero_count;
    emit(e.zero_threshold);
  }
  for (size_t k = 0; k < e.pos.size(); ++k) {
    cumulative += e.pos[k];
    emit(ExpBound(e.pos_offset + static_cast<int32_t>(k) + 1, e.scale));
  }
  return h;
}

// The translation of one request.
class Translator {
 public:
  Translator(const OtlpOptions& options, std::string_view tenant, Appender& appender,
             DeltaStateStore* store, SideStore* side, OtlpResult& result)
      : options_(options), tenant_(tenant), appender_(appender), store_(store), side_(side),
        result_(result),
        with_suffixes_(options.translation_strategy ==
                       OtlpTranslationStrategy::kUnderscoreEscapingWithSuffixes) {}

  // False when translation had to stop (result_.status says why).
  bool Resource(const otlp_metrics::ResourceMetrics& rm);
  // Commits and saves running totals.
  void Finish();

 private:
  struct ResourceContext {
    std::string job, instance;
    std::vector<std::pair<std::string, std::string>> promoted;
    LabelMap scope;  // of the current scope
    uint64_t min_ns = UINT64_MAX, max_ns = 0;
  };

  void Reject(std::string_view why) {
    ++result_.points_rejected;
    Note(why);
  }
  void Note(std::string_view why) {
    if (messages_ < kMaxMessages) {
      if (!result_.error_message.empty()) result_.error_message += "; ";
      result_.error_message += why;
    }
    ++messages_;
  }
  bool fatal() const { return !result_.status.ok(); }

  // Appends one sample; false when refused (recorded) or on a fatal error.
  bool Append(const Labels& labels, int64_t t_ms, double v);

  std::optional<std::vector<Label>> BaseLabels(
      const RepeatedPtrField<otlp_common::KeyValue>& attrs, const ResourceContext& rc,
      std::string_view metric);
  void Metric(const otlp_metrics::Metric& m, ResourceContext& rc);
  void NumberPoint(const otlp_metrics::NumberDataPoint& p, const std::string& name,
                   bool monotonic, bool delta, bool with_exemplars, ResourceContext& rc,
                   std::string_view metric);
  void HistogramPoint(const otlp_metrics::HistogramDataPoint& p, const std::string& name,
                      bool delta, ResourceContext& rc, std::string_view metric);
  void ExponentialPoint(const otlp_metrics::ExponentialHistogramDataPoint& p,
                        const std::string& name, bool delta, ResourceContext& rc,
                        std::string_view metric);
  void SummaryPoint(const otlp_metrics::SummaryDataPoint& p, const std::string& name,
                    ResourceContext& rc, std::string_view metric);
  // `exemplars` (when not null and every sample was appended) go to the bucket series.
  bool EmitHistogram(const std::vector<Label>& base, const std::string& name, int64_t t,
                     const ClassicHistogram& h, bool stale,
                     const RepeatedPtrField<otlp_metrics::Exemplar>* exemplars = nullptr);
  // Queues exemplars of `series` for the side store (stored after the commit).
  void AddExemplars(const Labels& series, std::vector<Exemplar> exemplars);
  // Writes queued exemplars and metadata; a store failure other than an invalid exemplar sets
  // result_.status to Unavailable.
  void StoreSide();
  bool EmitCreated(const std::vector<Label>& base, const std::string& name, int64_t t,
                   uint64_t start_ns);
  void TargetInfo(const otlp_metrics::ResourceMetrics& rm, const ResourceContext& rc);

  // Delta running totals: the state before this point (pending ones of this request first).
  // nullopt with result_.status set on a store error.
  std::optional<std::optional<DeltaState>> LoadState(const std::string& key, DeltaState::Kind kind);
  // Decides how a delta point over (start_ns, time_ns] continues `state`: nullopt means the point
  // is older than the running total (rejected); otherwise the state to add it to (fresh when the
  // series starts or restarts).
  static std::optional<DeltaState> Continue(std::optional<DeltaState> state, DeltaState::Kind kind,
                                            uint64_t start_ns, uint64_t time_ns);
  bool CheckDelta(std::string_view metric);

  const OtlpOptions& options_;
  const std::string_view tenant_;
  Appender& appender_;
  DeltaStateStore* const store_;
  SideStore* const side_;
  OtlpResult& result_;
  const bool with_suffixes_;
  size_t messages_ = 0;
  bool point_ok_ = true;  // of the point being translated
  absl::flat_hash_map<std::string, DeltaState> pending_states_;
  int64_t appended_ = 0;  // samples appended so far
  struct ExemplarBatch {
    Labels series;
    std::vector<Exemplar> exemplars;
  };
  std::map<std::string, ExemplarBatch> pending_exemplars_;  // by series (Labels::ToString)
  std::map<std::string, MetricMetadata> pending_metadata_;  // by family; the first one wins
};

bool Translator::Append(const Labels& labels, int64_t t_ms, double v) {
  absl::Status s = appender_.Append(labels, t_ms, v);
  if (s.ok()) {
    ++appended_;
    return true;
  }
  if (RejectReasonOf(s) != RejectReason::kNone || s.code() == absl::StatusCode::kInvalidArgument) {
    if (result_.reject_reason == RejectReason::kNone) result_.reject_reason = RejectReasonOf(s);
    ++result_.samples_rejected;
    Note(std::string(s.message()));
    point_ok_ = false;
    return false;
  }
  result_.status = absl::Status(s.code(), absl::StrCat("append: ", s.message()));
  point_ok_ = false;
  return false;
}

std::optional<std::vector<Label>> Translator::BaseLabels(
    const RepeatedPtrField<otlp_common::KeyValue>& attrs, const ResourceContext& rc,
    std::string_view metric) {
  LabelMap l;
  if (std::optional<std::string> bad = AddAttributes(l, attrs); bad.has_value()) {
    Reject(absl::StrCat("metric ", std::string(metric), ": attribute \"", *bad,
                        "\" has no valid label name"));
    return std::nullopt;
  }
  for (const auto& [name, value] : rc.promoted) l.try_emplace(name, value);
  for (const auto& [name, value] : rc.scope) l[name] = value;
  if (!rc.job.empty()) l["job"] = rc.job;
  if (!rc.instance.empty()) l["instance"] = rc.instance;
  std::vector<Label> out;
  out.reserve(l.size() + 2);
  for (auto& [name, value] : l) {
    if (!value.empty()) out.push_back(Label{name, std::move(value)});
  }
  return out;
}

bool Translator::Resource(const otlp_metrics::ResourceMetrics& rm) {
  ResourceContext rc;
  const auto& attrs = rm.resource().attributes();
  if (const otlp_common::AnyValue* name = Find(attrs, kServiceName)) {
    rc.job = AsString(*name);
    if (const otlp_common::AnyValue* ns = Find(attrs, kServiceNamespace)) {
      rc.job = absl::StrCat(AsString(*ns), "/", rc.job);
    }
  }
  if (const otlp_common::AnyValue* id = Find(attrs, kServiceInstanceId)) rc.instance = AsString(*id);
  for (const std::string& key : options_.promote_resource_attributes) {
    const otlp_common::AnyValue* v = Find(attrs, key);
    if (v == nullptr) continue;
    std::string name = BuildOtlpLabelName(key);
    if (!name.empty()) rc.promoted.emplace_back(std::move(name), AsString(*v));
  }
  for (const otlp_metrics::ScopeMetrics& sm : rm.scope_metrics()) {
    rc.scope.clear();
    if (options_.promote_scope_metadata && !sm.scope().name().empty()) {
      rc.scope["otel_scope_name"] = sm.scope().name();
      rc.scope["otel_scope_version"] = sm.scope().version();
      rc.scope["otel_scope_schema_url"] = sm.schema_url();
      for (const otlp_common::KeyValue& kv : sm.scope().attributes()) {
        std::string name = BuildOtlpLabelName(absl::StrCat("otel_scope_", kv.key()));
        if (!name.empty()) rc.scope[name] = AsString(kv.value());
      }
    }
    for (const otlp_metrics::Metric& m : sm.metrics()) {
      Metric(m, rc);
      if (fatal()) return false;
    }
  }
  TargetInfo(rm, rc);
  return !fatal();
}

void Translator::TargetInfo(const otlp_metrics::ResourceMetrics& rm, const ResourceContext& rc) {
  if (rc.min_ns > rc.max_ns) return;  // no data point
  const auto& attrs = rm.resource().attributes();
  std::vector<std::string_view> identifying = {kServiceNamespace, kServiceName,
                                               kServiceInstanceId};
  size_t others = 0;
  for (const otlp_common::KeyValue& kv : attrs) {
    if (std::find(identifying.begin(), identifying.end(), kv.key()) == identifying.end()) ++others;
  }
  if (others == 0 || (rc.job.empty() && rc.instance.empty())) return;
  LabelMap l;
  if (AddAttributes(l, attrs, identifying).has_value()) {
    Note("target_info: a resource attribute has no valid label name");
    return;
  }
  if (!rc.job.empty()) l["job"] = rc.job;
  if (!rc.instance.empty()) l["instance"] = rc.instance;
  std::vector<Label> base;
  for (auto& [name, value] : l) {
    if (!value.empty()) base.push_back(Label{name, std::move(value)});
  }
  Labels labels = SeriesLabels(base, "target_info");
  int64_t first = ToMillis(rc.min_ns);
  const int64_t last = ToMillis(rc.max_ns);
  const int64_t interval = std::max<int64_t>(1, options_.lookback_delta_ms / 2);
  // Bounded (unlike Prometheus): one point far in the past or future would otherwise make a
  // request write millions of target_info samples. Only the most recent span is covered then.
  if ((last - first) / interval > kMaxTargetInfoSamples) {
    first = last - kMaxTargetInfoSamples * interval;
    Note(absl::StrCat("target_info: data points span more than ", kMaxTargetInfoSamples,
                      " intervals of ", interval, " ms; only the most recent are covered"));
  }
  int64_t t = first;
  for (; t < last && !fatal(); t += interval) {
    point_ok_ = true;
    Append(labels, t, 1);
  }
  if (!fatal()) Append(labels, last, 1);
}

bool Translator::CheckDelta(std::string_view metric) {
  if (!options_.convert_delta_to_cumulative || store_ == nullptr) {
    Reject(absl::StrCat("metric ", std::string(metric),
                        ": delta temporality is not accepted (convert_delta_to_cumulative is off)"));
    return false;
  }
  return true;
}

void Translator::Metric(const otlp_metrics::Metric& m, ResourceContext& rc) {
  OtlpMetricType type;
  int points = 0;
  otlp_metrics::AggregationTemporality temporality =
      otlp_metrics::AGGREGATION_TEMPORALITY_CUMULATIVE;
  switch (m.data_case()) {
    case otlp_metrics::Metric::kGauge:
      type = OtlpMetricType::kGauge;
      points = m.gauge().data_points_size();
      break;
    case otlp_metrics::Metric::kSum:
      type = m.sum().is_monotonic() ? OtlpMetricType::kMonotonicCounter
                                    : OtlpMetricType::kNonMonotonicCounter;
      points = m.sum().data_points_size();
      temporality = m.sum().aggregation_temporality();
      break;
    case otlp_metrics::Metric::kHistogram:
      type = OtlpMetricType::kHistogram;
      points = m.histogram().data_points_size();
      temporality = m.histogram().aggregation_temporality();
      break;
    case otlp_metrics::Metric::kExponentialHistogram:
      type = OtlpMetricType::kExponentialHistogram;
      points = m.exponential_histogram().data_points_size();
      temporality = m.exponential_histogram().aggregation_temporality();
      break;
    case otlp_metrics::Metric::kSummary:
      type = OtlpMetricType::kSummary;
      points = m.summary().data_points_size();
      break;
    default:
      Note(absl::StrCat("metric ", m.name(), ": no data (unknown or missing type)"));
      return;
  }
  result_.points_received += points;
  const std::string name = BuildOtlpMetricName(m.name(), m.unit(), type, with_suffixes_);
  if (name.empty()) {
    result_.points_rejected += points;
    Note(absl::StrCat("metric \"", m.name(), "\": no valid Prometheus name"));
    return;
  }
  const bool delta = temporality == otlp_metrics::AGGREGATION_TEMPORALITY_DELTA;
  if (temporality != otlp_metrics::AGGREGATION_TEMPORALITY_DELTA &&
      temporality != otlp_metrics::AGGREGATION_TEMPORALITY_CUMULATIVE) {
    result_.points_rejected += points;
    Note(absl::StrCat("metric ", m.name(), ": aggregation temporality unspecified"));
    return;
  }
  if (delta && !CheckDelta(m.name())) {
    result_.points_rejected += points - 1;  // CheckDelta counted one
    return;
  }
  const int64_t appended_before = appended_;
  switch (m.data_case()) {
    case otlp_metrics::Metric::kGauge:
      for (const auto& p : m.gauge().data_points()) {
        NumberPoint(p, name, false, false, false, rc, m.name());
        if (fatal()) return;
      }
      break;
    case otlp_metrics::Metric::kSum:
      for (const auto& p : m.sum().data_points()) {
        NumberPoint(p, name, m.sum().is_monotonic(), delta, true, rc, m.name());
        if (fatal()) return;
      }
      break;
    case otlp_metrics::Metric::kHistogram:
      for (const auto& p : m.histogram().data_points()) {
        HistogramPoint(p, name, delta, rc, m.name());
        if (fatal()) return;
      }
      break;
    case otlp_metrics::Metric::kExponentialHistogram:
      for (const auto& p : m.exponential_histogram().data_points()) {
        ExponentialPoint(p, name, delta, rc, m.name());
        if (fatal()) return;
      }
      break;
    case otlp_metrics::Metric::kSummary:
      for (const auto& p : m.summary().data_points()) {
        SummaryPoint(p, name, rc, m.name());
        if (fatal()) return;
      }
      break;
    default:
      break;
  }
  if (side_ != nullptr && appended_ > appended_before) {
    pending_metadata_.try_emplace(
        name, MetricMetadata{std::string(PromType(type)), m.description(), BuildOtlpUnitName(m.unit())});
  }
}

std::optional<std::optional<DeltaState>> Translator::LoadState(const std::string& key,
                                                               DeltaState::Kind kind) {
  if (auto it = pending_states_.find(key); it != pending_states_.end()) {
    if (it->second.kind != kind) return std::optional<DeltaState>();
    return std::optional<DeltaState>(it->second);
  }
  absl::StatusOr<std::optional<std::string>> got = store_->Get(tenant_, key);
  if (!got.ok()) {
    result_.status = absl::UnavailableError(
        absl::StrCat("read delta running total: ", got.status().message()));
    return std::nullopt;
  }
  if (!got->has_value()) return std::optional<DeltaState>();
  std::optional<DeltaState> state = internal::DecodeDeltaState(**got);
  if (!state.has_value() || state->kind != kind) return std::optional<DeltaState>();
  return state;
}

std::optional<DeltaState> Translator::Continue(std::optional<DeltaState> state,
                                               DeltaState::Kind kind, uint64_t start_ns,
                                               uint64_t time_ns) {
  if (state.has_value()) {
    if (time_ns <= state->last_ns) return std::nullopt;  // already counted, or out of order
    if (start_ns == 0 || start_ns >= state->last_ns) {   // contiguous, or after a gap
      state->last_ns = time_ns;
      return state;
    }
    // Starts before the running total ends: the producer restarted; so does the series.
  }
  DeltaState fresh;
  fresh.kind = kind;
  fresh.start_ns = start_ns != 0 ? start_ns : time_ns;
  fresh.last_ns = time_ns;
  return fresh;
}

bool Translator::EmitCreated(const std::vector<Label>& base, const std::string& name, int64_t t,
                             uint64_t start_ns) {
  if (!options_.export_created_metric || start_ns == 0) return true;
  // Milliseconds since the epoch, as Prometheus's OTLP receiver writes _created.
  return Append(SeriesLabels(base, name + "_created"), t, static_cast<double>(ToMillis(start_ns)));
}

void Translator::NumberPoint(const otlp_metrics::NumberDataPoint& p, const std::string& name,
                             bool monotonic, bool delta, bool with_exemplars, ResourceContext& rc,
                             std::string_view metric) {
  point_ok_ = true;
  if (p.time_unix_nano() == 0) return Reject(absl::StrCat("metric ", std::string(metric), ": point without time_unix_nano"));
  const bool stale = (p.flags() & kNoRecordedValue) != 0;
  double value = 0;
  switch (p.value_case()) {
    case otlp_metrics::NumberDataPoint::kAsDouble: value = p.as_double(); break;
    case otlp_metrics::NumberDataPoint::kAsInt: value = static_cast<double>(p.as_int()); break;
    default:
      if (!stale) return Reject(absl::StrCat("metric ", std::string(metric), ": point without a value"));
  }
  std::optional<std::vector<Label>> base = BaseLabels(p.attributes(), rc, metric);
  if (!base.has_value()) return;
  rc.min_ns = std::min<uint64_t>(rc.min_ns, p.time_unix_nano());
  rc.max_ns = std::max<uint64_t>(rc.max_ns, p.time_unix_nano());
  const int64_t t = ToMillis(p.time_unix_nano());
  Labels labels = SeriesLabels(*base, name);
  uint64_t start_ns = p.start_time_unix_nano();
  bool appended = false;
  if (stale) {
    Append(labels, t, StaleNaN());
  } else if (!delta) {
    appended = Append(labels, t, value);
  } else {
    std::string key = absl::StrCat(std::string(kDeltaKeyPrefix), labels.ToString());
    auto loaded = LoadState(key, DeltaState::Kind::kNumber);
    if (!loaded.has_value()) return;
    std::optional<DeltaState> state =
        Continue(std::move(*loaded), DeltaState::Kind::kNumber, p.start_time_unix_nano(),
                 p.time_unix_nano());
    if (!state.has_value()) {
      return Reject(absl::StrCat("metric ", std::string(metric),
                                 ": delta point is not newer than the running total"));
    }
    state->value += value;
    start_ns = state->start_ns;
    if (Append(labels, t, state->value)) {
      pending_states_[key] = std::move(*state);
      appended = true;
    }
  }
  if (appended && with_exemplars && p.exemplars_size() > 0) {
    AddExemplars(labels, ToExemplars(p.exemplars(), t));
  }
  if (monotonic && !stale) EmitCreated(*base, name, t, start_ns);
  if (!point_ok_) ++result_.points_rejected;
}

bool Translator::EmitHistogram(const std::vector<Label>& base, const std::string& name, int64_t t,
                               const ClassicHistogram& h, bool stale,
                               const RepeatedPtrField<otlp_metrics::Exemplar>* exemplars) {
  const double stale_nan = StaleNaN();
  bool ok = true;
  if (h.has_sum || stale) ok &= Append(SeriesLabels(base, name + "_sum"), t, stale ? stale_nan : h.sum);
  if (fatal()) return false;
  ok &= Append(SeriesLabels(base, name + "_count"), t, stale ? stale_nan : h.count);
  const std::string bucket = name + "_bucket";
  for (const auto& [bound, cumulative] : h.buckets) {
    if (fatal()) return false;
    ok &= Append(SeriesLabels(base, bucket, "le", FormatFixed(bound)), t,
                 stale ? stale_nan : cumulative);
  }
  if (fatal()) return false;
  ok &= Append(SeriesLabels(base, bucket, "le", "+Inf"), t, stale ? stale_nan : h.count);
  if (ok && !stale && exemplars != nullptr && !exemplars->empty()) {
    // Each exemplar goes to the bucket that holds its value: the smallest le >= the value.
    std::map<double, std::vector<Exemplar>> by_bound;
    for (Exemplar& e : ToExemplars(*exemplars, t)) {
      if (std::isnan(e.value)) continue;
      double best = std::numeric_limits<double>::infinity();
      for (const auto& [bound, cumulative] : h.buckets) {
        if (e.value <= bound && bound < best) best = bound;
      }
      by_bound[best].push_back(std::move(e));
    }
    for (auto& [bound, list] : by_bound) {
      AddExemplars(SeriesLabels(base, bucket, "le", FormatFixed(bound)), std::move(list));
    }
  }
  return ok;
}

void Translator::AddExemplars(const Labels& series, std::vector<Exemplar> exemplars) {
  if (side_ == nullptr || exemplars.empty()) return;
  auto [it, fresh] = pending_exemplars_.try_emplace(series.ToString());
  if (fresh) it->second.series = series;
  for (Exemplar& e : exemplars) it->second.exemplars.push_back(std::move(e));
}

void Translator::StoreSide() {
  if (side_ == nullptr) return;
  auto fail = [this](std::string_view what, const absl::Status& s) {
    result_.status = absl::UnavailableError(
        absl::StrCat("store ", std::string(what), " (the samples are stored): ", s.message()));
  };
  for (auto& [key, batch] : pending_exemplars_) {
    std::sort(batch.exemplars.begin(), batch.exemplars.end(),
              [](const Exemplar& a, const Exemplar& b) { return a.t_ms < b.t_ms; });
    absl::Status s = side_->AppendExemplars(batch.series, batch.exemplars);
    if (s.ok()) {
      result_.exemplars_written += static_cast<int64_t>(batch.exemplars.size());
      continue;
    }
    if (!absl::IsInvalidArgument(s)) return fail("exemplars", s);
    // One invalid exemplar refuses the batch: store the others one by one.
    for (const Exemplar& e : batch.exemplars) {
      absl::Status one = side_->AppendExemplars(batch.series, std::span<const Exemplar>(&e, 1));
      if (one.ok()) {
        ++result_.exemplars_written;
      } else if (!absl::IsInvalidArgument(one)) {
        return fail("exemplars", one);
      } else {
        Note(absl::StrCat("exemplar of ", key, " skipped: ", one.message()));
      }
    }
  }
  for (const auto& [family, md] : pending_metadata_) {
    absl::Status s = side_->PutMetadata(family, md);
    if (s.ok()) {
      ++result_.metadata_written;
    } else if (!absl::IsInvalidArgument(s)) {
      return fail("metadata", s);
    }
  }
}

void Translator::HistogramPoint(const otlp_metrics::HistogramDataPoint& p, const std::string& name,
                                bool delta, ResourceContext& rc, std::string_view metric) {
  point_ok_ = true;
  if (p.time_unix_nano() == 0) return Reject(absl::StrCat("metric ", std::string(metric), ": point without time_unix_nano"));
  if (p.bucket_counts_size() != 0 && p.bucket_counts_size() != p.explicit_bounds_size() + 1) {
    return Reject(absl::StrCat("metric ", std::string(metric), ": histogram point with ",
                               p.bucket_counts_size(), " bucket counts for ",
                               p.explicit_bounds_size(), " bounds"));
  }
  const bool stale = (p.flags() & kNoRecordedValue) != 0;
  std::optional<std::vector<Label>> base = BaseLabels(p.attributes(), rc, metric);
  if (!base.has_value()) return;
  rc.min_ns = std::min<uint64_t>(rc.min_ns, p.time_unix_nano());
  rc.max_ns = std::max<uint64_t>(rc.max_ns, p.time_unix_nano());
  const int64_t t = ToMillis(p.time_unix_nano());
  std::vector<double> bounds(p.explicit_bounds().begin(), p.explicit_bounds().end());
  std::vector<double> counts(p.bucket_counts().begin(), p.bucket_counts().end());
  if (counts.empty()) bounds.clear();
  uint64_t start_ns = p.start_time_unix_nano();
  if (stale || !delta) {
    EmitHistogram(*base, name,
                  t, FromExplicit(bounds, counts, static_cast<double>(p.count()), p.sum(), p.has_sum()),
                  stale, &p.exemplars());
  } else {
    std::string key = absl::StrCat(std::string(kDeltaKeyPrefix), SeriesLabels(*base, name).ToString());
    auto loaded = LoadState(key, DeltaState::Kind::kHistogram);
    if (!loaded.has_value()) return;
    std::optional<DeltaState> state = Continue(std::move(*loaded), DeltaState::Kind::kHistogram,
                                               p.start_time_unix_nano(), p.time_unix_nano());
    if (!state.has_value()) {
      return Reject(absl::StrCat("metric ", std::string(metric),
                                 ": delta point is not newer than the running total"));
    }
    if (state->bounds != bounds || state->buckets.size() != counts.size()) {
      // New bucket layout: the cumulative series starts again.
      if (state->count != 0 || !state->buckets.empty()) {
        state->start_ns = p.start_time_unix_nano() != 0 ? p.start_time_unix_nano() : p.time_unix_nano();
      }
      state->bounds = bounds;
      state->buckets.assign(counts.size(), 0.0);
      state->sum = 0;
      state->count = 0;
    }
    for (size_t i = 0; i < counts.size(); ++i) state->buckets[i] += counts[i];
    state->count += static_cast<double>(p.count());
    if (p.has_sum()) state->sum += p.sum();
    start_ns = state->start_ns;
    if (EmitHistogram(*base, name, t,
                      FromExplicit(state->bounds, state->buckets, state->count, state->sum,
                                   p.has_sum()),
                      false, &p.exemplars())) {
      pending_states_[key] = std::move(*state);
    }
  }
  if (fatal()) return;
  if (!stale) EmitCreated(*base, name, t, start_ns);
  if (!point_ok_) ++result_.points_rejected;
}

void Translator::ExponentialPoint(const otlp_metrics::ExponentialHistogramDataPoint& p,
                                  const std::string& name, bool delta, ResourceContext& rc,
                                  std::string_view metric) {
  point_ok_ = true;
  if (p.time_unix_nano() == 0) return Reject(absl::StrCat("metric ", std::string(metric), ": point without time_unix_nano"));
  if (p.scale() < kMinScale || p.scale() > kMaxScale) {
    return Reject(absl::StrCat("metric ", std::string(metric), ": exponential histogram scale ",
                               p.scale(), " outside [", kMinScale, ", ", kMaxScale, "]"));
  }
  const bool stale = (p.flags() & kNoRecordedValue) != 0;
  std::optional<std::vector<Label>> base = BaseLabels(p.attributes(), rc, metric);
  if (!base.has_value()) return;
  rc.min_ns = std::min<uint64_t>(rc.min_ns, p.time_unix_nano());
  rc.max_ns = std::max<uint64_t>(rc.max_ns, p.time_unix_nano());
  const int64_t t = ToMillis(p.time_unix_nano());
  ExpBuckets e;
  e.scale = p.scale();
  e.zero_threshold = p.zero_threshold();
  e.zero_count = static_cast<double>(p.zero_count());
  e.pos_offset = p.positive().offset();
  e.pos.assign(p.positive().bucket_counts().begin(), p.positive().bucket_counts().end());
  e.neg_offset = p.negative().offset();
  e.neg.assign(p.negative().bucket_counts().begin(), p.negative().bucket_counts().end());
  // Offsets near the int32 limits would overflow bucket arithmetic.
  constexpr int32_t kMaxOffset = 1 << 28;
  if (std::abs(static_cast<int64_t>(e.pos_offset)) > kMaxOffset ||
      std::abs(static_cast<int64_t>(e.neg_offset)) > kMaxOffset || e.pos.size() > (1u << 16) ||
      e.neg.size() > (1u << 16)) {
    return Reject(absl::StrCat("metric ", std::string(metric),
                               ": exponential histogram buckets out of range"));
  }
  e.Downscale(options_.exponential_histogram_max_scale);
  uint64_t start_ns = p.start_time_unix_nano();
  if (stale || !delta) {
    EmitHistogram(*base, name, t,
                  FromExponential(e, static_cast<double>(p.count()), p.sum(), p.has_sum()), stale,
                  &p.exemplars());
  } else {
    std::string key = absl::StrCat(std::string(kDeltaKeyPrefix), SeriesLabels(*base, name).ToString());
    auto loaded = LoadState(key, DeltaState::Kind::kExponential);
    if (!loaded.has_value()) return;
    std::optional<DeltaState> state = Continue(std::move(*loaded), DeltaState::Kind::kExponential,
                                               p.start_time_unix_nano(), p.time_unix_nano());
    if (!state.has_value()) {
      return Reject(absl::StrCat("metric ", std::string(metric),
                                 ": delta point is not newer than the running total"));
    }
    if (state->count == 0 && state->exp.pos.empty() && state->exp.neg.empty() &&
        state->exp.zero_count == 0) {
      state->exp = e;
    } else {
      state->exp.Add(e);
    }
    state->count += static_cast<double>(p.count());
    if (p.has_sum()) state->sum += p.sum();
    start_ns = state->start_ns;
    if (EmitHistogram(*base, name, t,
                      FromExponential(state->exp, state->count, state->sum, p.has_sum()), false,
                      &p.exemplars())) {
      pending_states_[key] = std::move(*state);
    }
  }
  if (fatal()) return;
  if (!stale) EmitCreated(*base, name, t, start_ns);
  if (!point_ok_) ++result_.points_rejected;
}

void Translator::SummaryPoint(const otlp_metrics::SummaryDataPoint& p, const std::string& name,
                              ResourceContext& rc, std::string_view metric) {
  point_ok_ = true;
  if (p.time_unix_nano() == 0) return Reject(absl::StrCat("metric ", std::string(metric), ": point without time_unix_nano"));
  const bool stale = (p.flags() & kNoRecordedValue) != 0;
  std::optional<std::vector<Label>> base = BaseLabels(p.attributes(), rc, metric);
  if (!base.has_value()) return;
  rc.min_ns = std::min<uint64_t>(rc.min_ns, p.time_unix_nano());
  rc.max_ns = std::max<uint64_t>(rc.max_ns, p.time_unix_nano());
  const int64_t t = ToMillis(p.time_unix_nano());
  const double stale_nan = StaleNaN();
  Append(SeriesLabels(*base, name + "_sum"), t, stale ? stale_nan : p.sum());
  if (fatal()) return;
  Append(SeriesLabels(*base, name + "_count"), t, stale ? stale_nan : static_cast<double>(p.count()));
  for (const auto& q : p.quantile_values()) {
    if (fatal()) return;
    Append(SeriesLabels(*base, name, "quantile", FormatFixed(q.quantile())), t,
           stale ? stale_nan : q.value());
  }
  if (fatal()) return;
  if (!stale) EmitCreated(*base, name, t, p.start_time_unix_nano());
  if (!point_ok_) ++result_.points_rejected;
}

void Translator::Finish() {
  if (fatal()) {
    appender_.Rollback();
    return;
  }
  const int64_t pending = static_cast<int64_t>(appender_.pending());
  absl::Status s = appender_.Commit();
  if (!s.ok()) {
    if (RejectReasonOf(s) != RejectReason::kNone || s.code() == absl::StatusCode::kInvalidArgument) {
      // Another writer got there first: nothing of this request was stored.
      result_.reject_reason = RejectReasonOf(s);
      result_.samples_rejected += pending;
      result_.points_rejected = result_.points_received;
      Note(absl::StrCat("commit: ", s.message()));
      return;
    }
    result_.status = absl::Status(s.code(), absl::StrCat("commit: ", s.message()));
    return;
  }
  result_.samples_appended = pending;
  for (const auto& [key, state] : pending_states_) {
    absl::Status put = store_->Put(tenant_, key, internal::EncodeDeltaState(state));
    if (!put.ok()) {
      Note(absl::StrCat("delta running totals not saved: ", put.message()));
      break;
    }
  }
  StoreSide();
}

bool HasDelta(const otlp_collector::ExportMetricsServiceRequest& request) {
  for (const auto& rm : request.resource_metrics()) {
    for (const auto& sm : rm.scope_metrics()) {
      for (const auto& m : sm.metrics()) {
        if ((m.has_sum() &&
             m.sum().aggregation_temporality() == otlp_metrics::AGGREGATION_TEMPORALITY_DELTA) ||
            (m.has_histogram() && m.histogram().aggregation_temporality() ==
                                      otlp_metrics::AGGREGATION_TEMPORALITY_DELTA) ||
            (m.has_exponential_histogram() &&
             m.exponential_histogram().aggregation_temporality() ==
                 otlp_metrics::AGGREGATION_TEMPORALITY_DELTA)) {
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace

OtlpResult OtlpReceiver::Translate(std::string_view tenant,
                                   const otlp_collector::ExportMetricsServiceRequest& request,
                                   Appender& appender, DeltaStateStore* store,
                                   SideStore* side) {
  OtlpResult result;
  std::optional<absl::MutexLock> lock;
  if (store != nullptr && HasDelta(request)) lock.emplace(&delta_mu_);
  Translator translator(options_, tenant, appender, store, side, result);
  for (const otlp_metrics::ResourceMetrics& rm : request.resource_metrics()) {
    if (!translator.Resource(rm)) break;
  }
  translator.Finish();
  if (result.points_rejected > result.points_received) result.points_rejected = result.points_received;
  return result;
}

}  // namespace tidemark::ingest
