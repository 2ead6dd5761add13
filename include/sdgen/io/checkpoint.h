// Loading SD checkpoints: configuration from tensor shapes, strict name-by-name loading.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json_fwd.hpp>

#include "sdgen/io/safetensors.h"
#include "sdgen/models/clip.h"
#include "sdgen/models/config.h"
#include "sdgen/models/text_encoder.h"
#include "sdgen/models/unet.h"
#include "sdgen/models/vae.h"

namespace sdgen {

// Everything a strict load found wrong, reported together.
struct LoadReport {
  std::vector<std::string> missing;     // expected by the model, absent from the file
  std::vector<std::string> unexpected;  // in the file, unknown to the model
  std::vector<std::string> mismatched;  // "name: file [a, b], model [c, d]"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // A multi-line message for the user, naming `file`.
  std::string message(const std::string& file) const;
};

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a component's keys live in a single-file checkpoint.
inline constexpr const char* kUNetPrefix = "model.diffusion_model.";
inline constexpr const char* kVaePrefix = "first_stage_model.";
inline constexpr const char* kClipPrefix = "cond_stage_model.transformer.text_model.";
inline constexpr const char* kOpenClipPrefix = "cond_stage_model.model.";  // SD 2.x

// Copies every parameter and buffer of `module` from `file`'s tensor `prefix + name`, converting
// to `dtype` and moving to `device`. Names under `prefix` that the module lacks are recorded as
// unexpected unless they end with one of `ignored_suffixes`; `consumed` collects the file's keys
// this call accounted for.
void load_module(torch::nn::Module& module, const std::shared_ptr<SafetensorsFile>& file,
                 const std::string& prefix, torch::Device device, torch::ScalarType dtype,
                 LoadReport& report, std::vector<std::string>* consumed = nullptr,
                 const std::vector<std::string>& ignored_suffixes = {});

// Configuration of an SD 1.x single-file checkpoint, from the shapes of its tensors (channels,
// widths, layer and block counts, attention levels). What shapes do not show (head counts) comes
// from `overrides` (JSON), else from the known SD releases, else from a documented guess that
// is logged through `notes`.
ModelConfig infer_sd1_config(const SafetensorsFile& file, const nlohmann::json* overrides,
                             std::vector<std::string>* notes);
VaeConfig infer_vae_config(const SafetensorsFile& file, const std::string& prefix);
// The UNet part of that inference (shared by SD 1.x and 2.x); heads are left at their defaults.
UNetConfig infer_unet_config(const SafetensorsFile& file);
// SD 2.x (checkpoint_sd2.cpp): OpenCLIP text tower under kOpenClipPrefix, UNet with a fixed head
// width. `prediction` is left empty and `native_size` 0 unless `overrides` give them.
bool is_sd2_checkpoint(const SafetensorsFile& file);
ModelConfig infer_sd2_config(const SafetensorsFile& file, const nlohmann::json* overrides,
                             std::vector<std::string>* notes);
// AUTOMATIC1111's v-prediction test (modules/sd_models_config.py,
// is_using_v_parameterization_for_sd2): the UNet's output on x = 0.5 [1, 4, 8, 8], t = 999,
// context = 0.5 [1, 2, context_dim], returned as mean(out - x); below -1 means v.
double v_prediction_score(UNetModel& unet, torch::Device device, torch::ScalarType dtype);
// The prefix under which `file` holds VAE weights: "first_stage_model.", "vae." or "".
std::string detect_vae_prefix(const SafetensorsFile& file);

struct LoadedModel {
  ModelConfig config;
  std::shared_ptr<TextEncoder> text;  // ClipTextModel (SD 1.x) or OpenClipTextModel (SD 2.x)
  UNetModel unet{nullptr};
  AutoencoderKL vae{nullptr};
  std::string path, vae_path;
  std::vector<std::string> notes;  // what was guessed or ignored, for the log
};

struct LoadOptions {
  std::string model_path;
  std::string vae_path;     // optional: replaces the checkpoint's VAE
  std::string config_path;  // optional JSON; default: "<model without extension>.json" if present
  // "eps" or "v" fixes what the UNet predicts; empty: decide as the webuis do (see README).
  std::string prediction;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
};

// Settles m.config.prediction and, where no JSON gave it, m.config.native_size (768 for v, else
// 512). The first that applies: `requested` ("eps" or "v"); the model config JSON
// ("prediction", or diffusers' "scheduler": {"prediction_type"}); an A1111 config YAML beside
// the checkpoint (<model>.yaml: v when it sets parameterization "v", else eps); for SD 2.x
// v_prediction_score < -1; else eps. Records the choice and its reason in m.notes.
void settle_prediction(LoadedModel& m, const std::string& requested, torch::Device device,
                       torch::ScalarType dtype);

// Loads an SD 1.x or 2.x single-file .safetensors checkpoint. Throws CheckpointError listing every
// missing, unexpected and mis-shaped tensor of every component at once.
LoadedModel load_checkpoint(const LoadOptions& options);

}  // namespace sdgen
