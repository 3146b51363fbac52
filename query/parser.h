// PromQL parsing and printing: text -> AST -> canonical text.
//
// Parse accepts the whole Prometheus 2.x grammar and type-checks the result as Prometheus does
// (function argument types, operand types, `bool` only on comparisons, ...). Thread-safe.
#ifndef TIDEMARK_QUERY_PARSER_H_
#define TIDEMARK_QUERY_PARSER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "query/ast.h"

namespace tidemark::promql {

// The AST of `query`, or InvalidArgument with Prometheus's wording and the position:
// `1:5: parse error: unexpected <op:+>`.
absl::StatusOr<ExprPtr> Parse(std::string_view query);

// Parses a label selector such as `up{job="x"}` or `{a=~"b"}` (the `match[]` parameter of the
// series and labels APIs) into its matchers.
absl::StatusOr<std::vector<LabelMatcher>> ParseSelector(std::string_view selector);

// Parses a Prometheus duration such as `5m`, `1h30m`, `1m0s`, `250ms` into milliseconds.
absl::StatusOr<int64_t> ParseDuration(std::string_view text);
// Renders milliseconds as Prometheus does: `1h30m`, `5m`, `250ms`, `0s`.
std::string FormatDuration(int64_t ms);

// Canonical PromQL for `expr`, as Prometheus's String() renders it; Parse(Print(e)) gives back
// an equal tree.
std::string Print(const Expr& expr);

}  // namespace tidemark::promql

#endif  // TIDEMARK_QUERY_PARSER_H_
