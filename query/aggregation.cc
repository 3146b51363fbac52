#include "query/aggregation.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "query/lexer.h"
#include "query/selection_heap.h"

namespace tidemark::promql::internal {
namespace {

struct LabelsHash {
  size_t operator()(const Labels& l) const { return static_cast<size_t>(l.Hash()); }
};

// Go's fmt %v of a float64 too large for an int64: shortest digits, always with an exponent
// at these magnitudes ("1e+19", "9.223372036854776e+18"), or NaN/+Inf/-Inf.
std::string GoFloatV(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  return std::string(buf, res.ptr);
}

// Prometheus's convertibleToInt64: the range of floats an int64 conversion keeps.
bool ConvertibleToInt64(double v) {
  return v <= 9223372036854774784.0 && v >= -9223372036854775808.0;
}

struct Group {
  Labels labels;
  double value = 0;
  double mean = 0;
  int64_t count = 0;
  std::vector<double> values;  // quantile
  std::optional<SelectionHeap<VectorElement>> heap;  // topk, bottomk
};

}  // namespace

double Quantile(double q, std::vector<double>& values) {
  if (values.empty() || std::isnan(q)) return std::numeric_limits<double>::quiet_NaN();
  if (q < 0) return -std::numeric_limits<double>::infinity();
  if (q > 1) return std::numeric_limits<double>::infinity();
  std::sort(values.begin(), values.end(), [](double a, double b) {
    if (std::isnan(a)) return !std::isnan(b);
    return a < b;
  });
  double n = static_cast<double>(values.size());
  double rank = q * (n - 1);
  double lower = std::max(0.0, std::floor(rank));
  double upper = std::min(n - 1, lower + 1);
  double weight = rank - std::floor(rank);
  return values[static_cast<size_t>(lower)] * (1 - weight) +
         values[static_cast<size_t>(upper)] * weight;
}

// Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that round-trip, written
// without an exponent and padded with zeros ("1e300" is "1" and 300 zeros, not the exact
// decimal value of the double that std::to_chars(fixed) writes).
std::string FormatFloatForLabel(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  if (res.ec != std::errc()) return std::to_string(v);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));  // [-]d[.ddd]e(+|-)XX
  std::string out;
  if (!sci.empty() && sci[0] == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  int exponent = 0;
  std::string_view exp_text = sci.substr(e + 1);
  if (!exp_text.empty() && exp_text[0] == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
  // The decimal point goes after `point` digits of `digits`.
  const int point = exponent + 1;
  const int n = static_cast<int>(digits.size());
  if (point <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-point), '0');
    out += digits;
  } else if (point >= n) {
    out += digits;
    out.append(static_cast<size_t>(point - n), '0');
  } else {
    out.append(digits, 0, static_cast<size_t>(point));
    out.push_back('.');
    out.append(digits, static_cast<size_t>(point), std::string::npos);
  }
  return out;
}

absl::StatusOr<Vector> Aggregate(const AggregateExpr& agg, const Vector& in,
                                 const AggregationParam& param, int64_t t) {
  const AggregateOp op = agg.op;
  int64_t k = 0;
  if (op == AggregateOp::kTopk || op == AggregateOp::kBottomk) {
    if (!ConvertibleToInt64(param.scalar)) {
      return absl::FailedPreconditionError(
          absl::StrCat("Scalar value ", GoFloatV(param.scalar), " overflows int64"));
    }
    k = static_cast<int64_t>(param.scalar);
    if (k < 1) return Vector{};
  }
  std::string value_label;
  if (op == AggregateOp::kCountValues) {
    value_label = std::string(param.label);
    if (!IsValidLabelName(value_label)) {
      return absl::FailedPreconditionError(
          absl::StrCat("invalid label name ", GoQuote(value_label)));
    }
  }
  std::vector<std::string> by = agg.grouping;
  std::vector<std::string> drop;
  if (agg.without) {
    drop = agg.grouping;
    drop.emplace_back(kMetricNameLabel);
  } else if (op == AggregateOp::kCountValues) {
    by.push_back(value_label);
  }

  std::vector<Group> groups;
  absl::flat_hash_map<Labels, size_t, LabelsHash> index;
  for (const VectorElement& e : in) {
    Labels metric;
    const Labels* m = &e.labels;
    if (op == AggregateOp::kCountValues) {
      metric = e.labels.With(value_label, FormatFloatForLabel(e.v));
      m = &metric;
    }
    Labels key = agg.without ? m->Filter(drop, false) : m->Filter(by, true);
    auto [pos, inserted] = index.try_emplace(key, groups.size());
    if (inserted) {
      Group g;
      g.labels = std::move(key);
      g.value = e.v;
      g.mean = e.v;
      g.count = 1;
      switch (op) {
        case AggregateOp::kStddev:
        case AggregateOp::kStdvar: g.value = 0; break;
        case AggregateOp::kGroup: g.value = 1; break;
        case AggregateOp::kQuantile: g.values.push_back(e.v); break;
        case AggregateOp::kTopk:
        case AggregateOp::kBottomk:
          g.heap.emplace(op == AggregateOp::kBottomk);
          g.heap->Push(&e);
          break;
        default: break;
      }
      groups.push_back(std::move(g));
      continue;
    }
    Group& g = groups[pos->second];
    switch (op) {
      case AggregateOp::kSum: g.value += e.v; break;
      case AggregateOp::kAvg: {
        ++g.count;
        if (std::isinf(g.mean)) {
          // An infinite mean stays as it is for a same-signed Inf or a finite value;
          // subtracting it below would give NaN.
          if (std::isinf(e.v) && (g.mean > 0) == (e.v > 0)) break;
          if (!std::isinf(e.v) && !std::isnan(e.v)) break;
        }
        double n = static_cast<double>(g.count);
        g.mean += e.v / n - g.mean / n;
        break;
      }
      case AggregateOp::kGroup: break;
      case AggregateOp::kMax:
        if (g.value < e.v || std::isnan(g.value)) g.value = e.v;
        break;
      case AggregateOp::kMin:
        if (g.value > e.v || std::isnan(g.value)) g.value = e.v;
        break;
      case AggregateOp::kCount:
      case AggregateOp::kCountValues: ++g.count; break;
      case AggregateOp::kStddev:
      case AggregateOp::kStdvar: {
        ++g.count;
        double delta = e.v - g.mean;
        g.mean += delta / static_cast<double>(g.count);
        g.value += delta * (e.v - g.mean);
        break;
      }
      case AggregateOp::kTopk:
      case AggregateOp::kBottomk: g.heap->Offer(&e, k); break;
      case AggregateOp::kQuantile: g.values.push_back(e.v); break;
    }
  }

  Vector out;
  out.reserve(groups.size());
  for (Group& g : groups) {
    double v = g.value;
    switch (op) {
      case AggregateOp::kAvg: v = g.mean; break;
      case AggregateOp::kCount:
      case AggregateOp::kCountValues: v = static_cast<double>(g.count); break;
      case AggregateOp::kStdvar: v = g.value / static_cast<double>(g.count); break;
      case AggregateOp::kStddev: v = std::sqrt(g.value / static_cast<double>(g.count)); break;
      case AggregateOp::kQuantile: v = Quantile(param.scalar, g.values); break;
      case AggregateOp::kTopk:
      case AggregateOp::kBottomk:
        for (const VectorElement* e : g.heap->SortedOutput()) {
          out.push_back(VectorElement{e->labels, t, e->v});
        }
        continue;
      default: break;
    }
    out.push_back(VectorElement{std::move(g.labels), t, v});
  }
  return out;
}

}  // namespace tidemark::promql::internal
