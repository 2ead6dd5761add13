// Loading a model: its family detected, its configuration read from shapes and the config JSON
// beside it (inspect_model, before any weight is read), then its networks built without
// random initialisation and filled strictly from the file (load_model).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sdgen/job/params.h"
#include "sdgen/loading/family.h"
#include "sdgen/models/config.h"
#include "sdgen/models/text_encoder.h"
#include "sdgen/models/unet.h"
#include "sdgen/models/vae.h"
#include "sdgen/sampling/model_sampling.h"

namespace sdgen {

struct LoadOptions {
  std::string model_path;
  std::string vae_path;     // optional: replaces the checkpoint's VAE
  std::string config_path;  // optional JSON; default: model_config_path(model_path)
  // "eps" or "v" fixes what the UNet predicts; empty: decide as the webuis do (see README).
  std::string prediction;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
  // The VAE's dtype; unset: `dtype`, except fp32 where the family's VAE overflows in fp16 and
  // `dtype` is fp16 (SDXL).
  std::optional<torch::ScalarType> vae_dtype;
};

// `path` with its extension replaced by `extension` (".json"): where sdgen, A1111 and
// diffusers-converted models keep a file's config; "" when `path` has no extension.
std::string sibling_path(const std::string& path, const std::string& extension);
// The model config JSON of `model_path`: `explicit_path` when given, else its sibling .json
// when that exists, else "".
std::string model_config_path(const std::string& model_path, const std::string& explicit_path = "");

// A --vae file: its tensors, where its weights are and its configuration. A file in the LDM
// layout: under "first_stage_model.", "vae." or no prefix, the configuration from the shapes
// (scale factor and norm groups at their defaults: the shapes do not show them). A diffusers
// AutoencoderKL folder (config.json and diffusion_pytorch_model.safetensors, its fp16 variant or
// shards; or a pipeline folder's vae/): diffusers' names and the complete config.json.
struct VaeFile {
  TensorSource source;
  KeyMap keys;
  VaeConfig config;
  std::string what = "a VAE in the LDM layout";  // for messages
  bool config_complete = false;                  // norm groups known (from a config.json)
};
VaeFile inspect_vae(const std::string& path);

// What a checkpoint is, from its header and config JSON alone (no weight is read).
struct ModelInfo {
  const ModelFamily* family = nullptr;
  ModelConfig config;
  std::vector<std::string> notes;  // what was guessed or read from where, for the log
  TensorSource source;             // the checkpoint's tensors (headers; mapped, not read)
  // Where each component's tensors are in `source`: the family's LDM prefixes for a single
  // file; for a diffusers folder, tables generated from its block layout
  // (loading/diffusers_names.h) over the keys "unet/...", "vae/...", "text_encoder/...".
  KeyMap text_keys, text_2_keys, unet_keys, vae_keys;
  // The file whose sha256 names the model in infotext (Model hash): the checkpoint, or a
  // diffusers folder's UNet weights (its first shard).
  std::string hash_file;
  std::optional<VaeFile> vae;  // the --vae file, when one is given
  ModelLimits limits() const;  // native size 0 while the prediction is open (SD 2.x)
};
// `options.model_path` is a single .safetensors checkpoint or a diffusers StableDiffusionPipeline
// folder (model_index.json; SD 1.x and its inpainting UNets: configs from each config.json, the
// betas and prediction from scheduler/scheduler_config.json). Throws CheckpointError
// (unreadable JSON, unknown or unsupported family, missing tensors, a folder's missing part or
// config) and SafetensorsError (a malformed file).
ModelInfo inspect_model(const LoadOptions& options);

struct LoadedModel {
  const ModelFamily* family = &model_family("sd1");
  ModelConfig config;
  std::shared_ptr<TextEncoder> text;  // ClipTextModel (SD 1.x, SDXL) or OpenClipTextModel (SD 2.x)
  std::shared_ptr<TextEncoder> text_2;  // SDXL's OpenClipTextModel (bigG); null otherwise
  UNetModel unet{nullptr};
  AutoencoderKL vae{nullptr};  // in LoadOptions::vae_dtype
  ModelSampling sampling = ModelSampling::from_config(ModelConfig{});
  std::string path, vae_path;
  std::vector<std::string> notes;  // what was guessed or ignored, for the log
  ModelLimits limits() const;
};

// Settles m.config.prediction and, where no JSON gave it, m.config.native_size (768 for v, else
// 512), then m.sampling. The first that applies: `requested` ("eps" or "v"); the model config
// JSON ("prediction", or diffusers' "scheduler": {"prediction_type"}); an A1111 config YAML
// beside the checkpoint (<model>.yaml: v when it sets parameterization "v", else eps); for
// families that leave it open (SD 2.x) v_prediction_score < -1; else eps. Records the choice
// and its reason in m.notes.
void settle_prediction(LoadedModel& m, const std::string& requested);
// AUTOMATIC1111's v-prediction test (modules/sd_models_config.py,
// is_using_v_parameterization_for_sd2): the UNet's output on x = 0.5 [1, 4, 8, 8], t = 999,
// context = 0.5 [1, 2, context_dim], returned as mean(out - x); below -1 means v.
double v_prediction_score(UNetModel& unet, torch::Device device, torch::ScalarType dtype);

// Loads a checkpoint (single file or diffusers folder) of a supported family. Throws
// CheckpointError listing every missing, unexpected and mis-shaped tensor of every component at
// once.
LoadedModel load_model(const LoadOptions& options);
LoadedModel load_model(const LoadOptions& options, ModelInfo info);  // after inspect_model

}  // namespace sdgen
