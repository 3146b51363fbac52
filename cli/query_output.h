// Rendering of query results for the terminal: an aligned table, the HTTP API's JSON shape, or
// CSV (one column per label). Labels are shown as Prometheus shows them (`up{job="x"}`), values
// as Prometheus formats floats (`0.1`, `+Inf`, `NaN`). Pure functions; thread-safe.
#ifndef TIDEMARK_CLI_QUERY_OUTPUT_H_
#define TIDEMARK_CLI_QUERY_OUTPUT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "query/value.h"
#include "storage/labels.h"

namespace tidemark::cli {

enum class OutputFormat { kTable, kJson, kCsv };

// "table", "json", "csv"; InvalidArgument otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& name);

// Go's strconv.FormatFloat(v, 'f', -1, 64) as Prometheus writes sample values.
std::string FormatValue(double v);

// Renders a query result (instant or range).
std::string RenderValue(const promql::Value& value, OutputFormat format);

// Renders a list of strings (label names or values): one per line, a JSON array, or CSV.
std::string RenderStrings(const std::vector<std::string>& items, OutputFormat format);

// Renders series label sets.
std::string RenderSeries(const std::vector<Labels>& series, OutputFormat format);

// Lays out rows as columns separated by two spaces; the first row is the header.
std::string AlignTable(const std::vector<std::vector<std::string>>& rows);

// A CSV field, quoted when needed (RFC 4180).
std::string CsvField(const std::string& field);

}  // namespace tidemark::cli

#endif  // TIDEMARK_CLI_QUERY_OUTPUT_H_
