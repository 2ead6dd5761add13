#!/usr/bin/env bash
# Sets up, builds and runs every test: the GoogleTest suites (ctest) and the CLI conformance
# cases. Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
build=${SDGEN_BUILD_DIR:-build}
status=0
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" || status=1
# The conformance runner needs Debian's numpy and Pillow: use Debian's python3.
if [[ -d ../shared/conformance ]]; then
  /usr/bin/python3 ../shared/conformance/run.py "$build/sdgen" || status=1
else
  echo "test: ../shared/conformance not found; conformance cases skipped" >&2
fi
exit $status
