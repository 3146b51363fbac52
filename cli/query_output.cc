#include "cli/query_output.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/time_args.h"

namespace tidemark::cli {
namespace {

using nlohmann::json;

// Display width of a UTF-8 string (code points; good enough for labels and block characters).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

json MetricJson(const Labels& labels) {
  json m = json::object();
  for (const Label& l : labels) m[l.name] = l.value;
  return m;
}

json SampleJson(int64_t t, double v) {
  return json::array({static_cast<double>(t) / 1000.0, FormatValue(v)});
}

std::string Seconds(int64_t t) {
  return t % 1000 == 0 ? absl::StrCat(t / 1000) : absl::StrFormat("%.3f", t / 1000.0);
}

std::string SeriesName(const Labels& labels) {
  std::string s = labels.ToString();
  return s.empty() ? "{}" : s;
}

// Columns for CSV: __name__ first, then every other label name in order.
std::vector<std::string> LabelColumns(const std::vector<const Labels*>& all) {
  std::set<std::string> names;
  for (const Labels* l : all) {
    for (const Label& x : *l) {
      if (x.name != kMetricNameLabel) names.insert(x.name);
    }
  }
  std::vector<std::string> cols{std::string(kMetricNameLabel)};
  cols.insert(cols.end(), names.begin(), names.end());
  return cols;
}

std::string CsvRow(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += ',';
    out += CsvField(fields[i]);
  }
  out += '\n';
  return out;
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "json") return OutputFormat::kJson;
  if (name == "csv") return OutputFormat::kCsv;
  return absl::InvalidArgumentError(
      absl::StrCat("--format ", name, ": expected table, json or csv"));
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[400];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  if (ec != std::errc()) return absl::StrCat(v);
  std::string s(buf, end);
  return s;
}

std::string CsvField(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string AlignTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - Width(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

std::string RenderValue(const promql::Value& value, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    json data;
    if (const auto* s = std::get_if<promql::Scalar>(&value)) {
      data = {{"resultType", "scalar"}, {"result", SampleJson(s->t, s->v)}};
    } else if (const auto* s = std::get_if<promql::String>(&value)) {
      data = {{"resultType", "string"},
              {"result", json::array({static_cast<double>(s->t) / 1000.0, s->v})}};
    } else if (const auto* vec = std::get_if<promql::Vector>(&value)) {
      json result = json::array();
      for (const auto& e : *vec) {
        result.push_back({{"metric", MetricJson(e.labels)}, {"value", SampleJson(e.t, e.v)}});
      }
      data = {{"resultType", "vector"}, {"result", result}};
    } else {
      json result = json::array();
      for (const auto& series : std::get<promql::Matrix>(value)) {
        json values = json::array();
        for (const Sample& s : series.samples) values.push_back(SampleJson(s.t, s.v));
        result.push_back({{"metric", MetricJson(series.labels)}, {"values", values}});
      }
      data = {{"resultType", "matrix"}, {"result", result}};
    }
    return json{{"status", "success"}, {"data", data}}.dump() + "\n";
  }

  if (const auto* s = std::get_if<promql::Scalar>(&value)) {
    if (format == OutputFormat::kCsv)
      return "timestamp,value\n" + CsvRow({Seconds(s->t), FormatValue(s->v)});
    return AlignTable({{"SCALAR", "TIMESTAMP"}, {FormatValue(s->v), FormatTimeRfc3339(s->t)}});
  }
  if (const auto* s = std::get_if<promql::String>(&value)) {
    if (format == OutputFormat::kCsv) return "timestamp,value\n" + CsvRow({Seconds(s->t), s->v});
    return AlignTable({{"STRING", "TIMESTAMP"}, {s->v, FormatTimeRfc3339(s->t)}});
  }

  // Vector and matrix: one row per sample.
  struct Row {
    const Labels* labels;
    int64_t t;
    double v;
  };
  std::vector<Row> rows;
  if (const auto* vec = std::get_if<promql::Vector>(&value)) {
    for (const auto& e : *vec) rows.push_back({&e.labels, e.t, e.v});
  } else {
    for (const auto& series : std::get<promql::Matrix>(value)) {
      for (const Sample& s : series.samples) rows.push_back({&series.labels, s.t, s.v});
    }
  }
  if (format == OutputFormat::kCsv) {
    std::vector<const Labels*> all;
    for (const Row& r : rows) all.push_back(r.labels);
    std::vector<std::string> cols = LabelColumns(all);
    std::vector<std::string> header = cols;
    header.push_back("timestamp");
    header.push_back("value");
    std::string out = CsvRow(header);
    for (const Row& r : rows) {
      std::vector<std::string> fields;
      for (const std::string& c : cols) fields.emplace_back(r.labels->Get(c));
      fields.push_back(Seconds(r.t));
      fields.push_back(FormatValue(r.v));
      out += CsvRow(fields);
    }
    return out;
  }
  std::vector<std::vector<std::string>> table{{"SERIES", "VALUE", "TIMESTAMP"}};
  for (const Row& r : rows) {
    table.push_back({SeriesName(*r.labels), FormatValue(r.v), FormatTimeRfc3339(r.t)});
  }
  if (rows.empty()) return "(no data)\n";
  return AlignTable(table);
}

std::string RenderStrings(const std::vector<std::string>& items, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    return json{{"status", "success"}, {"data", items}}.dump() + "\n";
  }
  std::string out;
  for (const std::string& s : items) {
    out += format == OutputFormat::kCsv ? CsvField(s) : s;
    out += '\n';
  }
  return out;
}

std::string RenderSeries(const std::vector<Labels>& series, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    json data = json::array();
    for (const Labels& l : series) data.push_back(MetricJson(l));
    return json{{"status", "success"}, {"data", data}}.dump() + "\n";
  }
  if (format == OutputFormat::kCsv) {
    std::vector<const Labels*> all;
    for (const Labels& l : series) all.push_back(&l);
    std::vector<std::string> cols = LabelColumns(all);
    std::string out = CsvRow(cols);
    for (const Labels& l : series) {
      std::vector<std::string> fields;
      for (const std::string& c : cols) fields.emplace_back(l.Get(c));
      out += CsvRow(fields);
    }
    return out;
  }
  std::string out;
  for (const Labels& l : series) out += SeriesName(l) + "\n";
  return out;
}

}  // namespace tidemark::cli
