#include "query/value.h"

namespace tidemark::promql {

ValueType TypeOfValue(const Value& value) {
  if (std::holds_alternative<Scalar>(value)) return ValueType::kScalar;
  if (std::holds_alternative<String>(value)) return ValueType::kString;
  if (std::holds_alternative<Vector>(value)) return ValueType::kVector;
  return ValueType::kMatrix;
}

}  // namespace tidemark::promql
