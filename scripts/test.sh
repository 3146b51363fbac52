#!/usr/bin/env bash
# Installs the dependencies, builds with warnings as errors, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh -DTIDEMARK_WERROR=ON
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 600
