#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
echo "asyncpool demo: 64 async jobs offloading trivial calls to the worker pool"
build/bench/acore_bench -n 20000 -j 64 -s 2
