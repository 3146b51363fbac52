#!/usr/bin/env bash
# Builds one libFuzzer target with clang (libFuzzer + ASan + UBSan, outside the CMake build) and
# fuzzes it for a bounded time on a copy of its seed corpus. Fails on any crash, sanitizer
# report, timeout or out-of-memory. ctest runs one per fuzzer (tests/fuzz/CMakeLists.txt,
# label `fuzz`).
#
#   tests/fuzz/run_fuzzer.sh NAME SECONDS [OUT_DIR]
#     NAME     a target: tests/fuzz/NAME.cc (chunk_fuzz, promql_fuzz, remote_write_fuzz, ...)
#     SECONDS  how long to fuzz (-max_total_time); 0 = build only
#     OUT_DIR  where objects, the binary, the corpus copy and crash inputs go
#              (default: $FUZZ_OUT or build/tests/fuzz)
#   Extra libFuzzer flags can be given in $FUZZ_FLAGS, e.g. FUZZ_FLAGS="-jobs=2 -workers=2".
#
# Seeds are read from tests/fuzz/corpus/<NAME without _fuzz>/ and never written: the fuzzer
# works on a fresh copy in OUT_DIR/NAME/corpus. A crashing input is kept in OUT_DIR/NAME/ and
# printed (base64) in the log; reproduce with `OUT_DIR/NAME/NAME <file>`, then add it as a
# named regression test (../shared/STYLE.md, rule 11).
#
# Needs clang++ and libclang-rt-14-dev (the libFuzzer runtime), protoc for the protobuf-based
# targets; all from scripts/install-deps.sh. Objects are rebuilt only when a source or a header
# they include changed, so a second run starts fuzzing at once.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
usage() { echo "usage: $0 NAME SECONDS [OUT_DIR]" >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || usage
NAME="$1"
SECONDS_TO_FUZZ="$2"
[[ "$SECONDS_TO_FUZZ" =~ ^[0-9]+$ ]] || usage
OUT_BASE="${3:-${FUZZ_OUT:-$ROOT/build/tests/fuzz}}"
OUT="$OUT_BASE/$NAME"
CXX="${FUZZ_CXX:-clang++}"

# --- The targets: everything per fuzzer lives in this table. ----------------------------------
# LIB_SRCS go into a static archive, so the linker takes only the objects the target needs: a
# file the target does not use costs compile time but never a link error.
# PROTOS are generated with protoc (imports relative to ingest/) and archived with LIB_SRCS.
# PKGS are pkg-config modules to link.
ABSL_PKGS=(absl_status absl_statusor absl_strings absl_str_format absl_cord absl_hash absl_time
           absl_synchronization absl_raw_hash_set absl_bad_optional_access
           absl_bad_variant_access)
# Targets of one FAMILY have the same LIB_SRCS and PROTOS and share their objects.
LIB_SRCS=()
PROTOS=()
PKGS=("${ABSL_PKGS[@]}")
LIBS=()
FAMILY="$NAME"
case "$NAME" in
  chunk_fuzz)
    LIB_SRCS=(storage/chunk.cc)
    ;;
  promql_fuzz)
    # Every query/*.cc, found now (query/ grows): the parser, lexer, printer, function table and
    # whatever they come to need. The evaluator's files are left out only to save compile time;
    # the archive keeps the link right either way.
    for f in "$ROOT"/query/*.cc; do
      case "$(basename "$f")" in
        engine.cc|evaluator.cc|aggregation.cc|binary_ops.cc|functions_eval.cc) ;;
        rate_functions.cc|value.cc) ;;
        *) LIB_SRCS+=("query/$(basename "$f")") ;;
      esac
    done
    LIB_SRCS+=(storage/matcher.cc storage/labels.cc)
    PKGS+=(re2)
    ;;
  remote_write_fuzz|remote_write2_fuzz|remote_write_decode_fuzz)
    LIB_SRCS=(ingest/remote_write.cc ingest/rw1_decode.cc storage/labels.cc storage/appender.cc)
    PROTOS=(ingest/proto/remote_write.proto ingest/proto/remote_write2.proto)
    FAMILY=remote_write
    PKGS+=(protobuf)
    LIBS+=(-lsnappy)
    ;;
  otlp_json_fuzz|otlp_proto_fuzz)
    # Every ingest/otlp*.cc and OTLP .proto, found now; the archive takes what the target uses.
    for f in "$ROOT"/ingest/otlp*.cc; do LIB_SRCS+=("ingest/$(basename "$f")"); done
    LIB_SRCS+=(storage/labels.cc storage/appender.cc)
    for f in "$ROOT"/ingest/proto/otlp/*.proto; do
      PROTOS+=("ingest/proto/otlp/$(basename "$f")")
    done
    PKGS+=(protobuf zlib)
    FAMILY=otlp
    ;;
  *)
    echo "run_fuzzer: unknown fuzzer '$NAME': add its sources to the table in $0" >&2
    exit 2
    ;;
esac

# --- Build. -----------------------------------------------------------------------------------
# OUT_BASE/lib-FAMILY/ holds the shared objects (and generated protobuf code) and is locked while
# building; OUT_BASE/NAME/ holds the target's own object, binary, corpus copy and crash inputs and
# is locked while fuzzing, so concurrent runs (ctest -j, two ctest invocations) take turns.
mkdir -p "$OUT"
exec 9>"$OUT.lock"
flock 9
BIN="$OUT/$NAME"
LIB="$OUT_BASE/lib-$FAMILY"
SANITIZE=(-fsanitize=address,undefined -fno-sanitize-recover=all)
CXXFLAGS=(-std=c++20 -g -O1 -fno-omit-frame-pointer "${SANITIZE[@]}" -I "$ROOT" -I "$LIB/gen"
          -I "$LIB/gen/ingest" -Wno-unused-command-line-argument)
if ! command -v "$CXX" >/dev/null; then
  echo "run_fuzzer: $CXX not found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
mkdir -p "$LIB"
exec 8>"$LIB.lock"
flock 8
# Objects from other flags (or another compiler) are not reused.
stamp="$("$CXX" --version | head -1) ${CXXFLAGS[*]}"
for dir in "$LIB" "$OUT"; do
  if [[ ! -f "$dir/flags" || "$(cat "$dir/flags")" != "$stamp" ]]; then
    rm -rf "$dir/obj" "$dir/gen"
    printf '%s' "$stamp" > "$dir/flags"
  fi
done
mkdir -p "$LIB/obj" "$LIB/gen/ingest" "$OUT/obj"

# Generated protobuf sources (regenerated when a .proto is newer).
gen_srcs=()
if [[ ${#PROTOS[@]} -gt 0 ]]; then
  regen=0
  for p in "${PROTOS[@]}"; do
    pb="$LIB/gen/${p%.proto}.pb.cc"
    [[ -f "$pb" && "$pb" -nt "$ROOT/$p" ]] || regen=1
    gen_srcs+=("$pb")
  done
  if [[ $regen -eq 1 ]]; then
    (cd "$ROOT/ingest" && protoc -I . --cpp_out="$LIB/gen/ingest" "${PROTOS[@]#ingest/}")
  fi
fi

# Compiles $1 to $2 unless $2 is newer than $1 and every header it included last time.
compile() {
  local src="$1" obj="$2" extra="$3" dep="${2%.o}.d" stale=0
  if [[ -f "$obj" && -f "$dep" ]]; then
    # The depfile lists "obj: src hdr hdr ..." over continued lines.
    for f in $(sed -e 's/\\$//' -e 's/^[^:]*://' "$dep"); do
      if [[ ! -e "$f" || "$f" -nt "$obj" ]]; then stale=1; break; fi
    done
  else
    stale=1
  fi
  [[ $stale -eq 1 ]] || return 0
  mkdir -p "$(dirname "$obj")"
  echo "run_fuzzer: compiling ${src#"$ROOT"/}"
  # shellcheck disable=SC2086
  "$CXX" "${CXXFLAGS[@]}" $extra -MMD -MF "$dep" -c "$src" -o "$obj"
}

# The library sources, instrumented for coverage but without libFuzzer's main.
objs=()
for s in "${LIB_SRCS[@]}"; do
  compile "$ROOT/$s" "$LIB/obj/${s%.cc}.o" "-fsanitize=fuzzer-no-link"
  objs+=("$LIB/obj/${s%.cc}.o")
done
for s in "${gen_srcs[@]}"; do
  rel="${s#"$LIB"/gen/}"
  # Generated code is not ours to fuzz: no coverage instrumentation, sanitizers still on.
  compile "$s" "$LIB/obj/gen/${rel%.cc}.o" ""
  objs+=("$LIB/obj/gen/${rel%.cc}.o")
done
rm -f "$LIB/lib.a"
if [[ ${#objs[@]} -gt 0 ]]; then ar rcs "$LIB/lib.a" "${objs[@]}"; fi

compile "$ROOT/tests/fuzz/$NAME.cc" "$OUT/obj/$NAME.o" "-fsanitize=fuzzer-no-link"
# shellcheck disable=SC2046
"$CXX" "${CXXFLAGS[@]}" -fsanitize=fuzzer "$OUT/obj/$NAME.o" \
  $([[ -f "$LIB/lib.a" ]] && echo "$LIB/lib.a") \
  $(pkg-config --libs "${PKGS[@]}") "${LIBS[@]}" -o "$BIN"
exec 8>&-  # the shared objects are free for the next target
echo "run_fuzzer: built $BIN"
[[ "$SECONDS_TO_FUZZ" -gt 0 ]] || exit 0

# --- Fuzz on a copy of the seeds. --------------------------------------------------------------
SEEDS="$ROOT/tests/fuzz/corpus/${NAME%_fuzz}"
CORPUS="$OUT/corpus"
rm -rf "$CORPUS"
mkdir -p "$CORPUS"
if [[ -d "$SEEDS" ]]; then
  cp -r "$SEEDS"/. "$CORPUS"/
else
  echo "run_fuzzer: no seed corpus at ${SEEDS#"$ROOT"/}; starting empty"
fi
rm -f "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-* "$OUT"/slow-unit-*
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
echo "run_fuzzer: fuzzing $NAME for ${SECONDS_TO_FUZZ}s on $(find "$CORPUS" -type f | wc -l) seeds"
status=0
# shellcheck disable=SC2086
"$BIN" "$CORPUS" -max_total_time="$SECONDS_TO_FUZZ" -timeout=10 -rss_limit_mb=2048 \
  -max_len=4096 -print_final_stats=1 -artifact_prefix="$OUT/" ${FUZZ_FLAGS:-} || status=$?
if [[ $status -ne 0 ]]; then
  echo "run_fuzzer: $NAME FAILED (exit $status)"
  for a in "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* "$OUT"/oom-*; do
    [[ -f "$a" ]] || continue
    echo "run_fuzzer: input $a (base64):"
    base64 "$a" | head -c 20000
    echo
  done
  exit 1
fi
echo "run_fuzzer: $NAME passed: no crash in ${SECONDS_TO_FUZZ}s"
