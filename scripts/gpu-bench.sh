#!/usr/bin/env bash
# Issue #7's GPU session in one call: build against the CUDA libtorch, run the CUDA tests and
# the benchmarks, and leave logs and JSON records under $OUT.
#
# Prepare on a Debian build machine, in the project root:
#   ../shared/device/prepare.sh                  # fills .gpu/ (debs, build.sh, shared/)
#   git rev-parse --short=12 HEAD > .gpu/COMMIT  # the copy on the GPU machine has no .git
# then run it there with .gpu carried, e.g. (the device tool):
#   run(command="bash scripts/gpu-bench.sh", carry=[".gpu"], timeout_s=580)
# The whole run may not fit one 600 s call: SDGEN_BENCH_PART=quick (build, tests, the sd15 fp16
# rows, diffusers eager), then at once on the still-warm machine SDGEN_BENCH_PART=rest (reuses
# /tmp/build-gpu: bf16, batch 4, 512x768, fp32, sd21, diffusers compiled). Default: all.
set -uo pipefail
OUT=${OUT:-/tmp/sdgen-gpu-out}
mkdir -p "$OUT/results" "$OUT/logs"
export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
B=/tmp/build-gpu
PART=${SDGEN_BENCH_PART:-all}
[[ -n "${SDGEN_BENCH_QUICK:-}" ]] && PART=quick
start=$(date +%s)
stamp() { echo "[$(($(date +%s) - start)) s] $*" | tee -a "$OUT/logs/summary.txt"; }

nvidia-smi >"$OUT/logs/nvidia-smi.txt" 2>&1
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || cat .gpu/COMMIT 2>/dev/null || echo unknown)
if [[ "$PART" == rest && -x "$B/sdgen" ]]; then
  stamp "part rest: reusing $B"
else
  # The fused kernels and the CUDA fast path were only compile-checked against libtorch 1.13:
  # if the build fails with them, retry without the kernels, then without the fast path.
  built=
  for flags in "" "-DSDGEN_CUDA_KERNELS=OFF" "-DSDGEN_CUDA_KERNELS=OFF -DSDGEN_CUDA_FAST=OFF"; do
    stamp "build (commit $commit) $flags"
    # shellcheck disable=SC2086
    if bash .gpu/build.sh -DSDGEN_GIT_COMMIT="$commit" -DSDGEN_BUILD_TESTS=ON \
      -DSDGEN_CUDA_KERNELS=ON -DSDGEN_CUDA_FAST=ON $flags >>"$OUT/logs/build.log" 2>&1; then
      built=1
      break
    fi
    stamp "build failed with '$flags':"
    grep -E "error" "$OUT/logs/build.log" | head -20 | tee -a "$OUT/logs/summary.txt"
  done
  [[ -n "$built" ]] || { tail -30 "$OUT/logs/build.log"; exit 1; }
  grep -E "CUDA graphs and GPU memory|fused CUDA kernels" "$OUT/logs/build.log" | sort -u |
    tee -a "$OUT/logs/summary.txt"

  stamp "tests: CUDA parity and bench"
  (cd "$B" && timeout 240 ./sdgen_tests --gtest_filter='*Cuda*:*Bench*:*Fused*' --gtest_brief=1) \
    >"$OUT/logs/tests-gpu.log" 2>&1
  stamp "tests rc=$? (logs/tests-gpu.log)"
  tail -5 "$OUT/logs/tests-gpu.log"
fi

# One benchmark row: name, then sdgen bench arguments.
bench() {
  local name=$1
  shift
  timeout 150 "$B/sdgen" bench --device cuda --out "$OUT/results" --json "$@" \
    >"$OUT/logs/$name.json" 2>"$OUT/logs/$name.log"
  local rc=$?
  python3 - "$OUT/logs/$name.json" "$name" "$rc" <<'PY' | tee -a "$OUT/logs/summary.txt"
import json, sys
path, name, rc = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    print(f"{name}: rc={rc}, no JSON"); sys.exit()
g = r.get("cuda_graph") or {}
peak = r.get("peak_gpu_alloc_gib")
print(f"{name}: unet {r['unet_step_ms']:.2f} ms ({r['unet_tflops']:.1f} TFLOP/s)"
      + (f", graph {g['unet_step_ms']:.2f} ms (diff {g['max_abs_diff_vs_eager']:.2g},"
         f" e2e {g['e2e_ms'] / 1000:.3f} s)" if g else "")
      + f", text {r['text_encoder_ms']:.2f} ms, vae {r['vae_decode_ms']:.2f} ms,"
      f" e2e {r['e2e_ms'] / 1000:.3f} s, peak {'-' if peak is None else f'{peak:.2f}'} GiB,"
      f" finite {r['unet_output_finite']}, setup {r['setup_s']:.1f} s, card {r['card']}")
PY
}

stamp "benchmarks (SD 1.5 architecture, random weights, 512x512, 30 steps, CFG batch 2)"
if [[ "$PART" != rest ]]; then
  bench sd15-fp16 --arch sd15 --dtype fp16
  bench sd15-fp16-cl --arch sd15 --dtype fp16 --channels-last
  bench sd15-fp16-graph --arch sd15 --dtype fp16 --cuda-graph
  bench sd15-fp16-cl-graph --arch sd15 --dtype fp16 --channels-last --cuda-graph
  bench sd15-fp16-fused --arch sd15 --dtype fp16 --fused
fi
if [[ "$PART" != quick ]]; then
  bench sd15-bf16 --arch sd15 --dtype bf16
  bench sd15-fp16-b4 --arch sd15 --dtype fp16 --batch 4 --iters 10
  bench sd15-fp16-512x768 --arch sd15 --dtype fp16 --size 512x768
  bench sd15-fp32 --arch sd15 --dtype fp32 --iters 10
  bench sd21-fp16 --arch sd21 --dtype fp16 --iters 10
fi
# diffusers beside it, on the same card in the same call (skipped where it is not installed)
dbench() {
  local name=$1
  shift
  timeout 200 python3 scripts/diffusers-bench.py --json "$@" >"$OUT/results/$name.json" \
    2>"$OUT/logs/$name.log"
  stamp "$name rc=$?: $(cat "$OUT/results/$name.json")"
}
[[ "$PART" != rest ]] && dbench diffusers-eager
[[ "$PART" != quick ]] && dbench diffusers-compile-graphs --cuda-graphs
stamp "done"
