// Text-to-image: prompt -> conditioning (the family's Conditioner, conditioner.h) -> the one
// guided denoiser over the model's sampling (sampling/guidance.h) driven by a sampler -> VAE
// decoder -> 8-bit RGB.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sdgen/job/params.h"
#include "sdgen/loading/model_loader.h"
#include "sdgen/models/conditioning.h"
#include "sdgen/pipeline/conditioner.h"
#include "sdgen/sampling/guidance.h"
#include "sdgen/sampling/samplers.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3
  GenerationParams params;   // as resolved and used (defaults filled in)
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

  // resolve_params (job/params.h) against this model, and the model's prediction where the
  // family leaves it open (SD 2.x); throws std::invalid_argument with a message for the user.
  GenerationParams resolve(GenerationParams p, const PipelineEvents& events = {}) const;

  // 1. Prompts -> conditioning (the model family's Conditioner).
  Conditioner& prompts() { return *prompts_; }
  const Conditioner& prompts() const { return *prompts_; }
  // 2. (in generate) the starting latent: randn from a CPU generator seeded with the seed.
  // 3. The guided denoiser over this model: cond and uncond in one UNet batch; `prediction`
  // "eps" or "v" (empty: the model's). It calls this pipeline's UNet: use it while the
  // pipeline lives.
  GuidedDenoiser guided(const Conditioning& cond, const Conditioning& uncond, double cfg_scale,
                        const std::string& prediction = "");
  // 4. Latent (in the sampler's scale) -> [B, H, W, 3] uint8 on the CPU, decoded in the VAE's
  // dtype through decode_finite (the VAE stays in float32 after a retry, as in A1111).
  torch::Tensor decode_latent(const torch::Tensor& latent, const PipelineEvents& events = {});

  // The whole chain for one image.
  Image generate(const GenerationParams& params, const PipelineEvents& events = {});
  // The chain for several images whose parameters are `batchable` with each other, their
  // latents through the UNet together. Each image keeps its own generator (seeded with its
  // seed), so an image does not depend on the batch it was made in.
  std::vector<Image> generate_batch(const std::vector<GenerationParams>& batch,
                                    const PipelineEvents& events = {});

  // Replaces the UNet call of the sampler loop (x, t, conditioning on the device -> the UNet's
  // output), e.g. by a captured CUDA graph (cuda_graph.h); an empty function restores the
  // module's forward (and, on the CPU, its image-by-image split). The result must stay valid
  // until the next call.
  using UNetRunner = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t,
                                                 const Conditioning& c)>;
  void set_unet_runner(UNetRunner runner) { unet_runner_ = std::move(runner); }

  const ModelConfig& config() const { return model_.config; }
  const LoadedModel& model() const { return model_; }
  const ModelSampling& sampling() const { return model_.sampling; }
  const DiscreteSchedule& schedule() const { return model_.sampling.schedule(); }
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }
  // The VAE's dtype (LoadOptions::vae_dtype; float32 after a NaN retry).
  torch::ScalarType vae_dtype() const;

 private:
  LoadedModel model_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::unique_ptr<Conditioner> prompts_;
  UNetRunner unet_runner_;
  // The UNet on a batch of `images` images' passes (rows pass * images + image).
  torch::Tensor run_unet(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c,
                         int64_t images);
};

// decode(dtype), and when that has NaN or infinite values (SDXL's original VAE overflows in
// fp16) a warning and decode(float32), as A1111's automatic revert to a 32-bit VAE; when float32
// gives them too (or dtype was float32), std::runtime_error: no black or NaN image is returned.
torch::Tensor decode_finite(const std::function<torch::Tensor(torch::ScalarType)>& decode,
                            torch::ScalarType dtype,
                            const std::function<void(const std::string&)>& warn);

}  // namespace sdgen
