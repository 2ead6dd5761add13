#!/usr/bin/env python3
"""The diffusers side of issue #7's comparison: the SD 1.5 UNet with random fp16 weights,
512x512, CFG batch 2, median ms per step (synchronised), eager and optionally torch.compile.

    python3 scripts/diffusers-bench.py [--compile] [--cuda-graphs] [--iters 50] [--json]

Exits 3 when torch with CUDA or diffusers is missing, so scripts/gpu-bench.sh can skip it."""
import argparse
import json
import statistics
import sys
import time

try:
    import torch
    from diffusers import UNet2DConditionModel
except ImportError as e:  # pragma: no cover
    print(f"diffusers-bench: {e}", file=sys.stderr)
    sys.exit(3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="512x512")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--cuda-graphs", action="store_true", help="compile mode reduce-overhead")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("diffusers-bench: no CUDA device", file=sys.stderr)
        sys.exit(3)
    w, h = (int(v) for v in a.size.split("x"))
    # SD 1.5 (v1-inference.yaml) in diffusers' names
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    ).to("cuda", torch.float16).eval()
    t0 = time.time()
    if a.compile or a.cuda_graphs:
        unet = torch.compile(unet, mode="reduce-overhead" if a.cuda_graphs else None)
    b = 2 * a.batch
    x = torch.randn(b, 4, h // 8, w // 8, device="cuda", dtype=torch.float16)
    t = torch.full((b,), 500.0, device="cuda")
    ctx = torch.randn(b, 77, 768, device="cuda", dtype=torch.float16)
    times = []
    with torch.inference_mode():
        for _ in range(a.warmup):
            unet(x, t, ctx)
        torch.cuda.synchronize()
        warm_s = time.time() - t0
        for _ in range(a.iters):
            torch.cuda.synchronize()
            s = time.perf_counter()
            unet(x, t, ctx)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - s) * 1000)
    r = {"tool": "diffusers", "torch": torch.__version__,
         "card": torch.cuda.get_device_name(), "compile": a.compile or a.cuda_graphs,
         "cuda_graphs": a.cuda_graphs, "size": a.size, "unet_batch": b,
         "unet_step_ms": statistics.median(times), "warmup_s": warm_s,
         "peak_gpu_alloc_gib": torch.cuda.max_memory_allocated() / 2**30}
    print(json.dumps(r) if a.json else
          f"diffusers UNet step {r['unet_step_ms']:.2f} ms on {r['card']} "
          f"(compile={r['compile']}, graphs={a.cuda_graphs}, warm-up {warm_s:.1f} s)")


if __name__ == "__main__":
    main()
