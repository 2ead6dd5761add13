// Text-to-image: prompt -> CLIP context -> sampler loop over the UNet (with classifier-free
// guidance) -> VAE decoder -> 8-bit RGB.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <torch/torch.h>

#include "sdgen/io/checkpoint.h"
#include "sdgen/io/infotext.h"
#include "sdgen/sampling/samplers.h"
#include "sdgen/sampling/schedule.h"
#include "sdgen/text/prompt_chunks.h"
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
  // A1111 numbering: 1 = the layer the model was trained with (SD 1.x the last, SD 2.x the
  // penultimate); each step above 1 skips one more layer.
  int clip_skip = 1;
  // "eps" or "v"; empty: the model's (LoadedModel config.prediction). resolve() fills it for
  // SD 2.x models, where it is recorded in the infotext as "Prediction".
  std::string prediction;
  // How brackets in the prompts are read: "a1111" (A1111's emphasis syntax, its "Original")
  // or "none" (plain text, A1111's "None"); long prompts are chunked either way.
  std::string emphasis = "a1111";
  SamplerOptions sampler_options;
};

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

  // Checks params against the model (size a multiple of the VAE factor, steps >= 1, known
  // sampler and scheduler) and fills defaults; throws std::invalid_argument with a message for
  // the user.
  GenerationParams resolve(GenerationParams p, const PipelineEvents& events = {}) const;

  // 1. Prompt -> chunks of 75 tokens with their A1111 emphasis weights (each BOS + 75 + EOS,
  //    padded as the model pads; see prompt_chunks.h) -> context [1, 77k, C] in the model
  //    dtype: each chunk encoded on its own, weighted, its mean restored (apply_emphasis), the
  //    chunks concatenated along the token axis.
  std::vector<PromptChunk> prompt_chunks(const std::string& prompt,
                                         Emphasis emphasis = Emphasis::kA1111) const;
  // The ids of all chunks, one after the other (77 per chunk).
  std::vector<int64_t> token_ids(const std::string& prompt, const PipelineEvents& events = {},
                                 Emphasis emphasis = Emphasis::kA1111) const;
  torch::Tensor encode_prompt(const std::string& prompt, int clip_skip,
                              const PipelineEvents& events = {},
                              Emphasis emphasis = Emphasis::kA1111);
  // 2. (in generate) the starting latent: randn from a CPU generator seeded with the seed.
  // 3. The denoiser with classifier-free guidance: cond and uncond in one UNet batch.
  // `prediction` "eps" (CompVisDenoiser) or "v" (CompVisVDenoiser); empty: the model's.
  Denoiser guided_denoiser(const torch::Tensor& cond, const torch::Tensor& uncond, double cfg_scale,
                           const std::string& prediction = "");
  // 3'. For the CompVis samplers (SamplerInfo::unit_noise_timesteps: ddim, plms): the guided
  // noise prediction eps(x, t) on the unit-variance latent at integer timesteps, guidance in
  // eps space as CompVis applies it (the uncond pass skipped at cfg 1).
  EpsModel guided_eps_model(const torch::Tensor& cond, const torch::Tensor& uncond,
                            double cfg_scale, const std::string& prediction = "");
  // 4. Latent (in the sampler's scale) -> [B, H, W, 3] uint8 on the CPU.
  torch::Tensor decode_latent(const torch::Tensor& latent);

  // The whole chain for one image.
  Image generate(const GenerationParams& params, const PipelineEvents& events = {});
  // The chain for several images whose parameters are `batchable` with each other, their
  // latents through the UNet together. Each image keeps its own generator (seeded with its
  // seed), so an image does not depend on the batch it was made in.
  std::vector<Image> generate_batch(const std::vector<GenerationParams>& batch,
                                    const PipelineEvents& events = {});

  // Replaces the UNet call of the sampler loop (x, t, context on the device -> the UNet's
  // output), e.g. by a captured CUDA graph (cuda_graph.h); an empty function restores the
  // module's forward (and, on the CPU, its image-by-image split). The result must stay valid
  // until the next call.
  using UNetRunner = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t,
                                                 const torch::Tensor& context)>;
  void set_unet_runner(UNetRunner runner) { unet_runner_ = std::move(runner); }

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
  UNetRunner unet_runner_;
  // Encoded prompts by (text, clip skip, emphasis): a batch repeating a prompt encodes it once.
  std::map<std::tuple<std::string, int, int>, torch::Tensor> context_cache_;
  // The UNet on a batch of `images` images' passes (rows pass * images + image).
  torch::Tensor run_unet(const torch::Tensor& x, const torch::Tensor& t,
                         const torch::Tensor& context, int64_t images);
  torch::Tensor cached_context(const std::string& prompt, int clip_skip, Emphasis emphasis,
                               const PipelineEvents& events);
};

// Whether two images can share UNet batches: the same latent size, schedule, sampler, guidance
// and prediction (prompts, seeds and clip skip may differ).
bool batchable(const GenerationParams& a, const GenerationParams& b);

// A1111's EmphasisOriginal on the context of one chunk: z [1, T, C] times `weights` (T, one
// per token, as float32), then times mean(z) / mean(weighted z), both means over the whole
// chunk; computed in float32, returned in z's dtype. All weights 1.0 return z unchanged.
torch::Tensor apply_emphasis(const torch::Tensor& z, const std::vector<double>& weights);

// A1111's pad_cond_uncond: `context` [B, T, C] followed by copies of `empty` [B, E, C] (the
// encoded empty prompt) up to `tokens` tokens; unchanged when it already has them. Throws
// std::invalid_argument when tokens - T is not a multiple of E.
torch::Tensor pad_context(const torch::Tensor& context, int64_t tokens, const torch::Tensor& empty);

// The A1111 infotext for an image made with `p` by the model `model_name` (file name without
// extension) whose file hashes to `model_hash` (first 10 hex digits of its sha256; may be empty).
InfoText make_infotext(const GenerationParams& p, const std::string& model_name,
                       const std::string& model_hash, const std::string& vae_name = "");

}  // namespace sdgen
