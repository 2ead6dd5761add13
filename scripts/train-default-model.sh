#!/usr/bin/env bash
# Trains sdgen's own default model (issue #6) from nothing: the procedural data set, a
# SentencePiece tokenizer, the VAE, then text encoder + UNet, into models/default/:
#   models/default/model.safetensors   weights (fp16, LDM key names)
#   models/default/model.json          config (loaded beside the checkpoint; names the tokenizer)
#   models/default/tokenizer.model     SentencePiece model
# and intermediates (data samples and grids, the VAE alone, tokenizer.vocab) in build-train/.
#
# Sizes (scripts/default-model.json): text encoder 3 layers x 128 wide (SentencePiece vocab of
# up to 256 pieces; the caption corpus yields 146), 64 positions, 0.62 M parameters; UNet 64
# channels x (1, 2, 2), one res block per level, attention at every level (8x8, 4x4, 2x2),
# 7.01 M; VAE 32 channels x (1, 2, 2, 2), 8 GroupNorm groups, 8x down to 4 x 8 x 8 latents for
# 64 x 64 images, 1.25 M. Together 8.9 M parameters: model.safetensors is 17.8 MB in fp16.
#
# Time on this project's 2-core CPU (AMD EPYC, 2 threads, 2026-12-01), from sdgen-train's own
# step logs, the machine otherwise idle:
#   stage                       s/step   steps   time
#   1-2 data + tokenizer        -        -       ~10 s
#   3   VAE, batch 16           0.68     3000    34 min (pool of 16384 images included)
#   4   UNet stage 1, batch 32  0.46     7000    59 min (~1 min of it encoding the pool)
#   5   UNet stage 2, batch 32  0.43     4000    ~30 min (40 min with builds beside it)
#   in all                                       ~2 h 05 min
# (--quick: 200 steps of each stage into build-train/quick/.) Runs are reproducible: the same
# seed and thread count log the same losses. Each stage can be resumed or extended with --init.
# On a GPU: DEVICE=cuda (see docs/gpu.md for the CUDA libtorch build); not yet timed on one, as
# no GPU was lent to the sessions that trained the shipped model.
#
# Usage: scripts/train-default-model.sh [--quick]
#   --quick  QUICK_STEPS (default 200) steps of each stage into build-train/quick/, to measure
#            speed or try a change
#   env: BUILD (default build), OUT (default models/default), WORK (default build-train/default),
#        SEED (default 1; stage 5 uses SEED + 1), VAE_STEPS, UNET_STEPS, STAGE2_STEPS, PARTIAL,
#        THREADS (default: all cores), DEVICE (default cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${OUT:-models/default}
WORK=${WORK:-build-train/default}
SEED=${SEED:-1}
THREADS=${THREADS:-0}
DEVICE=${DEVICE:-cpu}
VAE_STEPS=${VAE_STEPS:-3000}
UNET_STEPS=${UNET_STEPS:-7000}
PARTIAL=${PARTIAL:-0.3}
STAGE2_STEPS=${STAGE2_STEPS:-4000}
VAE_POOL=${VAE_POOL:-16384}
UNET_POOL=${UNET_POOL:-16384}
if [[ "${1:-}" == "--quick" ]]; then
  OUT=build-train/quick
  WORK=build-train/quick
  VAE_STEPS=${QUICK_STEPS:-200}
  UNET_STEPS=${QUICK_STEPS:-200}
  STAGE2_STEPS=${QUICK_STEPS:-200}
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

echo "== 4. text encoder + UNet: eps prediction, min-SNR-5, 10% empty captions, $PARTIAL of the"
echo "   one-object captions without colour or shape, $UNET_STEPS steps of 32"
# Stage 1 of the shipped model ran with 32 text positions, which cut the longest captions (two
# objects, ~50 SentencePiece pieces) at 30 pieces; stage 5 widens the text encoder to the 64 of
# scripts/default-model.json and trains on whole captions. Kept so the script reproduces it.
sed 's/"max_positions": 64/"max_positions": 32/' scripts/default-model.json >"$WORK/stage1.json"
"$train" "${common[@]}" unet --config "$WORK/stage1.json" --vae "$WORK/vae.safetensors" \
  --tokenizer "$WORK/tokenizer.model" --out "$WORK/unet-stage1/model.safetensors" --dtype fp16 \
  --steps "$UNET_STEPS" --batch 32 --lr 5e-4 --final-lr 5e-5 --warmup 500 --min-snr 5 \
  --partial-captions "$PARTIAL" --pool "$UNET_POOL" --save-every 1000 --log-every 50

echo "== 5. text encoder + UNet, second stage: $STAGE2_STEPS more steps from stage 4's weights on"
echo "   new scenes (the data set of seed $((SEED + 1))), half of them with two objects (the"
echo "   harder case: which colour and shape goes where), the text encoder widened to 64"
echo "   positions (the new ones start fresh), a lower learning rate"
"$train" --seed $((SEED + 1)) --image-size 64 --threads "$THREADS" --device "$DEVICE" \
  --two-objects 0.5 unet --config scripts/default-model.json --vae "$WORK/vae.safetensors" \
  --tokenizer "$WORK/tokenizer.model" --init "$WORK/unet-stage1/model.safetensors" \
  --out "$OUT/model.safetensors" --dtype fp16 --steps "$STAGE2_STEPS" --batch 32 --lr 3e-4 \
  --final-lr 3e-5 --warmup 200 --min-snr 5 --partial-captions "$PARTIAL" --pool "$UNET_POOL" \
  --save-every 1000 --log-every 50

ls -l "$OUT"
echo "== done (model.json names tokenizer.model; models/default/ is also --model default):"
echo "   $BUILD/sdgen --model $OUT/model.safetensors --steps 20 \\"
echo "     --prompt 'a small red circle on the left on a white background'"
