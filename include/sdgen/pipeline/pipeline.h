// Text-to-image: prompt -> CLIP context -> sampler loop over the UNet (with classifier-free
// guidance) -> VAE decoder -> 8-bit RGB.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sdgen/io/checkpoint.h"
#include "sdgen/io/infotext.h"
#include "sdgen/sampling/samplers.h"
#include "sdgen/sampling/schedule.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen {

struct GenerationParams {
  std::string prompt;
  std::string negative_prompt;
  int steps = 30;
  int width = 0, height = 0;  // 0: the model's native size
  double cfg_scale = 7.0;
  std::string sampler = "euler";
  std::string scheduler = "discrete";
  uint64_t seed = 0;
  int clip_skip = 1;  // A1111 numbering: 1 = last layer
  SamplerOptions sampler_options;
};

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3
};

// What the pipeline reports while it works (for logs and progress bars).
struct PipelineEvents {
  std::function<void(const std::string&)> warn;
  StepCallback step;
};

class Pipeline {
 public:
  Pipeline(LoadedModel model, std::shared_ptr<const Tokenizer> tokenizer, torch::Device device,
           torch::ScalarType dtype);

  // Checks params against the model (size a multiple of the VAE factor, steps >= 1, known
  // sampler and scheduler) and fills defaults; throws std::invalid_argument with a message for
  // the user.
  GenerationParams resolve(GenerationParams p, const PipelineEvents& events = {}) const;

  // 1. Prompt -> token ids (BOS + 75 + EOS, padded) -> context [1, 77, C] in the model dtype.
  std::vector<int64_t> token_ids(const std::string& prompt,
                                 const PipelineEvents& events = {}) const;
  torch::Tensor encode_prompt(const std::string& prompt, int clip_skip,
                              const PipelineEvents& events = {});
  // 2. (in generate) the starting latent: randn from a CPU generator seeded with the seed.
  // 3. The denoiser with classifier-free guidance: cond and uncond in one UNet batch.
  Denoiser guided_denoiser(const torch::Tensor& cond, const torch::Tensor& uncond,
                           double cfg_scale);
  // 4. Latent (in the sampler's scale) -> [B, H, W, 3] uint8 on the CPU.
  torch::Tensor decode_latent(const torch::Tensor& latent);

  // The whole chain for one image.
  Image generate(const GenerationParams& params, const PipelineEvents& events = {});

  const ModelConfig& config() const { return model_.config; }
  const LoadedModel& model() const { return model_; }
  const DiscreteSchedule& schedule() const { return schedule_; }
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }

 private:
  LoadedModel model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  torch::Device device_;
  torch::ScalarType dtype_;
  DiscreteSchedule schedule_;
};

// The A1111 infotext for an image made with `p` by the model `model_name` (file name without
// extension) whose file hashes to `model_hash` (first 10 hex digits of its sha256; may be empty).
InfoText make_infotext(const GenerationParams& p, const std::string& model_name,
                       const std::string& model_hash, const std::string& vae_name = "");

}  // namespace sdgen
