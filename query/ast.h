// The PromQL abstract syntax tree, as produced by promql::Parse and printed by promql::Print.
//
// An Expr is a tagged node (std::variant) owning its children. Positions are byte offsets into
// the query text, for error messages. Times and durations are int64 milliseconds. The tree is a
// value: build it, evaluate it, print it; no node refers to anything outside the tree.
#ifndef TIDEMARK_QUERY_AST_H_
#define TIDEMARK_QUERY_AST_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "storage/matcher.h"

namespace tidemark::promql {

enum class ValueType : uint8_t { kNone, kScalar, kVector, kMatrix, kString };
std::string_view ValueTypeName(ValueType type);  // "scalar", "vector", "matrix", "string"

struct PositionRange {
  int start = 0;  // byte offsets into the query, [start, end)
  int end = 0;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct NumberLiteral {
  double value = 0;
};

struct StringLiteral {
  std::string value;  // unescaped
};

// `@ <t>`, `@ start()`, `@ end()` on a selector or subquery.
struct AtModifier {
  enum class Kind : uint8_t { kNone, kTimestamp, kStart, kEnd };
  Kind kind = Kind::kNone;
  int64_t timestamp_ms = 0;  // for kTimestamp
};

struct VectorSelector {
  std::string name;                     // the metric name when written before `{`, else ""
  std::vector<LabelMatcher> matchers;   // all matchers, incl. __name__="name" when name is set
  int64_t offset_ms = 0;                // `offset 5m` (negative allowed)
  AtModifier at;
};

// `selector[range]`. Offset and @ are held by the inner VectorSelector, as in Prometheus.
struct MatrixSelector {
  ExprPtr selector;  // a VectorSelector
  int64_t range_ms = 0;
};

// `expr[range:step]`; step_ms == 0 means the default evaluation interval.
struct SubqueryExpr {
  ExprPtr expr;
  int64_t range_ms = 0;
  int64_t step_ms = 0;
  int64_t offset_ms = 0;
  AtModifier at;
};

struct Call {
  std::string func;  // e.g. "rate"; the parser has checked it exists and its argument types
  std::vector<ExprPtr> args;
};

enum class AggregateOp : uint8_t {
  kSum, kAvg, kMin, kMax, kCount, kGroup, kStddev, kStdvar, kTopk, kBottomk, kQuantile,
  kCountValues,
};
std::string_view AggregateOpName(AggregateOp op);  // "sum", ...

struct AggregateExpr {
  AggregateOp op = AggregateOp::kSum;
  ExprPtr expr;
  ExprPtr param;                      // topk/bottomk/quantile/count_values, else null
  std::vector<std::string> grouping;  // labels of by(...) / without(...)
  bool without = false;
  bool has_grouping = false;          // `by ()` was written (prints it back)
};

enum class BinaryOp : uint8_t {
  kAdd, kSub, kMul, kDiv, kMod, kPow, kAtan2,
  kEql, kNeq, kGtr, kLss, kGte, kLte,
  kAnd, kOr, kUnless,
};
std::string_view BinaryOpName(BinaryOp op);  // "+", "==", "and", ...
bool IsComparison(BinaryOp op);
bool IsSetOperator(BinaryOp op);

struct VectorMatching {
  enum class Card : uint8_t { kOneToOne, kManyToOne, kOneToMany, kManyToMany };
  Card card = Card::kOneToOne;
  std::vector<std::string> matching_labels;  // of on(...) / ignoring(...)
  bool on = false;                           // on(...) rather than ignoring(...)
  bool has_matching = false;                 // on/ignoring was written (even if empty)
  std::vector<std::string> include;          // labels of group_left(...)/group_right(...)
};

struct BinaryExpr {
  BinaryOp op = BinaryOp::kAdd;
  ExprPtr lhs;
  ExprPtr rhs;
  bool return_bool = false;  // `bool` modifier on a comparison
  // Set when both sides are vectors (set operators are many-to-many).
  std::optional<VectorMatching> matching;
};

struct UnaryExpr {
  bool negate = true;  // `-x`; false for `+x`
  ExprPtr expr;
};

struct ParenExpr {
  ExprPtr expr;
};

struct Expr {
  using Node = std::variant<NumberLiteral, StringLiteral, VectorSelector, MatrixSelector,
                            SubqueryExpr, Call, AggregateExpr, BinaryExpr, UnaryExpr, ParenExpr>;
  Node node;
  PositionRange pos;

  template <typename T>
  const T* As() const { return std::get_if<T>(&node); }
  template <typename T>
  T* As() { return std::get_if<T>(&node); }
};

// The type an expression evaluates to (after the parser's checks).
ValueType TypeOf(const Expr& expr);

}  // namespace tidemark::promql

#endif  // TIDEMARK_QUERY_AST_H_
