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
// The prefix under which `file` holds VAE weights: "first_stage_model.", "vae." or "".
std::string detect_vae_prefix(const SafetensorsFile& file);

struct LoadedModel {
  ModelConfig config;
  ClipTextModel text{nullptr};
  UNetModel unet{nullptr};
  AutoencoderKL vae{nullptr};
  std::string path, vae_path;
  std::vector<std::string> notes;  // what was guessed or ignored, for the log
};

struct LoadOptions {
  std::string model_path;
  std::string vae_path;     // optional: replaces the checkpoint's VAE
  std::string config_path;  // optional JSON; default: "<model without extension>.json" if present
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
};

// Loads an SD 1.x single-file .safetensors checkpoint. Throws CheckpointError listing every
// missing, unexpected and mis-shaped tensor of every component at once.
LoadedModel load_checkpoint(const LoadOptions& options);

}  // namespace sdgen
