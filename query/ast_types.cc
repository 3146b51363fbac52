// TypeOf: the value type of an expression, as Prometheus's Expr.Type().
#include "query/ast.h"
#include "query/functions.h"

namespace tidemark::promql {

ValueType TypeOf(const Expr& expr) {
  struct Visitor {
    ValueType operator()(const NumberLiteral&) const { return ValueType::kScalar; }
    ValueType operator()(const StringLiteral&) const { return ValueType::kString; }
    ValueType operator()(const VectorSelector&) const { return ValueType::kVector; }
    ValueType operator()(const MatrixSelector&) const { return ValueType::kMatrix; }
    ValueType operator()(const SubqueryExpr&) const { return ValueType::kMatrix; }
    ValueType operator()(const Call& c) const {
      const FunctionInfo* f = FindFunction(c.func);
      return f == nullptr ? ValueType::kNone : f->return_type;
    }
    ValueType operator()(const AggregateExpr&) const { return ValueType::kVector; }
    ValueType operator()(const BinaryExpr& b) const {
      if (b.lhs && b.rhs && TypeOf(*b.lhs) == ValueType::kScalar &&
          TypeOf(*b.rhs) == ValueType::kScalar) {
        return ValueType::kScalar;
      }
      return ValueType::kVector;
    }
    ValueType operator()(const UnaryExpr& u) const {
      return u.expr ? TypeOf(*u.expr) : ValueType::kNone;
    }
    ValueType operator()(const ParenExpr& p) const {
      return p.expr ? TypeOf(*p.expr) : ValueType::kNone;
    }
  };
  return std::visit(Visitor{}, expr.node);
}

}  // namespace tidemark::promql
