#!/usr/bin/env bash
# Installs the dependencies, builds, and starts `tidemark serve` on ./data (port 9201).
# Arguments are passed to `tidemark serve`, e.g. --web.listen-address=0.0.0.0:9201.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec ./build/tools/tidemark serve "$@"
