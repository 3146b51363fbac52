#include "cli/time_args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "query/parser.h"

namespace tidemark::cli {
namespace {

bool ParseSeconds(std::string_view text, double* out) {
  if (text.empty()) return false;
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  // strtod accepts hex and "inf"; only plain decimals are seconds.
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')) {
      return false;
    }
  }
  *out = v;
  return true;
}

}  // namespace

absl::StatusOr<int64_t> ParseTimeArg(std::string_view text, int64_t now_ms) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot parse time \"", std::string(text), "\"", std::string(why),
        ": use RFC3339 (2024-03-01T00:00:00Z), Unix seconds (1709251200) or now, now-1h, "
        "now+30m"));
  };
  if (text.substr(0, 3) == "now") {
    std::string_view rest = text.substr(3);
    if (rest.empty()) return now_ms;
    if (rest[0] != '-' && rest[0] != '+') return invalid("");
    absl::StatusOr<int64_t> d = promql::ParseDuration(rest.substr(1));
    if (!d.ok()) return invalid(absl::StrCat(" (", d.status().message(), ")"));
    return rest[0] == '-' ? now_ms - *d : now_ms + *d;
  }
  double seconds = 0;
  if (ParseSeconds(text, &seconds)) return static_cast<int64_t>(std::llround(seconds * 1000));
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, std::string(text), &t, &err)) {
    return absl::ToUnixMillis(t);
  }
  return invalid("");
}

absl::StatusOr<int64_t> ParseDurationArg(std::string_view text) {
  double seconds = 0;
  int64_t ms = 0;
  if (ParseSeconds(text, &seconds)) {
    ms = static_cast<int64_t>(std::llround(seconds * 1000));
  } else {
    absl::StatusOr<int64_t> d = promql::ParseDuration(text);
    if (!d.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot parse duration \"", std::string(text),
                                                     "\": use 30s, 5m, 1h, 7d or seconds"));
    }
    ms = *d;
  }
  if (ms <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("duration \"", std::string(text), "\" must be positive"));
  }
  return ms;
}

std::string FormatTimeRfc3339(int64_t ms) {
  absl::Time t = absl::FromUnixMillis(ms);
  if (ms % 1000 != 0) return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

int64_t StartOfMonthUtc(int64_t ms) {
  absl::CivilSecond cs = absl::ToCivilSecond(absl::FromUnixMillis(ms), absl::UTCTimeZone());
  absl::CivilMonth month(cs);
  return absl::ToUnixMillis(absl::FromCivil(month, absl::UTCTimeZone()));
}

std::string FormatHumanDuration(int64_t ms) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  int64_t d = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60, sec = s % 60;
  if (d > 0) return h > 0 ? absl::StrCat(d, "d ", h, "h") : absl::StrCat(d, "d");
  if (h > 0) return m > 0 ? absl::StrCat(h, "h ", m, "m") : absl::StrCat(h, "h");
  if (m > 0) return absl::StrCat(m, "m");
  return absl::StrCat(sec, "s");
}

}  // namespace tidemark::cli
