// The table of PromQL functions (Prometheus 2.42): name, argument types, optional or variadic
// trailing arguments and return type. The parser type-checks calls against it; the evaluator
// looks functions up by name. Immutable static data; thread-safe.
#ifndef TIDEMARK_QUERY_FUNCTIONS_H_
#define TIDEMARK_QUERY_FUNCTIONS_H_

#include <string_view>
#include <vector>

#include "query/ast.h"

namespace tidemark::promql {

struct FunctionInfo {
  std::string_view name;
  // Types of the arguments in order. When `variadic` != 0 the last entry is the type of the
  // optional/repeated trailing arguments.
  std::vector<ValueType> arg_types;
  // 0: exactly arg_types.size() arguments. n > 0: the last type may appear 0..n times
  // (e.g. round(v, [s]), hour([v])). -1: the last type may appear any number of times
  // (label_join).
  int variadic = 0;
  ValueType return_type = ValueType::kVector;
};

// The function called `name` (case-sensitive), or nullptr when PromQL has none.
const FunctionInfo* FindFunction(std::string_view name);

// Every function, sorted by name.
const std::vector<FunctionInfo>& AllFunctions();

}  // namespace tidemark::promql

#endif  // TIDEMARK_QUERY_FUNCTIONS_H_
