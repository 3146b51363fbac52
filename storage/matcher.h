// LabelMatcher: one condition on a label value, as in a PromQL selector `name="v"`, `!=`, `=~`,
// `!~`. Regexes are RE2, fully anchored as in Prometheus. An absent label matches as "".
// Immutable and thread-safe once created.
#ifndef TIDEMARK_STORAGE_MATCHER_H_
#define TIDEMARK_STORAGE_MATCHER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace tidemark {

enum class MatchType : uint8_t { kEqual, kNotEqual, kRegexMatch, kRegexNoMatch };

class LabelMatcher {
 public:
  // InvalidArgument when a regex does not compile, with RE2's reason.
  static absl::StatusOr<LabelMatcher> Create(MatchType type, std::string name, std::string value);

  MatchType type() const { return type_; }
  const std::string& name() const { return name_; }
  const std::string& value() const { return value_; }

  bool Matches(std::string_view value) const;
  // True when the matcher matches the empty string, i.e. series without the label.
  bool MatchesEmpty() const { return Matches(""); }

  // `name="value"` etc., with the value quoted as PromQL prints it.
  std::string ToString() const;

 private:
  LabelMatcher() = default;
  MatchType type_ = MatchType::kEqual;
  std::string name_;
  std::string value_;
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace tidemark

#endif  // TIDEMARK_STORAGE_MATCHER_H_
