#!/usr/bin/env bash
# Installs every Debian package Tidemark needs to build, test and benchmark.
# Idempotent: packages already present are skipped by apt-get. `--bench` adds the benchmark's
# peers (VictoriaMetrics) and tools.
set -euo pipefail

packages=(
  g++ make cmake ninja-build pkg-config
  librocksdb-dev libprotobuf-dev protobuf-compiler libabsl-dev
  libcpp-httplib-dev libsnappy-dev libgtest-dev libgmock-dev libbenchmark-dev
  libre2-dev libyaml-cpp-dev prometheus-cpp-dev nlohmann-json3-dev libcli11-dev libssl-dev zlib1g-dev
  prometheus curl python3
  clang libclang-rt-14-dev  # libFuzzer + sanitizers for tests/fuzz (run_fuzzer.sh)
)
# With --bench, also the benchmark's peers and tools (bench/README.md).
if [ "${1:-}" = "--bench" ]; then
  packages+=(victoria-metrics rocksdb-tools linux-perf)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm run the OpenTelemetry JS SDK end-to-end test (tests/e2e/otel_sdk_test.py, which
# runs `npm ci` itself). Any node/npm on the PATH will do; otherwise Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
