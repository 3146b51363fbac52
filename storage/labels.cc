#include "storage/labels.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"

namespace tidemark {
namespace {

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

// Go's strconv.Quote-like escaping, as Prometheus uses for label values in String().
void AppendQuoted(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\t': out->append("\\t"); break;
      case '\r': out->append("\\r"); break;
      default: out->push_back(c);
    }
  }
  out->push_back('"');
}

}  // namespace

bool IsValidLabelName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

Labels Labels::FromUnsorted(std::vector<Label> labels) {
  std::stable_sort(labels.begin(), labels.end(),
                   [](const Label& a, const Label& b) { return a.name < b.name; });
  std::vector<Label> out;
  out.reserve(labels.size());
  for (auto& l : labels) {
    if (!out.empty() && out.back().name == l.name) {
      out.back().value = std::move(l.value);  // a later duplicate wins
    } else {
      out.push_back(std::move(l));
    }
  }
  std::erase_if(out, [](const Label& l) { return l.value.empty(); });
  return Labels(std::move(out));
}

Labels Labels::FromUnsorted(
    std::initializer_list<std::pair<std::string_view, std::string_view>> labels) {
  std::vector<Label> v;
  v.reserve(labels.size());
  for (const auto& [n, val] : labels) v.push_back({std::string(n), std::string(val)});
  return FromUnsorted(std::move(v));
}

Labels Labels::FromSortedUnchecked(std::vector<Label> labels) { return Labels(std::move(labels)); }

Labels Labels::FromViewsUnchecked(std::span<const LabelView> labels) {
  std::vector<Label> out;
  out.reserve(labels.size());
  for (const LabelView& l : labels) out.push_back(Label{std::string(l.name), std::string(l.value)});
  return Labels(std::move(out));
}

absl::Status Labels::Validate(const std::vector<Label>& labels) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const Label& l = labels[i];
    if (l.name.empty()) return absl::InvalidArgumentError("invalid labels: empty label name");
    if (l.name == kMetricNameLabel) {
      if (!IsValidMetricName(l.value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid metric name \"", l.value, "\""));
      }
    } else if (!IsValidLabelName(l.name)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid label name \"", l.name, "\""));
    }
    if (l.value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid labels: empty value for label \"", l.name, "\""));
    }
    if (!IsValidUtf8(l.value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid labels: value of label \"", l.name, "\" is not valid UTF-8"));
    }
    if (i > 0) {
      if (labels[i - 1].name == l.name) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid labels: duplicate label name \"", l.name, "\""));
      }
      if (labels[i - 1].name > l.name) {
        return absl::InvalidArgumentError(absl::StrCat("invalid labels: labels not sorted (\"",
                                                       labels[i - 1].name, "\" before \"",
                                                       l.name, "\")"));
      }
    }
  }
  return absl::OkStatus();
}

std::string_view Labels::Get(std::string_view name) const {
  auto it = std::lower_bound(labels_.begin(), labels_.end(), name,
                             [](const Label& l, std::string_view n) { return l.name < n; });
  if (it != labels_.end() && it->name == name) return it->value;
  return {};
}

bool Labels::Has(std::string_view name) const { return !Get(name).empty(); }

Labels Labels::With(std::string_view name, std::string_view value) const {
  std::vector<Label> out;
  out.reserve(labels_.size() + 1);
  bool placed = false;
  for (const Label& l : labels_) {
    if (!placed && l.name >= name) {
      if (!value.empty()) out.push_back({std::string(name), std::string(value)});
      placed = true;
      if (l.name == name) continue;
    }
    out.push_back(l);
  }
  if (!placed && !value.empty()) out.push_back({std::string(name), std::string(value)});
  return Labels(std::move(out));
}

Labels Labels::Without(std::string_view name) const { return With(name, ""); }

Labels Labels::Filter(const std::vector<std::string>& names, bool keep) const {
  std::vector<Label> out;
  for (const Label& l : labels_) {
    bool listed = std::find(names.begin(), names.end(), l.name) != names.end();
    if (listed == keep) out.push_back(l);
  }
  return Labels(std::move(out));
}

uint64_t Labels::Hash() const {
  // absl::Hash is not stable across processes; a simple FNV-1a-64 over the canonical bytes is.
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;  // separator that cannot appear in valid UTF-8
    h *= 1099511628211ULL;
  };
  for (const Label& l : labels_) {
    mix(l.name);
    mix(l.value);
  }
  return h;
}

std::string Labels::ToString() const {
  std::string out;
  std::string_view name = MetricName();
  out.append(name);
  out.push_back('{');
  bool first = true;
  for (const Label& l : labels_) {
    if (l.name == kMetricNameLabel) continue;
    if (!first) out.append(", ");
    first = false;
    out.append(l.name);
    out.push_back('=');
    AppendQuoted(&out, l.value);
  }
  out.push_back('}');
  if (!name.empty() && labels_.size() == 1) out.resize(out.size() - 2);
  return out;
}

}  // namespace tidemark
