#include "storage/matcher.h"

#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace tidemark {
namespace {

std::string_view OpText(MatchType type) {
  switch (type) {
    case MatchType::kEqual: return "=";
    case MatchType::kNotEqual: return "!=";
    case MatchType::kRegexMatch: return "=~";
    case MatchType::kRegexNoMatch: return "!~";
  }
  return "?";
}

}  // namespace

absl::StatusOr<LabelMatcher> LabelMatcher::Create(MatchType type, std::string name,
                                                  std::string value) {
  LabelMatcher m;
  m.type_ = type;
  m.name_ = std::move(name);
  m.value_ = std::move(value);
  if (type == MatchType::kRegexMatch || type == MatchType::kRegexNoMatch) {
    RE2::Options opts;
    opts.set_log_errors(false);
    opts.set_dot_nl(false);  // as Prometheus 2.x: `.` does not match a newline
    auto re = std::make_shared<RE2>(absl::StrCat("^(?:", m.value_, ")$"), opts);
    if (!re->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("error parsing regexp: ", re->error(), ": `", m.value_, "`"));
    }
    m.re_ = std::move(re);
  }
  return m;
}

bool LabelMatcher::Matches(std::string_view value) const {
  switch (type_) {
    case MatchType::kEqual: return value == value_;
    case MatchType::kNotEqual: return value != value_;
    case MatchType::kRegexMatch: return RE2::FullMatch(value, *re_);
    case MatchType::kRegexNoMatch: return !RE2::FullMatch(value, *re_);
  }
  return false;
}

std::string LabelMatcher::ToString() const {
  std::string out = name_;
  out.append(OpText(type_));
  out.push_back('"');
  for (char c : value_) {
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      default: out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace tidemark
