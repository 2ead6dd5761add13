// The default model's evaluation (issue #6): held-out scenes' captions through the pipeline,
// each image scored against its scene (sdgen/data/scene_score.h).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sdgen/data/scene_score.h"
#include "sdgen/data/scenes.h"
#include "sdgen/models/vae.h"
#include "sdgen/pipeline/pipeline.h"

namespace sdgen::train {

struct EvalOptions {
  data::Split split = data::Split::kHeldOut;
  uint64_t first = 0;  // sample index of the split
  int count = 200;
  int steps = 20;
  double cfg_scale = 7.0;
  std::string sampler = "euler";
  std::string scheduler = "discrete";
  uint64_t seed = 1;  // image i is made with seed + i
};

struct EvalItem {
  uint64_t index = 0;  // sample index of the split
  std::string prompt;
  uint64_t seed = 0;
  data::Scene scene;
  data::SceneScore score;
  std::vector<uint8_t> rgb;  // size * size * 3
};

struct EvalReport {
  data::ScoreTotals totals;
  std::array<data::ScoreTotals, 3>
      by_size;  // objects of each Size (their images counted once each)
  std::array<data::ScoreTotals, 2> by_count;  // scenes of one and of two objects
  std::vector<EvalItem> items;
  double seconds = 0;  // generation and scoring
  int image_size = 0;
  // Counts an image's score in the totals, by object count and by size.
  void add(const data::SceneScore& score, const data::Scene& scene);
  nlohmann::json to_json(const EvalOptions& o) const;
};

// Generates and scores count samples of the split (their captions as prompts, the model's
// native size, no negative prompt); `progress` sees each item as it is scored.
EvalReport evaluate(Pipeline& pipeline, const data::DatasetOptions& data, const EvalOptions& o,
                    const std::function<void(const EvalItem&)>& progress = {});

// The VAE alone: count samples of the split through encode (the posterior mean) and decode,
// each reconstruction scored against its scene: the ceiling of what a UNet on these latents
// can score. Items carry the reconstructions; prompts are the captions.
EvalReport evaluate_vae(AutoencoderKL& vae, const data::DatasetOptions& data, data::Split split,
                        uint64_t first, int count);

// The images of items [0, count) side by side, `columns` wide (RGB, for a PNG).
std::vector<uint8_t> image_grid(const std::vector<EvalItem>& items, int count, int columns,
                                int size, int* width, int* height);

}  // namespace sdgen::train
