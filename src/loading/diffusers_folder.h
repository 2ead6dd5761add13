// diffusers folders (internal to src/loading): a StableDiffusionPipeline folder as --model and an
// AutoencoderKL folder as --vae. The tensors stay where they are (one TensorSource over the
// components' files, keys under "unet/", "vae/", "text_encoder/"); KeyMap tables generated
// from the block layout (sdgen/loading/diffusers_names.h) name them for the LDM module trees,
// and the configuration comes from each component's config.json and the scheduler's config.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "sdgen/loading/model_loader.h"

namespace sdgen::diffusers {

// Whether `path` is a folder holding model_index.json.
bool is_pipeline_folder(const std::string& path);

// Fills `info` (family, config, notes, source, key maps, hash file) from the pipeline folder
// `dir`; `overrides` (the --model-config JSON, may be null) goes over the folder's configs.
// Throws CheckpointError naming the file and what it should be: a missing part or config, an
// unsupported pipeline or component class, a config sdgen's networks cannot follow, shards that
// disagree with their index.
void inspect_pipeline(const std::string& dir, const nlohmann::json* overrides, ModelInfo& info);

// A diffusers AutoencoderKL folder (config.json and its weights), or a pipeline folder's vae/.
VaeFile inspect_vae_folder(const std::string& dir);

// --- configs (diffusers_config.cpp) ---
// A JSON object from `file`; CheckpointError "<file>: missing; <what>" or "not valid JSON".
nlohmann::json read_config(const std::filesystem::path& file, const std::string& what);
// UNet2DConditionModel, AutoencoderKL and CLIPTextModel configs (missing keys take the class'
// defaults, as from_config does); CheckpointError naming `file` and the key for values sdgen's
// networks do not implement. `sample_size`: the UNet's latent size (0 when not given).
UNetConfig unet_config(const nlohmann::json& j, const std::string& file, int* sample_size);
VaeConfig vae_config(const nlohmann::json& j, const std::string& file);
ClipTextConfig clip_text_config(const nlohmann::json& j, const std::string& file);
// The betas and prediction of a scheduler_config.json, into `c`.
void read_scheduler(const nlohmann::json& j, const std::string& file, ModelConfig& c);

}  // namespace sdgen::diffusers
