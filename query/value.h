// The values a PromQL query returns: scalar, string, instant vector, range vector (matrix).
// Plain data; thread-compatible.
#ifndef TIDEMARK_QUERY_VALUE_H_
#define TIDEMARK_QUERY_VALUE_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "query/ast.h"
#include "storage/labels.h"
#include "storage/sample.h"

namespace tidemark::promql {

struct Scalar {
  int64_t t = 0;
  double v = 0;
};

struct String {
  int64_t t = 0;
  std::string v;
};

// One element of an instant vector.
struct VectorElement {
  Labels labels;
  int64_t t = 0;
  double v = 0;
};
using Vector = std::vector<VectorElement>;

// One series of a range vector.
struct MatrixSeries {
  Labels labels;
  std::vector<Sample> samples;  // increasing time
};
using Matrix = std::vector<MatrixSeries>;

using Value = std::variant<Scalar, String, Vector, Matrix>;

ValueType TypeOfValue(const Value& value);

}  // namespace tidemark::promql

#endif  // TIDEMARK_QUERY_VALUE_H_
