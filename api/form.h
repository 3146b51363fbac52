// Form: request parameters merged from the URL query and an application/x-www-form-urlencoded
// body, as Go's http.Request.FormValue sees them (Prometheus reads its API parameters that way).
//
// Body values come first, then URL values: Value() returns the first (so a body value wins),
// Values() returns all of them in that order (repeated `match[]`). Plain data; thread-compatible.
#ifndef TIDEMARK_API_FORM_H_
#define TIDEMARK_API_FORM_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tidemark::api {

class Form {
 public:
  Form() = default;
  // `url_query` is the part of the target after '?'; `body` is only read when it is a form
  // (pass an empty view for any other content type). Malformed escapes are kept literally.
  static Form Parse(std::string_view url_query, std::string_view body);

  // The first value of `name`, or "" when absent.
  std::string Value(std::string_view name) const;
  // Every value of `name`, body values first.
  std::vector<std::string> Values(std::string_view name) const;
  bool Has(std::string_view name) const;

  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// Decodes `%XX` escapes and '+' (as space) of one query component.
std::string UnescapeQueryComponent(std::string_view text);

// True for the Content-Type of a urlencoded form (parameters may follow: `; charset=...`).
bool IsFormContentType(std::string_view content_type);

}  // namespace tidemark::api

#endif  // TIDEMARK_API_FORM_H_
