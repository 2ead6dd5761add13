#!/usr/bin/env bash
# Trains sdgen's own default model (issue #6) from nothing: the procedural data set, a
# SentencePiece tokenizer, the VAE, then text encoder + UNet, into models/default/:
#   models/default/model.safetensors   weights (fp16, LDM key names)
#   models/default/model.json          config (loaded beside the checkpoint; names the tokenizer)
#   models/default/tokenizer.model     SentencePiece model
# and intermediates (data samples and grids, the VAE alone, tokenizer.vocab) in build-train/.
#
# Sizes (scripts/default-model.json): text encoder 3 layers x 128 wide (SentencePiece vocab of
# up to 256 pieces; the caption corpus yields ~140), 32 positions, 0.62 M parameters; UNet 64
# channels x (1, 2, 2), one res block per level, attention at every level (8x8, 4x4, 2x2),
# 7.01 M; VAE 32 channels x (1, 2, 2, 2), 8 GroupNorm groups, 8x down to 4 x 8 x 8 latents for
# 64 x 64 images, 1.25 M. Together 8.9 M parameters: model.safetensors is 17.8 MB in fp16.
#
# Time on this project's 2-core CPU (2026-11-27), from sdgen-train's own step logs:
#                      s/step (load ~1)  s/step (load 3-5)  default steps  estimate (load ~1)
#   data + tokenizer   -                 ~10 s in all       -              10 s
#   vae   batch 16     0.86              1.24               3000           43 min
#   unet  batch 32     2.77 (batch 8: 0.83)  2.8-3.2         8000           6.2 h
# (--quick, 100 steps each: VAE loss 0.20, UNet loss 0.41.) Runs are reproducible: the same
# seed logs the same losses. The step counts are a first guess, not tuned: watch the losses
# and sample images (sdgen --model $OUT/model.safetensors), and resume a stage with --init.
# On a GPU: DEVICE=cuda (see docs/gpu.md for the CUDA libtorch build).
#
# Usage: scripts/train-default-model.sh [--quick]
#   --quick  QUICK_STEPS (default 200) steps of each stage into build-train/quick/, to measure
#            speed (the numbers above: BUILD=build QUICK_STEPS=100 ... --quick)
#   env: BUILD (default build), OUT (default models/default), SEED (default 1),
#        VAE_STEPS, UNET_STEPS, THREADS (default: all cores), DEVICE (default cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${OUT:-models/default}
WORK=${WORK:-build-train/default}
SEED=${SEED:-1}
THREADS=${THREADS:-0}
DEVICE=${DEVICE:-cpu}
VAE_STEPS=${VAE_STEPS:-4000}
UNET_STEPS=${UNET_STEPS:-8000}
VAE_POOL=${VAE_POOL:-16384}
UNET_POOL=${UNET_POOL:-16384}
if [[ "${1:-}" == "--quick" ]]; then
  OUT=build-train/quick
  WORK=build-train/quick
  VAE_STEPS=${QUICK_STEPS:-200}
  UNET_STEPS=${QUICK_STEPS:-200}
  VAE_POOL=512
  UNET_POOL=512
fi
train="$BUILD/sdgen-train"
if [[ ! -x "$train" ]]; then
  cmake --build "$BUILD" --target sdgen-train sdgen_spm
fi
mkdir -p "$OUT" "$WORK"
common=(--seed "$SEED" --image-size 64 --threads "$THREADS" --device "$DEVICE")

echo "== 1. a look at the data: $WORK/data/grid.png, $WORK/data-heldout/grid.png"
"$train" "${common[@]}" data --out "$WORK/data" --count 64 --columns 8
"$train" "${common[@]}" data --out "$WORK/data-heldout" --count 64 --columns 8 --split heldout

echo "== 2. tokenizer: SentencePiece unigram, 256 pieces, on 20000 captions"
"$train" "${common[@]}" tokenizer --out "$WORK/tokenizer" --vocab-size 256 --count 20000

echo "== 3. VAE: L1 + L2 reconstruction (objects x5) + 1e-4 KL, $VAE_STEPS steps of 16 images"
"$train" "${common[@]}" vae --config scripts/default-model.json --out "$WORK/vae.safetensors" \
  --steps "$VAE_STEPS" --batch 16 --lr 5e-4 --final-lr 5e-5 --warmup 200 --pool "$VAE_POOL" \
  --foreground-weight 4 --log-every 50

echo "== 4. text encoder + UNet: eps prediction, min-SNR-5, 10% empty captions, $UNET_STEPS steps of 32"
"$train" "${common[@]}" unet --config scripts/default-model.json --vae "$WORK/vae.safetensors" \
  --tokenizer "$WORK/tokenizer.model" --out "$OUT/model.safetensors" --dtype fp16 \
  --steps "$UNET_STEPS" --batch 32 --lr 5e-4 --final-lr 5e-5 --warmup 500 --min-snr 5 \
  --pool "$UNET_POOL" --save-every 1000 --log-every 50

ls -l "$OUT"
echo "== done (model.json names tokenizer.model; models/default/ is also --model default):"
echo "   $BUILD/sdgen --model $OUT/model.safetensors --steps 20 \\"
echo "     --prompt 'a small red circle on the left on a white background'"
