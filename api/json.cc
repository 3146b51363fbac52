#include "api/json.h"

#include <charconv>
#include <cmath>
#include <type_traits>
#include <variant>

namespace tidemark::api {

void AppendValue(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  double abs = std::fabs(v);
  std::chars_format format = std::chars_format::fixed;
  if (abs != 0 && (abs < 1e-6 || abs >= 1e21)) format = std::chars_format::scientific;
  char buf[400];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v, format);
  if (ec != std::errc()) {  // BUG: the buffer holds any double in these formats.
    out += "NaN";
    return;
  }
  out.append(buf, ptr);
}

std::string FormatValue(double v) {
  std::string out;
  AppendValue(out, v);
  return out;
}

void AppendTimestamp(std::string& out, int64_t t_ms) {
  uint64_t t = static_cast<uint64_t>(t_ms);
  if (t_ms < 0) {
    out.push_back('-');
    t = 0 - t;
  }
  out += std::to_string(t / 1000);
  uint64_t fraction = t % 1000;
  if (fraction != 0) {
    out.push_back('.');
    if (fraction < 100) out.push_back('0');
    if (fraction < 10) out.push_back('0');
    out += std::to_string(fraction);
  }
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == '<' || c == '>' || c == '&') {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void AppendLabels(std::string& out, const Labels& labels) {
  out.push_back('{');
  bool first = true;
  for (const Label& label : labels) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, label.name);
    out.push_back(':');
    AppendJsonString(out, label.value);
  }
  out.push_back('}');
}

namespace {

void AppendPoint(std::string& out, int64_t t, double v) {
  out.push_back('[');
  AppendTimestamp(out, t);
  out += ",\"";
  AppendValue(out, v);
  out += "\"]";
}

}  // namespace

void AppendQueryData(std::string& out, const promql::Value& value) {
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, promql::Scalar>) {
          out += "{\"resultType\":\"scalar\",\"result\":";
          AppendPoint(out, v.t, v.v);
        } else if constexpr (std::is_same_v<T, promql::String>) {
          out += "{\"resultType\":\"string\",\"result\":[";
          AppendTimestamp(out, v.t);
          out.push_back(',');
          AppendJsonString(out, v.v);
          out.push_back(']');
        } else if constexpr (std::is_same_v<T, promql::Vector>) {
          out += "{\"resultType\":\"vector\",\"result\":[";
          for (size_t i = 0; i < v.size(); ++i) {
            if (i > 0) out.push_back(',');
            out += "{\"metric\":";
            AppendLabels(out, v[i].labels);
            out += ",\"value\":";
            AppendPoint(out, v[i].t, v[i].v);
            out.push_back('}');
          }
          out.push_back(']');
        } else {
          out += "{\"resultType\":\"matrix\",\"result\":[";
          for (size_t i = 0; i < v.size(); ++i) {
            if (i > 0) out.push_back(',');
            out += "{\"metric\":";
            AppendLabels(out, v[i].labels);
            out += ",\"values\":[";
            for (size_t j = 0; j < v[i].samples.size(); ++j) {
              if (j > 0) out.push_back(',');
              AppendPoint(out, v[i].samples[j].t, v[i].samples[j].v);
            }
            out += "]}";
          }
          out.push_back(']');
        }
      },
      value);
  out.push_back('}');
}

std::string SuccessEnvelope(std::string_view data_json, const std::vector<std::string>& warnings) {
  std::string out = "{\"status\":\"success\",\"data\":";
  out += data_json;
  if (!warnings.empty()) out += ",\"warnings\":" + StringArray(warnings);
  out.push_back('}');
  return out;
}

std::string ErrorEnvelope(std::string_view error_type, std::string_view message) {
  std::string out = "{\"status\":\"error\",\"errorType\":";
  AppendJsonString(out, error_type);
  out += ",\"error\":";
  AppendJsonString(out, message);
  out.push_back('}');
  return out;
}

std::string StringArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonString(out, items[i]);
  }
  out.push_back(']');
  return out;
}

}  // namespace tidemark::api
