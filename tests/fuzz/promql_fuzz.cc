// libFuzzer target for the PromQL parser: any input must parse or fail cleanly; when it
// parses, the printed form must parse again and print identically (a fixed point).
// Build and run with tests/fuzz/build_promql_fuzz.sh (clang; not part of the CMake build).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "query/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view query(reinterpret_cast<const char*>(data), size);
  auto parsed = tidemark::promql::Parse(query);
  if (!parsed.ok()) return 0;
  std::string printed = tidemark::promql::Print(**parsed);
  auto reparsed = tidemark::promql::Parse(printed);
  if (!reparsed.ok()) std::abort();  // the printer produced text the parser rejects
  if (tidemark::promql::Print(**reparsed) != printed) std::abort();  // not a fixed point
  return 0;
}
