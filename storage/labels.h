// Labels: the identity of a series, a set of (name, value) pairs kept sorted by name.
//
// A Labels value owns its strings. The canonical form is sorted by name with unique names and
// no empty values; `Labels::FromUnsorted` builds it, `Labels::Validate` checks a set that a
// client claims is canonical (remote write requires sorted labels). Thread-compatible.
#ifndef TIDEMARK_STORAGE_LABELS_H_
#define TIDEMARK_STORAGE_LABELS_H_

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace tidemark {

inline constexpr std::string_view kMetricNameLabel = "__name__";

struct Label {
  std::string name;
  std::string value;

  friend bool operator==(const Label&, const Label&) = default;
  friend auto operator<=>(const Label&, const Label&) = default;
};

// A label whose strings live elsewhere (e.g. in a decoded request buffer).
struct LabelView {
  std::string_view name;
  std::string_view value;
};

class Labels {
 public:
  Labels() = default;
  // Sorts by name; a later duplicate name replaces an earlier one; empty values are dropped
  // (Prometheus treats an empty value as an absent label).
  static Labels FromUnsorted(std::vector<Label> labels);
  static Labels FromUnsorted(std::initializer_list<std::pair<std::string_view, std::string_view>>);
  // Takes `labels` as they are, with no check: the caller guarantees the canonical form.
  static Labels FromSortedUnchecked(std::vector<Label> labels);
  // Copies `labels` as they are, with no check (as FromSortedUnchecked).
  static Labels FromViewsUnchecked(std::span<const LabelView> labels);

  // OK when sorted by name, names unique, names non-empty and valid (`[a-zA-Z_][a-zA-Z0-9_]*`),
  // values valid UTF-8. Otherwise InvalidArgument with a reason naming the label.
  static absl::Status Validate(const std::vector<Label>& labels);

  // The value of `name`, or "" when absent.
  std::string_view Get(std::string_view name) const;
  bool Has(std::string_view name) const;
  std::string_view MetricName() const { return Get(kMetricNameLabel); }

  const std::vector<Label>& items() const { return labels_; }
  // Moves the labels out (to reuse their strings); the Labels is left empty.
  std::vector<Label> TakeItems() && { return std::move(labels_); }
  size_t size() const { return labels_.size(); }
  bool empty() const { return labels_.empty(); }
  auto begin() const { return labels_.begin(); }
  auto end() const { return labels_.end(); }

  // Copies with one label set (empty `value` removes it), or with a label removed.
  Labels With(std::string_view name, std::string_view value) const;
  Labels Without(std::string_view name) const;
  // Keeps only the named labels (`keep`=true) or drops them (`keep`=false).
  Labels Filter(const std::vector<std::string>& names, bool keep) const;

  // A stable 64-bit hash of the canonical form (xxhash-quality, not cryptographic).
  uint64_t Hash() const;
  // Prometheus's rendering: `name{a="1", b="2"}` with Go-style escaping of values.
  std::string ToString() const;

  friend bool operator==(const Labels&, const Labels&) = default;
  friend auto operator<=>(const Labels&, const Labels&) = default;

 private:
  explicit Labels(std::vector<Label> labels) : labels_(std::move(labels)) {}
  std::vector<Label> labels_;
};

// True for a legacy-valid label name `[a-zA-Z_][a-zA-Z0-9_]*`.
bool IsValidLabelName(std::string_view name);
// True for a legacy-valid metric name `[a-zA-Z_:][a-zA-Z0-9_:]*`.
bool IsValidMetricName(std::string_view name);

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_LABELS_H_
