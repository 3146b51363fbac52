// OTLP -> Prometheus naming. The rules and the unit tables are those of the OpenTelemetry
// compatibility specification and of Prometheus's OTLP translator (otlptranslator), restated
// here from their documented behaviour.
#include "ingest/otlp_naming.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tidemark::ingest {
namespace {

// Main units (UCUM "c/s" codes as OpenTelemetry uses them) to Prometheus base-unit words.
constexpr std::pair<std::string_view, std::string_view> kUnitMap[] = {
    // Time
    {"d", "days"},
    {"h", "hours"},
    {"min", "minutes"},
    {"s", "seconds"},
    {"ms", "milliseconds"},
    {"us", "microseconds"},
    {"ns", "nanoseconds"},
    // Bytes
    {"By", "bytes"},
    {"KiBy", "kibibytes"},
    {"MiBy", "mebibytes"},
    {"GiBy", "gibibytes"},
    {"TiBy", "tibibytes"},
    {"KBy", "kilobytes"},
    {"MBy", "megabytes"},
    {"GBy", "gigabytes"},
    {"TBy", "terabytes"},
    // SI
    {"m", "meters"},
    {"V", "volts"},
    {"A", "amperes"},
    {"J", "joules"},
    {"W", "watts"},
    {"g", "grams"},
    // Misc
    {"Cel", "celsius"},
    {"Hz", "hertz"},
    {"1", ""},
    {"%", "percent"},
};

// The unit after "/" ("per" unit), singular.
constexpr std::pair<std::string_view, std::string_view> kPerUnitMap[] = {
    {"s", "second"}, {"m", "minute"}, {"h", "hour"}, {"d", "day"},
    {"w", "week"},   {"mo", "month"}, {"y", "year"},
};

std::string_view Lookup(const auto& table, std::string_view key) {
  for (const auto& [from, to] : table) {
    if (from == key) return to;
  }
  return key;
}

bool IsMetricChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':';
}
bool IsLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Splits at every character for which `sep` is true, dropping empty fields.
template <typename Pred>
std::vector<std::string> Fields(std::string_view s, Pred sep) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && sep(s[i])) ++i;
    size_t start = i;
    while (i < s.size() && !sep(s[i])) ++i;
    if (i > start) out.emplace_back(s.substr(start, i - start));
  }
  return out;
}

std::string Join(const std::vector<std::string>& tokens) {
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0) out.push_back('_');
    out += tokens[i];
  }
  return out;
}

bool OnlyUnderscores(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '_'; });
}

// The main and "per" suffix words of `unit`, before character clean-up: "By/s" -> ("bytes",
// "per_second"); annotations in braces contribute nothing.
std::pair<std::string, std::string> UnitSuffixes(std::string_view unit) {
  std::string main_suffix, per_suffix;
  size_t slash = unit.find('/');
  std::string_view main_unit = TrimSpace(unit.substr(0, slash));
  if (!main_unit.empty() && main_unit.find_first_of("{}") == std::string_view::npos) {
    main_suffix = std::string(Lookup(kUnitMap, main_unit));
  }
  if (slash != std::string_view::npos && slash + 1 < unit.size()) {
    std::string_view per_unit = TrimSpace(unit.substr(slash + 1));
    if (!per_unit.empty() && per_unit.find_first_of("{}") == std::string_view::npos) {
      std::string_view word = Lookup(kPerUnitMap, per_unit);
      if (!word.empty()) per_suffix = "per_" + std::string(word);
    }
  }
  return {std::move(main_suffix), std::move(per_suffix)};
}

// Invalid metric characters to `_`, runs of `_` collapsed, a leading `_` dropped.
std::string CleanUpUnit(std::string_view unit) {
  std::string out;
  out.reserve(unit.size());
  for (char c : unit) {
    char m = IsMetricChar(c) ? c : '_';
    if (m == '_' && !out.empty() && out.back() == '_') continue;
    out.push_back(m);
  }
  if (!out.empty() && out.front() == '_') out.erase(0, 1);
  return out;
}

void TrimSuffix(std::string& s, std::string_view suffix) {
  if (s.size() >= suffix.size() && std::string_view(s).substr(s.size() - suffix.size()) == suffix) {
    s.resize(s.size() - suffix.size());
  }
}

void MoveToEnd(std::vector<std::string>& tokens, std::string_view word) {
  std::erase(tokens, std::string(word));
  tokens.emplace_back(word);
}

bool Contains(const std::vector<std::string>& tokens, std::string_view word) {
  return std::find(tokens.begin(), tokens.end(), word) != tokens.end();
}

}  // namespace

std::string BuildOtlpMetricName(std::string_view name, std::string_view unit, OtlpMetricType type,
                                bool with_suffixes) {
  std::string out;
  if (with_suffixes) {
    std::vector<std::string> tokens = Fields(name, [](char c) { return !IsMetricChar(c); });
    auto [main_raw, per_raw] = UnitSuffixes(unit);
    std::string main_suffix = CleanUpUnit(main_raw);
    std::string per_suffix = CleanUpUnit(per_raw);
    if (Contains(tokens, main_suffix)) main_suffix.clear();
    if (per_suffix == "per_") {
      per_suffix.clear();
    } else {
      TrimSuffix(per_suffix, "_");
      if (Contains(tokens, per_suffix)) per_suffix.clear();
    }
    if (!per_suffix.empty()) TrimSuffix(main_suffix, "_");
    if (!main_suffix.empty()) tokens.push_back(std::move(main_suffix));
    if (!per_suffix.empty()) tokens.push_back(std::move(per_suffix));
    if (type == OtlpMetricType::kMonotonicCounter) MoveToEnd(tokens, "total");
    if (unit == "1" && type == OtlpMetricType::kGauge) MoveToEnd(tokens, "ratio");
    out = Join(tokens);
  } else {
    out = Join(Fields(name, [](char c) { return !IsMetricChar(c) && c != '_'; }));
  }
  if (!out.empty() && IsDigit(out.front())) out.insert(out.begin(), '_');
  if (out.empty() || (out != name && OnlyUnderscores(out))) return "";
  return out;
}

std::string BuildOtlpLabelName(std::string_view key) {
  if (key.empty()) return "";
  bool reserved = key.size() >= 4 && key.substr(0, 2) == "__" && key.substr(key.size() - 2) == "__";
  std::string_view body = reserved ? key.substr(2, key.size() - 4) : key;
  std::string out;
  out.reserve(key.size() + 4);
  if (reserved) out = "__";
  bool previous_underscore = false;
  for (char c : body) {
    if (IsLabelChar(c)) {
      out.push_back(c);
      previous_underscore = false;
    } else if (!previous_underscore) {
      out.push_back('_');
      previous_underscore = true;
    }
  }
  if (reserved) out += "__";
  if (IsDigit(out.front())) out.insert(0, "key_");
  if (OnlyUnderscores(out)) return "";
  return out;
}

std::string BuildOtlpUnitName(std::string_view unit) {
  auto [main_raw, per_raw] = UnitSuffixes(unit);
  std::string main_suffix = CleanUpUnit(main_raw);
  std::string per_suffix = CleanUpUnit(per_raw);
  std::string out;
  if (!main_suffix.empty() && !per_suffix.empty()) {
    out = main_suffix + "_" + per_suffix;
  } else if (!main_suffix.empty()) {
    out = main_suffix;
  } else {
    out = per_suffix;
  }
  if (!out.empty() && out.front() == '_') out.erase(0, 1);
  if (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

}  // namespace tidemark::ingest
