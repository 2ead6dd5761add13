// How a model family turns sampler arithmetic into network calls and back: the training noise
// schedule, sigma <-> timestep, the input scaling and the output parameterisation (eps or v),
// the latent scale and shift between the sampler's latent and the VAE's, and the model's
// native size. One object per loaded model (LoadedModel::sampling), used by the one guided
// denoiser (guidance.h) for every sampler.
#pragma once
#include <string>

#include <torch/torch.h>

#include "sdgen/models/config.h"
#include "sdgen/sampling/schedule.h"

namespace sdgen {

enum class Prediction {
  kEps,  // the network predicts the noise (CompVisDenoiser)
  kV,    // the network predicts v = alpha * eps - sigma_vp * x0 (CompVisVDenoiser)
};
// "eps" or "v"; throws std::invalid_argument naming the valid values.
Prediction parse_prediction(const std::string& name);
const char* prediction_name(Prediction p);

class ModelSampling {
 public:
  ModelSampling(DiscreteSchedule schedule, Prediction prediction, double latent_scale,
                double latent_shift, int native_width, int native_height);
  // The schedule, prediction, latent scale and native size of `config` (shift 0: the families
  // sdgen runs today have none).
  static ModelSampling from_config(const ModelConfig& config);

  const DiscreteSchedule& schedule() const { return schedule_; }
  Prediction prediction() const { return prediction_; }
  ModelSampling with_prediction(Prediction p) const;
  int native_width() const { return native_width_; }
  int native_height() const { return native_height_; }
  double latent_scale() const { return latent_scale_; }
  double latent_shift() const { return latent_shift_; }

  // The fractional training timestep of each sigma ([B], any device; k-diffusion's
  // log-sigma interpolation, computed on the CPU where the tables are).
  torch::Tensor sigma_to_t(const torch::Tensor& sigma) const;
  // c_in = 1 / sqrt(sigma^2 + 1) for sigma [B], shaped [B, 1, 1, 1]: the network sees x * c_in.
  torch::Tensor input_scale(const torch::Tensor& sigma) const;
  // The denoised estimate from the network's output `out` on x [B, C, h, w] at sigma [B]:
  // eps: x - sigma * out; v: x / (sigma^2 + 1) - out * sigma / sqrt(sigma^2 + 1).
  torch::Tensor denoised(const torch::Tensor& x, const torch::Tensor& sigma,
                         const torch::Tensor& out) const;
  // CompVis samplers (DDIM, PLMS): the noise prediction from the output `out` on the
  // unit-variance latent x at integer timesteps t [B]: eps as it is; v (Stability-AI ddim.py)
  // eps = sqrt(acp[t]) * v + sqrt(1 - acp[t]) * x.
  torch::Tensor eps_from_output(const torch::Tensor& x, const torch::Tensor& t,
                                const torch::Tensor& out) const;
  // Sampler latent -> VAE latent (latent / scale + shift) and back ((z - shift) * scale).
  torch::Tensor latent_to_vae(const torch::Tensor& latent) const;
  torch::Tensor vae_to_latent(const torch::Tensor& z) const;

 private:
  DiscreteSchedule schedule_;
  Prediction prediction_;
  double latent_scale_, latent_shift_;
  int native_width_, native_height_;
};

}  // namespace sdgen
