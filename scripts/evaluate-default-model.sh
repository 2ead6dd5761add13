#!/usr/bin/env bash
# Scores sdgen's default model (issue #6) on held-out scenes: 200 captions of colour x shape x
# position combinations the training split never shows, 20 steps at the CLI's defaults (euler,
# discrete, CFG 7), each image scored for its objects' colour, grid position and shape and its
# background (include/sdgen/data/scene_score.h). Targets: colour >= 95%, position >= 90%,
# shape >= 80%. Also scores the VAE's reconstructions of the same scenes (the ceiling for the
# UNet) when the VAE of the training run is there.
#
# Usage: scripts/evaluate-default-model.sh [--docs]
#   --docs  also copy the report to models/default/eval.json and the first 40 images to
#           docs/default-model-samples.png (what the README shows)
#   env: BUILD (default build), MODEL (default models/default/model.safetensors),
#        OUT (default build-train/eval), COUNT (200), STEPS (20), THREADS (0: all cores),
#        VAE (default build-train/default/vae.safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MODEL=${MODEL:-models/default/model.safetensors}
OUT=${OUT:-build-train/eval}
COUNT=${COUNT:-200}
STEPS=${STEPS:-20}
THREADS=${THREADS:-0}
VAE=${VAE:-build-train/default/vae.safetensors}
train="$BUILD/sdgen-train"
[[ -x "$train" ]] || cmake --build "$BUILD" --target sdgen-train sdgen_spm
common=(--seed 1 --threads "$THREADS")

echo "== held-out prompts through the model: $COUNT prompts, $STEPS steps"
"$train" "${common[@]}" eval --model "$MODEL" --count "$COUNT" --steps "$STEPS" \
  --out "$OUT/model" --grid 40 --columns 10
echo "== the same prompts, train split (scenes like those it was trained on)"
"$train" "${common[@]}" eval --model "$MODEL" --count "$COUNT" --steps "$STEPS" \
  --split train --out "$OUT/model-train" --grid 40 --columns 10
if [[ -f "$VAE" ]]; then
  echo "== the VAE's reconstructions of the held-out scenes"
  "$train" "${common[@]}" eval --vae "$VAE" --count "$COUNT" --out "$OUT/vae" --grid 40 \
    --columns 10
fi
if [[ "${1:-}" == "--docs" ]]; then
  cp "$OUT/model/report.json" models/default/eval.json
  cp "$OUT/model/grid.png" docs/default-model-samples.png
  echo "== copied the report to models/default/eval.json, the grid to docs/default-model-samples.png"
fi
