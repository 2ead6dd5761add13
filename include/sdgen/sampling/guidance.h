// Classifier-free guidance over the model sampling: the one denoiser every sampler drives.
// The k-diffusion samplers call it in sigma space (operator(), a Denoiser); CompVis DDIM and
// PLMS, which keep their integer-timestep semantics, call eps() (an EpsModel), the one
// documented adapter: the network sees the unit-variance latent at integer timesteps and the
// guidance is applied to the noise prediction, as CompVis does.
#pragma once
#include <cstdint>
#include <functional>

#include <torch/torch.h>

#include "sdgen/models/conditioning.h"
#include "sdgen/sampling/model_sampling.h"
#include "sdgen/sampling/samplers.h"

namespace sdgen {

// The network call: x_in [R, C, h, w] (float32, already input-scaled) at timesteps t [R] with
// the conditioning rows c (R rows), for a batch of `images` images (R = passes x images, rows
// pass * images + image) -> the raw network output [R, C, h, w] in float32.
using ModelCall = std::function<torch::Tensor(const torch::Tensor& x_in, const torch::Tensor& t,
                                              const Conditioning& c, int64_t images)>;

class GuidedDenoiser {
 public:
  // `cond` and `uncond`: one row per image (or one row for every image). With cfg_scale 1
  // the unconditional pass is skipped: the result is the conditional prediction.
  GuidedDenoiser(ModelSampling sampling, ModelCall call, Conditioning cond, Conditioning uncond,
                 double cfg_scale);

  // k-diffusion: the guided denoised estimate, x [B, C, h, w] at sigma [B]; the batch
  // [uncond, cond] goes through the network at once, then uncond + (cond - uncond) * cfg.
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& sigma) const;
  // CompVis: the guided noise prediction for the unit-variance latent x at integer timesteps
  // t [B]: e_uncond + cfg * (e_cond - e_uncond), then v -> eps for v models.
  torch::Tensor eps(const torch::Tensor& x, const torch::Tensor& t) const;

  Denoiser denoiser() const;
  EpsModel eps_model() const;
  const ModelSampling& sampling() const { return sampling_; }

 private:
  bool guided() const { return cfg_scale_ != 1.0; }
  // The conditioning rows of the network batch for `images` images: [uncond, cond] (or cond
  // alone unguided), each row repeated per image when one row serves every image.
  Conditioning rows(int64_t images, int64_t batch_rows) const;
  ModelSampling sampling_;
  ModelCall call_;
  Conditioning both_, cond_;
  double cfg_scale_;
};

}  // namespace sdgen
