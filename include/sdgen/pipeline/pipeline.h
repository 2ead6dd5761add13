// Text-to-image, img2img and inpainting: prompt -> conditioning (the family's Conditioner,
// conditioner.h) -> the one guided denoiser over the model's sampling (sampling/guidance.h)
// driven by a sampler, from noise or from an encoded init image part-way down the schedule
// (with the hires fix: a second such pass over the upscaled latent) -> VAE decoder -> 8-bit RGB
// (inpainting: the unmasked pixels pasted back).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sdgen/io/image_read.h"
#include "sdgen/job/params.h"
#include "sdgen/loading/model_loader.h"
#include "sdgen/models/conditioning.h"
#include "sdgen/pipeline/conditioner.h"
#include "sdgen/pipeline/lora_patch.h"
#include "sdgen/sampling/guidance.h"
#include "sdgen/sampling/samplers.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3
  GenerationParams params;   // as resolved and used (defaults filled in)
  // What the image used besides its parameters, in the order used (infotext "Lora hashes" and
  // "TI hashes", --json "loras" and "embeddings"): name and short hash.
  std::vector<std::pair<std::string, std::string>> loras, embeddings;
};

// The infotext of `image`: make_infotext of its parameters with the LoRAs' and embeddings'
// hashes (A1111's "Lora hashes: \"name: hash, ...\"" and "TI hashes"), before "Version".
InfoText image_infotext(const Image& image, const ModelStamp& model);

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

  // VAE encoder: images [B, 3, H, W] in [-1, 1] (any device, float) -> the posterior mean in
  // the sampler's latent scale [B, C, H/f, W/f], float32 on the CPU (tiled as decode).
  torch::Tensor encode_image(const torch::Tensor& image);
  // VAE tiling (vae_tiling.h) for decode and encode: kAuto tiles when the untiled pass would
  // not fit in the device's available memory.
  enum class VaeTilingMode { kAuto, kOn, kOff };
  void set_vae_tiling(VaeTilingMode mode) { vae_tiling_ = mode; }
  // Where <lora:NAME:...> finds NAME.safetensors, in order (the CLI: --lora-dir, loras/ beside
  // the model, $SDGEN_LORA_DIR).
  void set_lora_dirs(std::vector<std::string> dirs) { lora_dirs_ = std::move(dirs); }
  const std::vector<std::string>& lora_dirs() const { return lora_dirs_; }

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
  VaeTilingMode vae_tiling_ = VaeTilingMode::kAuto;
  std::vector<std::string> lora_dirs_;
  std::map<std::string, std::shared_ptr<const LoraFile>> lora_files_;  // by path
  std::unique_ptr<LoraPatcher> lora_patcher_;
  // Patches the weights for the LoRAs of `p` (image_loras) and returns them as the infotext
  // lists them (name, hash); std::invalid_argument for a name found in no folder.
  std::vector<std::pair<std::string, std::string>> apply_loras(const GenerationParams& p,
                                                               const PipelineEvents& events);

  // What an img2img / inpainting image starts from (image_inputs.cpp), for one image at the
  // job's size; init images and masks are read and encoded once per distinct file and size.
  struct ImageInput {
    Image8 init_rgb;            // H x W x 3, resized as A1111 ("Just resize", Lanczos)
    torch::Tensor init;         // [1, C, h, w] the init latent (float32, CPU); undefined: txt2img
    Image8 mask;                // H x W x 1 after blur and resize; empty: no mask
    torch::Tensor latent_mask;  // [1, 1, h, w] 1 = repaint (float32, CPU); undefined: no mask
    torch::Tensor concat;       // [1, 1 + C, h, w] inpainting models' mask + masked latent
  };
  ImageInput image_input(const GenerationParams& p, int width, int height);
  // The inpainting UNet's conditioning for text-to-image (and the hires pass): a mask of ones
  // and the latent of the all-gray image, [1, 1 + C, h, w].
  torch::Tensor gray_image_concat(int width, int height);
  std::map<std::string, std::pair<Image8, torch::Tensor>> encoded_;  // init images by key
  std::map<std::string, Image8> masks_;                              // masks by key
  std::map<std::pair<int, int>, torch::Tensor> gray_concat_;

  // The hires fix's second pass (image_inputs.cpp) over the first pass's latents [n, C, h, w].
  torch::Tensor hires_pass(const std::vector<GenerationParams>& ps, const torch::Tensor& latent,
                           const PipelineEvents& events);
  // One sampler run over a batch of images of `height` x `width` latent pixels: each image's
  // CPU generator (seeded with its seed) draws its starting noise, then the sampler's noise.
  // `sampler` runs over `sigmas` (k-diffusion: the whole schedule for txt2img, its last
  // t_enc + 2 values for img2img) or, for the CompVis timestep samplers, over `steps` timesteps
  // (img2img: the first t_enc). It starts from noise * sigmas[0], or from `init` [n, C, h, w]
  // (CPU) plus that noise; `mask` [n, 1, h, w] (1 = repaint) blends every prediction with
  // `init` outside the repainted area, and the result once more.
  struct SamplerRun {
    std::string sampler;
    SamplerOptions options;
    std::vector<uint64_t> seeds;
    int64_t height = 0, width = 0;
    torch::Tensor sigmas, init, mask;
    int steps = 0, t_enc = -1;
    bool noise_fill = false;  // inpainting "latent noise": the masked init is the noise
  };
  torch::Tensor denoise(const GuidedDenoiser& guidance, const SamplerRun& run,
                        const PipelineEvents& events);
  // The conditioning of a batch (cond, uncond), padded to one token count; with `embeddings`,
  // each image's textual-inversion embeddings as "TI hashes" lists them (ti_hashes).
  std::pair<Conditioning, Conditioning> batch_conditioning(
      const std::vector<GenerationParams>& ps, bool hires,
      std::vector<EmbeddingHashes>* embeddings = nullptr);
  torch::Tensor vae_decode(const torch::Tensor& z);  // unscaled latent -> [-1, 1] images
  bool tile_vae(int64_t latent_h, int64_t latent_w, bool encode) const;
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
