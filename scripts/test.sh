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
# the features that have landed: text-to-image (cases.json), SDXL, img2img / inpainting / the
# hires fix, and LoRA / embeddings / diffusers folders.
if [[ -d ../shared/conformance ]]; then
  /usr/bin/python3 ../shared/conformance/run.py "$build/sdgen" \
    --cases ../shared/conformance/cases.json --cases ../shared/conformance/sdxl/cases.json \
    --cases ../shared/conformance/img2img/cases.json --cases ../shared/conformance/lora/cases.json ||
    status=1
else
  echo "test: ../shared/conformance not found; conformance cases skipped" >&2
fi
# A short libFuzzer run of every fuzz target (ASan + UBSan; 10 s each, two at a time), when
# clang is here; the long campaigns are recorded in fuzz/README.md.
if command -v clang++ >/dev/null; then
  bash scripts/fuzz.sh "${SDGEN_FUZZ_SECONDS:-10}" || status=1
fi
exit $status
