#!/usr/bin/env bash
# Sets up, builds and runs every test: the GoogleTest suites (ctest) and the CLI conformance
# cases. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build=${SDGEN_BUILD_DIR:-build}
status=0
# ctest runs nproc tests at once; each sdgen process would otherwise take every core (OpenMP),
# and the oversubscribed machine slows the timing-sensitive CLI tests (kill/SIGINT mid-batch,
# the benchmark's step-vs-end-to-end check) past their limits. One thread per test process.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} ctest --test-dir "$build" --output-on-failure -j"$(nproc)" ||
  status=1
# The conformance runner needs Debian's numpy and Pillow: use Debian's python3. The folders of
# the features that have landed: text-to-image (cases.json) and SDXL.
if [[ -d ../shared/conformance ]]; then
  /usr/bin/python3 ../shared/conformance/run.py "$build/sdgen" \
    --cases ../shared/conformance/cases.json --cases ../shared/conformance/sdxl/cases.json ||
    status=1
else
  echo "test: ../shared/conformance not found; conformance cases skipped" >&2
fi
# A short libFuzzer run of the safetensors parser (ASan + UBSan), when clang is here.
if command -v clang++ >/dev/null; then
  fuzz=${SDGEN_FUZZ_BUILD_DIR:-build-fuzz}
  if { [[ -f "$fuzz/CMakeCache.txt" ]] || CC=clang CXX=clang++ cmake -S . -B "$fuzz" -G Ninja \
         -DCMAKE_BUILD_TYPE=Release -DSDGEN_FUZZ=ON -DSDGEN_BUILD_TESTS=OFF >/dev/null; } &&
     cmake --build "$fuzz" --target fuzz_safetensors >/dev/null; then
    mkdir -p "$fuzz/corpus"
    "$fuzz/fuzz_safetensors" "$fuzz/corpus" fuzz/corpus_safetensors -max_total_time=20 \
      -print_final_stats=0 2>"$fuzz/fuzz.log" || { tail -30 "$fuzz/fuzz.log"; status=1; }
    echo "fuzz: $(grep -c '' "$fuzz/fuzz.log") log lines, $(grep -o 'Done [0-9]* runs.*' "$fuzz/fuzz.log" || echo 'no summary line')"
  else
    echo "fuzz: the fuzz target did not build" >&2
    status=1
  fi
fi
exit $status
