#!/usr/bin/env bash
# Builds the remote write 2.0 fuzzer with clang (libFuzzer + ASan + UBSan) from the sources it needs,
# outside the CMake build, then optionally runs it:
#   tests/fuzz/build_remote_write2_fuzz.sh            # build only -> $OUT/remote_write2_fuzz
#   tests/fuzz/build_remote_write2_fuzz.sh -max_total_time=60   # build, then fuzz for 60 s
# Needs protoc and clang from Debian (clang, libclang-rt-dev or the clang package's runtime).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-/tmp/tidemark-fuzz}"
mkdir -p "$OUT/gen/ingest/proto"
protoc -I "$ROOT/ingest" --cpp_out="$OUT/gen/ingest" "$ROOT/ingest/proto/remote_write.proto" \
  "$ROOT/ingest/proto/remote_write2.proto"
CXXFLAGS=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I "$ROOT" -I "$OUT/gen"
          -I "$OUT/gen/ingest")
clang++ "${CXXFLAGS[@]}" \
  "$ROOT/tests/fuzz/remote_write2_fuzz.cc" \
  "$ROOT/ingest/remote_write.cc" \
  "$OUT/gen/ingest/proto/remote_write.pb.cc" "$OUT/gen/ingest/proto/remote_write2.pb.cc" \
  "$ROOT/storage/labels.cc" "$ROOT/storage/appender.cc" \
  -o "$OUT/remote_write2_fuzz" \
  $(pkg-config --libs protobuf) -lsnappy \
  -labsl_status -labsl_statusor -labsl_cord -labsl_cord_internal -labsl_cordz_info -labsl_cordz_functions \
  -labsl_cordz_handle -labsl_strings -labsl_strings_internal -labsl_str_format_internal \
  -labsl_int128 -labsl_throw_delegate -labsl_raw_logging_internal -labsl_base \
  -labsl_spinlock_wait -labsl_synchronization -labsl_time -labsl_time_zone -labsl_stacktrace \
  -labsl_symbolize -labsl_debugging_internal -labsl_demangle_internal -labsl_malloc_internal \
  -labsl_hash -labsl_city -labsl_low_level_hash -labsl_exponential_biased -labsl_strerror \
  -labsl_bad_optional_access
echo "built $OUT/remote_write2_fuzz"
if [[ $# -gt 0 ]]; then
  mkdir -p "$OUT/corpus_rw2"
  "$OUT/remote_write2_fuzz" "$@" "$OUT/corpus_rw2" "$ROOT/tests/fuzz/corpus/remote_write2"
fi
