#include "query/binary_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace tidemark::promql::internal {
namespace {

struct LabelsHash {
  size_t operator()(const Labels& l) const { return static_cast<size_t>(l.Hash()); }
};

// The labels two elements are matched on: those of on(...), or all but those of ignoring(...)
// and the metric name. Also Prometheus's MatchLabels, used in error messages.
class Signature {
 public:
  explicit Signature(const VectorMatching& m) : on_(m.on), names_(m.matching_labels) {
    if (!on_) names_.emplace_back(kMetricNameLabel);
  }
  Labels operator()(const Labels& l) const { return l.Filter(names_, on_); }

 private:
  bool on_;
  std::vector<std::string> names_;
};

absl::StatusOr<Vector> SetOperation(const BinaryExpr& b, const VectorMatching& matching,
                                    const Vector& lhs, const Vector& rhs) {
  Signature sig(matching);
  Vector out;
  switch (b.op) {
    case BinaryOp::kAnd: {
      if (lhs.empty() || rhs.empty()) return out;
      absl::flat_hash_set<Labels, LabelsHash> right;
      for (const VectorElement& r : rhs) right.insert(sig(r.labels));
      for (const VectorElement& l : lhs) {
        if (right.contains(sig(l.labels))) out.push_back(l);
      }
      return out;
    }
    case BinaryOp::kOr: {
      if (lhs.empty()) return rhs;
      if (rhs.empty()) return lhs;
      absl::flat_hash_set<Labels, LabelsHash> left;
      for (const VectorElement& l : lhs) {
        left.insert(sig(l.labels));
        out.push_back(l);
      }
      for (const VectorElement& r : rhs) {
        if (!left.contains(sig(r.labels))) out.push_back(r);
      }
      return out;
    }
    case BinaryOp::kUnless: {
      if (lhs.empty() || rhs.empty()) return lhs;
      absl::flat_hash_set<Labels, LabelsHash> right;
      for (const VectorElement& r : rhs) right.insert(sig(r.labels));
      for (const VectorElement& l : lhs) {
        if (!right.contains(sig(l.labels))) out.push_back(l);
      }
      return out;
    }
    default: break;
  }
  return absl::InternalError("BUG: not a set operator");
}

}  // namespace

Labels ResultLabels(const Labels& many, const Labels& one, BinaryOp op,
                    const VectorMatching& matching) {
  Labels out = DropsMetricName(op) ? many.Without(kMetricNameLabel) : many;
  if (matching.card == VectorMatching::Card::kOneToOne) {
    out = out.Filter(matching.matching_labels, matching.on);
  }
  for (const std::string& name : matching.include) {
    out = out.With(name, one.Get(name));  // an absent value removes the label
  }
  return out;
}

std::pair<double, bool> ApplyBinaryOp(BinaryOp op, double l, double r) {
  switch (op) {
    case BinaryOp::kAdd: return {l + r, true};
    case BinaryOp::kSub: return {l - r, true};
    case BinaryOp::kMul: return {l * r, true};
    case BinaryOp::kDiv: return {l / r, true};
    case BinaryOp::kMod: return {std::fmod(l, r), true};
    case BinaryOp::kPow: return {std::pow(l, r), true};
    case BinaryOp::kAtan2: return {std::atan2(l, r), true};
    case BinaryOp::kEql: return {l, l == r};
    case BinaryOp::kNeq: return {l, l != r};
    case BinaryOp::kGtr: return {l, l > r};
    case BinaryOp::kLss: return {l, l < r};
    case BinaryOp::kGte: return {l, l >= r};
    case BinaryOp::kLte: return {l, l <= r};
    default: break;
  }
  return {std::numeric_limits<double>::quiet_NaN(), false};  // set operators: not element-wise
}

bool DropsMetricName(BinaryOp op) {
  return op == BinaryOp::kAdd || op == BinaryOp::kSub || op == BinaryOp::kMul ||
         op == BinaryOp::kDiv || op == BinaryOp::kMod || op == BinaryOp::kPow;
}

double ScalarBinary(BinaryOp op, double l, double r) {
  auto [v, keep] = ApplyBinaryOp(op, l, r);
  if (IsComparison(op)) return keep ? 1 : 0;
  return v;
}

Vector VectorScalarBinary(BinaryOp op, bool return_bool, Vector vec, double scalar,
                          bool scalar_left) {
  Vector out;
  out.reserve(vec.size());
  for (VectorElement& e : vec) {
    double l = scalar_left ? scalar : e.v;
    double r = scalar_left ? e.v : scalar;
    auto [v, keep] = ApplyBinaryOp(op, l, r);
    // A comparison keeps the vector's value, whichever side it is on.
    if (IsComparison(op) && scalar_left) v = r;
    if (return_bool) {
      v = keep ? 1 : 0;
      keep = true;
    }
    if (!keep) continue;
    e.v = v;
    if (DropsMetricName(op) || return_bool) e.labels = e.labels.Without(kMetricNameLabel);
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<Vector> VectorVectorBinary(const BinaryExpr& b, const Vector& lhs,
                                          const Vector& rhs) {
  VectorMatching matching;
  if (b.matching.has_value()) matching = *b.matching;
  if (IsSetOperator(b.op)) return SetOperation(b, matching, lhs, rhs);
  if (matching.card == VectorMatching::Card::kManyToMany) {
    return absl::InternalError("BUG: many-to-many only allowed for set operators");
  }
  Vector out;
  if (lhs.empty() || rhs.empty()) return out;

  // For one-to-many the sides swap: `many` is the rhs, `one` the lhs.
  const bool swapped = matching.card == VectorMatching::Card::kOneToMany;
  const Vector& many = swapped ? rhs : lhs;
  const Vector& one = swapped ? lhs : rhs;
  Signature sig(matching);

  absl::flat_hash_map<Labels, const VectorElement*, LabelsHash> one_side;
  for (const VectorElement& r : one) {
    Labels s = sig(r.labels);
    auto [it, inserted] = one_side.try_emplace(s, &r);
    if (!inserted) {
      return absl::FailedPreconditionError(absl::StrCat(
          "found duplicate series for the match group ", s.ToString(), " on the ",
          swapped ? "left" : "right", " hand-side of the operation: [", r.labels.ToString(),
          ", ", it->second->labels.ToString(),
          "];many-to-many matching not allowed: matching labels must be unique on one side"));
    }
  }

  // For one-to-one: the match groups already used. For many-to-one: per match group, the
  // result label sets already produced.
  absl::flat_hash_map<Labels, absl::flat_hash_set<Labels, LabelsHash>, LabelsHash> matched;
  for (const VectorElement& l : many) {
    Labels s = sig(l.labels);
    auto it = one_side.find(s);
    if (it == one_side.end()) continue;
    const VectorElement& r = *it->second;
    double vl = swapped ? r.v : l.v;
    double vr = swapped ? l.v : r.v;
    auto [v, keep] = ApplyBinaryOp(b.op, vl, vr);
    if (b.return_bool) {
      v = keep ? 1 : 0;
    } else if (!keep) {
      continue;
    }
    Labels labels = ResultLabels(l.labels, r.labels, b.op, matching);
    if (b.return_bool) labels = labels.Without(kMetricNameLabel);
    auto [group, is_new] = matched.try_emplace(std::move(s));
    if (matching.card == VectorMatching::Card::kOneToOne) {
      if (!is_new) {
        return absl::FailedPreconditionError(
            "multiple matches for labels: many-to-one matching must be explicit "
            "(group_left/group_right)");
      }
    } else if (!group->second.insert(labels).second) {
      return absl::FailedPreconditionError(
          "multiple matches for labels: grouping labels must ensure unique matches");
    }
    out.push_back(VectorElement{std::move(labels), l.t, v});
  }
  return out;
}

absl::Status CheckUniqueLabels(const Vector& v) {
  if (v.size() < 2) return absl::OkStatus();
  std::vector<const Labels*> sorted;
  sorted.reserve(v.size());
  for (const VectorElement& e : v) sorted.push_back(&e.labels);
  std::sort(sorted.begin(), sorted.end(),
            [](const Labels* a, const Labels* b) { return *a < *b; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (*sorted[i] == *sorted[i - 1]) {
      return absl::FailedPreconditionError("vector cannot contain metrics with the same labelset");
    }
  }
  return absl::OkStatus();
}

}  // namespace tidemark::promql::internal
