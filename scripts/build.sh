#!/usr/bin/env bash
# Configures and builds sdgen (Release) into build/ (or $SDGEN_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SDGEN_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[[ -f "$build/CMakeCache.txt" ]] || cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build" -j"$(nproc)"
