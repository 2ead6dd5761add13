#!/usr/bin/env bash
# Builds sdgen's libFuzzer targets (clang, ASan + UBSan; fuzz/README.md) and runs each one:
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 60)
#   FUZZ_RUNS=N scripts/fuzz.sh 0 [TARGET...]   each target until N executions
# Targets run side by side, one per core. New inputs go to build-fuzz/corpus/<target> (the
# committed seeds in fuzz/corpus_<target> are read, not written); a crash's input is saved as
# build-fuzz/crashes/<target>/crash-*, and the script exits 1. Each target's log is
# build-fuzz/logs/<target>.log; the last lines printed are executions, speed and coverage.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] ||
  targets=(safetensors prompt_file prompt_parser output_template gzip_vocab config_json png_text
    image)
build=${SDGEN_FUZZ_BUILD_DIR:-build-fuzz}
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSDGEN_FUZZ=ON \
    -DSDGEN_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" --target "${targets[@]/#/fuzz_}" >/dev/null
mkdir -p "$build/logs"
run_one() {
  local t=$1 build=$2 seconds=$3
  mkdir -p "$build/corpus/$t" "$build/crashes/$t"
  local limit=(-max_total_time="$seconds")
  [[ -n "${FUZZ_RUNS:-}" ]] && limit=(-runs="$FUZZ_RUNS")
  local dict=()
  [[ -f "fuzz/$t.dict" ]] && dict=(-dict="fuzz/$t.dict")
  local status=0
  "$build/fuzz_$t" "$build/corpus/$t" "fuzz/corpus_$t" "${limit[@]}" "${dict[@]}" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$build/crashes/$t/" \
    >"$build/logs/$t.log" 2>&1 || status=$?
  local runs speed cov
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/logs/$t.log" | grep -o '[0-9]*$' || echo '?')
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$build/logs/$t.log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$build/logs/$t.log" | tail -1 | grep -o '[0-9]*$' || echo '?')
  if [[ $status -ne 0 ]]; then
    echo "fuzz_$t: FAILED (exit $status) after $runs runs; see $build/logs/$t.log and $build/crashes/$t/"
    grep -m5 -E 'ERROR|invariant|runtime error' "$build/logs/$t.log" || true
    return 1
  fi
  echo "fuzz_$t: $runs runs, $speed exec/s, coverage $cov edges, no crash"
}
export -f run_one
printf '%s\n' "${targets[@]}" |
  xargs -P "$(nproc)" -I{} bash -c 'run_one "$@"' _ {} "$build" "$seconds"
