#include "api/form.h"

#include <algorithm>
#include <cctype>

namespace tidemark::api {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void ParseInto(std::string_view text, std::vector<std::pair<std::string, std::string>>& out) {
  while (!text.empty()) {
    size_t amp = text.find('&');
    std::string_view pair = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    out.emplace_back(UnescapeQueryComponent(key), UnescapeQueryComponent(value));
  }
}

}  // namespace

std::string UnescapeQueryComponent(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size() && HexDigit(text[i + 1]) >= 0 && HexDigit(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(text[i + 1]) * 16 + HexDigit(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool IsFormContentType(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  while (!media.empty() && media.front() == ' ') media.remove_prefix(1);
  static constexpr std::string_view kForm = "application/x-www-form-urlencoded";
  return media.size() == kForm.size() &&
         std::equal(media.begin(), media.end(), kForm.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

Form Form::Parse(std::string_view url_query, std::string_view body) {
  Form form;
  ParseInto(body, form.items_);
  ParseInto(url_query, form.items_);
  return form;
}

std::string Form::Value(std::string_view name) const {
  for (const auto& [key, value] : items_) {
    if (key == name) return value;
  }
  return "";
}

std::vector<std::string> Form::Values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [key, value] : items_) {
    if (key == name) out.push_back(value);
  }
  return out;
}

bool Form::Has(std::string_view name) const {
  return std::any_of(items_.begin(), items_.end(), [&](const auto& kv) { return kv.first == name; });
}

}  // namespace tidemark::api
