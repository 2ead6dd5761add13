// sdgen-train's library: the data set as tensors, VAE training, joint text-encoder + UNet
// training on VAE latents, and checkpoints in the LDM layout that load_model reads.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "sdgen/data/scenes.h"
#include "sdgen/loading/key_map.h"
#include "sdgen/models/clip.h"
#include "sdgen/models/config.h"
#include "sdgen/models/unet.h"
#include "sdgen/models/vae.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen::train {

// A model configuration JSON (the format of the config beside a checkpoint: family,
// native_size, prediction, text_encoder, unet, vae) over the SD 1.x defaults.
ModelConfig read_model_config(const std::string& path);

// Images [N, 3, S, S] in [-1, 1] and captions of samples first .. first + count - 1 of a split.
struct Batch {
  torch::Tensor images;
  std::vector<std::string> captions;
};
Batch make_batch(const data::DatasetOptions& data, data::Split split, uint64_t first,
                 int64_t count);

// Called every `log_every` steps with (step, mean loss since the last call, seconds so far).
using LogFn = std::function<void(int, double, double)>;
// Called every `save_every` steps of train_unet with (step, latent scale factor) while the
// modules hold the averaged (EMA) weights, so a long run leaves usable checkpoints behind.
using CheckpointFn = std::function<void(int, double)>;

struct TrainOptions {
  int steps = 1000;
  int batch = 16;
  double lr = 1e-3;
  double weight_decay = 0.0;
  int warmup = 50;  // linear warm-up steps
  // After warm-up the rate follows a half cosine from lr down to final_lr at the last step
  // (NaN: final_lr = lr, a constant rate).
  double final_lr = std::numeric_limits<double>::quiet_NaN();
  double grad_clip = 1.0;  // max global gradient norm (0: off)
  uint64_t seed = 0;
  int pool = 4096;  // training samples drawn from the data set (indices 0 .. pool-1)
  int log_every = 50;
  int save_every = 0;  // train_unet: call the CheckpointFn every N steps (0: never)
  // VAE
  double kl_weight = 1e-4;  // on the mean KL per latent element
  // Extra weight of the pixels that differ from the scene's background: objects cover 2-12% of
  // an image, and an unweighted loss learns the backgrounds long before the objects' colours
  // and outlines. The weights are normalised to mean 1 per batch.
  double foreground_weight = 0;
  // UNet
  double scale_factor = 0;       // latent scale; 0: 1 / std of the pool's VAE latents
  double caption_dropout = 0.1;  // captions replaced by "" (the CFG unconditional prompt)
  // The fraction of one-object training scenes whose caption leaves out the object's colour,
  // its shape or both ("a small shape in the top left corner"): words for each attribute are
  // then learnt on their own, not only as part of the colour x shape x position combinations
  // the training split shows, which helps the held-out combinations.
  double partial_captions = 0;
  // Min-SNR-gamma loss weights (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
  // Weighting Strategy"): each sample's MSE times min(SNR(t), gamma) / SNR(t), which stops the
  // nearly clean, easy timesteps from dominating the gradient; 0: plain MSE.
  double min_snr_gamma = 0;
  // Exponential moving average of the text encoder and UNet weights, which train_unet leaves in
  // the modules at the end (0: off). Its decay ramps up as min(ema, (1 + step) / (10 + step)).
  double ema = 0.999;
  torch::Device device = torch::kCPU;
};

// The learning rate of a step: linear warm-up, then constant or the half cosine to final_lr.
double learning_rate(const TrainOptions& o, int step);

struct TrainResult {
  std::vector<double> losses;  // one per step
  double seconds = 0;
  double scale_factor = 0;  // UNet training: 1 / std of the VAE latents it used
  // UNet training: pool captions longer than the text encoder's positions minus BOS and EOS,
  // cut at that length (their ends never trained: raise text_encoder.max_positions).
  int cut_captions = 0;
};

// Fresh networks are built without values (models/layers.h): training starts them from
// torch.nn's default initialisation, from the global generator.
void init_for_training(torch::nn::Module& module);
// The same for a fresh VAE, then the log-variance half of quant_conv starts at `logvar_bias`
// (small posterior noise), so the decoder sees the signal from the first step and
// reconstruction improves at once; the KL term then shapes the variance.
void init_vae_for_training(AutoencoderKL& vae, double logvar_bias = -6.0);

// VAE loss: L1 + L2 reconstruction plus kl_weight * KL(q(z|x) || N(0, 1)) per element; the
// latent is sampled (reparameterised) as the LDM autoencoder trains.
TrainResult train_vae(AutoencoderKL& vae, const data::DatasetOptions& data, const TrainOptions& o,
                      const LogFn& log = {});

// Joint text encoder + UNet training on the VAE's (frozen) latent means times the scale
// factor (measured on the pool: 1 / std, as SD chose 0.18215), the SD scaled-linear schedule
// (1000 steps), epsilon prediction, MSE. Captions are framed BOS + ids + EOS padded with EOS
// to the text encoder's positions, as the pipeline frames a plain prompt; a fraction
// `caption_dropout` is the empty prompt. With o.ema > 0 the modules end with the averaged
// weights.
TrainResult train_unet(ClipTextModel& text, UNetModel& unet, AutoencoderKL& vae,
                       const Tokenizer& tokenizer, const data::DatasetOptions& data,
                       const TrainOptions& o, const LogFn& log = {},
                       const CheckpointFn& checkpoint = {});

// The UNet's loss: MSE of the noise prediction, per sample weighted min(SNR, gamma) / SNR
// (SNR = acp / (1 - acp) of the sample's timestep) when min_snr_gamma > 0.
// pred, noise: [B, C, H, W]; alphas_cumprod: [B], of each sample's timestep.
torch::Tensor eps_loss(const torch::Tensor& pred, const torch::Tensor& noise,
                       const torch::Tensor& alphas_cumprod, double min_snr_gamma);

// The token ids of a caption as the text encoder sees it: [max_positions]. *cut (when given)
// says whether the caption was longer than max_positions - 2 pieces and lost its end.
std::vector<int64_t> caption_ids(const Tokenizer& tokenizer, const std::string& caption,
                                 int max_positions, bool* cut = nullptr);

// The SD 1.x layout (the "sd1" family's key maps: cond_stage_model.transformer.text_model.*,
// model.diffusion_model.*, first_stage_model.*). Any module may be null (not written).
// `dtype`: kFloat or kHalf.
void save_checkpoint(const std::string& path, ClipTextModel* text, UNetModel* unet,
                     AutoencoderKL* vae, torch::ScalarType dtype,
                     const std::map<std::string, std::string>& metadata = {});
// Writes the config JSON (the model config plus `extra` keys) that load_model reads beside
// `<stem>.safetensors` as `<stem>.json`.
void save_config(const std::string& path, const ModelConfig& config,
                 const nlohmann::json& extra = nlohmann::json::object());
// Loads `module` from a file's tensors through `keys` (strict; throws on any mismatch).
void load_weights(torch::nn::Module& module, const std::string& path, const KeyMap& keys);
// A checkpoint's text encoder (SD 1.x layout): loaded as load_weights does, or, when `text` has
// more positions than the checkpoint's position embedding (a continued run for longer
// captions), the saved rows into the first ones and the rest left as initialised.
void load_text_encoder(ClipTextModel& text, const std::string& path);

int64_t count_parameters(torch::nn::Module& m);

}  // namespace sdgen::train
