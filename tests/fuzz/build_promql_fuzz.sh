#!/usr/bin/env bash
# Builds the PromQL parser fuzzer with clang (libFuzzer + ASan + UBSan) from the sources it
# needs, outside the CMake build, then optionally runs it on the seed corpus:
#   tests/fuzz/build_promql_fuzz.sh                        # build only -> $OUT/promql_fuzz
#   tests/fuzz/build_promql_fuzz.sh -max_total_time=60     # build, then fuzz for 60 s
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-/tmp/tidemark-fuzz}"
mkdir -p "$OUT"
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I "$ROOT" \
  "$ROOT/tests/fuzz/promql_fuzz.cc" \
  "$ROOT/query/lexer.cc" "$ROOT/query/parser.cc" "$ROOT/query/printer.cc" \
  "$ROOT/query/functions.cc" "$ROOT/query/ast.cc" "$ROOT/query/ast_types.cc" \
  "$ROOT/storage/matcher.cc" \
  -o "$OUT/promql_fuzz" \
  $(pkg-config --libs re2) \
  -labsl_status -labsl_statusor -labsl_cord -labsl_cord_internal -labsl_cordz_info -labsl_cordz_functions \
  -labsl_cordz_handle -labsl_strings -labsl_strings_internal -labsl_str_format_internal \
  -labsl_int128 -labsl_throw_delegate -labsl_raw_logging_internal -labsl_base \
  -labsl_spinlock_wait -labsl_synchronization -labsl_time -labsl_time_zone -labsl_stacktrace \
  -labsl_symbolize -labsl_debugging_internal -labsl_demangle_internal -labsl_malloc_internal \
  -labsl_hash -labsl_city -labsl_low_level_hash -labsl_exponential_biased -labsl_strerror \
  -labsl_bad_optional_access -labsl_bad_variant_access
echo "built $OUT/promql_fuzz"
if [[ $# -gt 0 ]]; then
  mkdir -p "$OUT/promql_corpus"
  "$OUT/promql_fuzz" "$OUT/promql_corpus" "$ROOT/tests/fuzz/corpus/promql" "$@"
fi
