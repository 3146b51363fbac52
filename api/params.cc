#include "api/params.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tidemark::api {
namespace {

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

constexpr std::string_view kMinTimeFormatted = "-292273086-05-16T16:47:06Z";
constexpr std::string_view kMaxTimeFormatted = "292277025-08-18T07:12:54.999999999Z";

}  // namespace

bool ParseGoFloat(std::string_view text, double* out) {
  if (text.empty()) return false;
  bool negative = false;
  std::string_view body = text;
  if (body.front() == '+' || body.front() == '-') {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  if (body.empty() || body.front() == '+' || body.front() == '-') return false;
  std::string lower = absl::AsciiStrToLower(absl::string_view(body.data(), body.size()));
  double v = 0;
  if (lower == "inf" || lower == "infinity") {
    v = std::numeric_limits<double>::infinity();
  } else if (lower == "nan") {
    v = std::numeric_limits<double>::quiet_NaN();
  } else {
    // from_chars also accepts "inf"/"nan" spellings Go does not; those were handled above.
    if (lower.find_first_not_of("0123456789.e+-") != std::string::npos) return false;
    auto [ptr, ec] = std::from_chars(body.data(), body.data() + body.size(), v);
    if (ptr != body.data() + body.size()) return false;
    if (ec == std::errc::result_out_of_range) {
      // Go returns ±Inf (with an error) on overflow and 0 on underflow; treat both as invalid.
      return false;
    }
    if (ec != std::errc()) return false;
  }
  *out = negative ? -v : v;
  return true;
}

absl::StatusOr<int64_t> ParseTime(std::string_view text) {
  double f = 0;
  if (ParseGoFloat(text, &f)) {
    double whole = 0;
    double frac = std::modf(f, &whole);
    frac = std::round(frac * 1000) / 1000;
    // Beyond what a millisecond timestamp can hold.
    if (!std::isfinite(whole) || std::fabs(whole) > 9.2e15) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot parse ", Quote(text), " to a valid timestamp"));
    }
    return static_cast<int64_t>(whole) * 1000 + static_cast<int64_t>(std::llround(frac * 1000));
  }
  if (text == kMinTimeFormatted) return kMinTimeMs;
  if (text == kMaxTimeFormatted) return kMaxTimeMs;
  absl::Time t;
  std::string err;
  // RFC3339 with an upper-case 'T', optional fraction, 'Z' or a numeric offset.
  if (text.size() >= 20 && text[10] == 'T' &&
      absl::ParseTime(absl::RFC3339_full, absl::string_view(text.data(), text.size()), &t, &err)) {
    return absl::ToUnixMillis(t);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cannot parse ", Quote(text), " to a valid timestamp"));
}

absl::StatusOr<int64_t> ParseModelDuration(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("empty duration string");
  if (text == "0") return 0;
  struct Unit {
    std::string_view name;
    int64_t ms;
  };
  static constexpr Unit kUnits[] = {
      {"y", 365LL * 24 * 3600 * 1000}, {"w", 7LL * 24 * 3600 * 1000}, {"d", 24LL * 3600 * 1000},
      {"h", 3600LL * 1000},            {"m", 60LL * 1000},            {"s", 1000},
      {"ms", 1},
  };
  auto invalid = [&] {
    return absl::InvalidArgumentError(absl::StrCat("not a valid duration string: ", Quote(text)));
  };
  size_t next_unit = 0;  // units must appear in decreasing order, each once
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t digits_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == digits_start) return invalid();
    int64_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data() + digits_start, text.data() + i, n);
    if (ec != std::errc()) return invalid();
    size_t unit_start = i;
    while (i < text.size() && (text[i] < '0' || text[i] > '9')) ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    size_t u = next_unit;
    while (u < std::size(kUnits) && kUnits[u].name != unit) ++u;
    if (u == std::size(kUnits)) return invalid();
    next_unit = u + 1;
    if (n > std::numeric_limits<int64_t>::max() / kUnits[u].ms ||
        total > std::numeric_limits<int64_t>::max() - n * kUnits[u].ms) {
      return absl::InvalidArgumentError("duration out of range");
    }
    total += n * kUnits[u].ms;
  }
  return total;
}

absl::StatusOr<absl::Duration> ParseDurationParam(std::string_view text) {
  double f = 0;
  if (ParseGoFloat(text, &f)) {
    double ns = f * 1e9;
    if (std::isnan(ns) || ns >= 9.223372036854775807e18 || ns <= -9.223372036854775808e18) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot parse ", Quote(text), " to a valid duration. It overflows int64"));
    }
    return absl::Nanoseconds(static_cast<int64_t>(ns));
  }
  absl::StatusOr<int64_t> ms = ParseModelDuration(text);
  if (ms.ok()) return absl::Milliseconds(*ms);
  return absl::InvalidArgumentError(
      absl::StrCat("cannot parse ", Quote(text), " to a valid duration"));
}

absl::StatusOr<int64_t> ParseLimit(std::string_view text) {
  if (text.empty()) return 0;
  int64_t limit = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("strconv.Atoi: parsing ", Quote(text), ": invalid syntax"));
  }
  if (limit <= 0) return absl::InvalidArgumentError("limit must be positive");
  return limit;
}

}  // namespace tidemark::api
