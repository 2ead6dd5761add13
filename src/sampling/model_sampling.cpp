#include "sdgen/sampling/model_sampling.h"

#include <stdexcept>

namespace sdgen {

Prediction parse_prediction(const std::string& name) {
  if (name == "eps") return Prediction::kEps;
  if (name == "v") return Prediction::kV;
  throw std::invalid_argument("prediction must be eps or v, not '" + name + "'");
}

const char* prediction_name(Prediction p) { return p == Prediction::kV ? "v" : "eps"; }

ModelSampling::ModelSampling(DiscreteSchedule schedule, Prediction prediction, double latent_scale,
                             double latent_shift, int native_width, int native_height)
    : schedule_(std::move(schedule)),
      prediction_(prediction),
      latent_scale_(latent_scale),
      latent_shift_(latent_shift),
      native_width_(native_width),
      native_height_(native_height) {}

ModelSampling ModelSampling::from_config(const ModelConfig& c) {
  const auto& s = c.schedule;
  DiscreteSchedule schedule = [&] {
    if (s.type == "scaled_linear")
      return DiscreteSchedule::scaled_linear(s.timesteps, s.beta_start, s.beta_end);
    if (s.type == "linear") return DiscreteSchedule::linear(s.timesteps, s.beta_start, s.beta_end);
    throw std::invalid_argument("noise schedule '" + s.type +
                                "' is not supported; the model config may give scaled_linear or "
                                "linear");
  }();
  return ModelSampling(std::move(schedule),
                       parse_prediction(c.prediction.empty() ? "eps" : c.prediction),
                       c.vae.scale_factor, 0.0, c.native_size, c.native_size);
}

ModelSampling ModelSampling::with_prediction(Prediction p) const {
  ModelSampling m = *this;
  m.prediction_ = p;
  return m;
}

torch::Tensor ModelSampling::sigma_to_t(const torch::Tensor& sigma) const {
  return schedule_.sigma_to_t(sigma.to(torch::kCPU)).to(sigma.device());
}

torch::Tensor ModelSampling::input_scale(const torch::Tensor& sigma) const {
  return (sigma.pow(2) + 1.0).pow(0.5).reciprocal().view({-1, 1, 1, 1});
}

torch::Tensor ModelSampling::denoised(const torch::Tensor& x, const torch::Tensor& sigma,
                                      const torch::Tensor& out) const {
  // k-diffusion CompVisDenoiser / CompVisVDenoiser, operation for operation.
  auto c_out = (-sigma).view({-1, 1, 1, 1});
  if (prediction_ == Prediction::kV) {
    auto c_skip = (sigma.pow(2) + 1.0).reciprocal().view({-1, 1, 1, 1}).to(out.device());
    auto v_out = (c_out * input_scale(sigma)).to(out.device());  // -sigma / sqrt(sigma^2 + 1)
    return x * c_skip + out * v_out;
  }
  return x + out * c_out.to(out.device());
}

torch::Tensor ModelSampling::eps_from_output(const torch::Tensor& x, const torch::Tensor& t,
                                             const torch::Tensor& out) const {
  if (prediction_ == Prediction::kEps) return out;
  auto acp = schedule_.alphas_cumprod().index({t.to(torch::kCPU).to(torch::kLong)});
  auto a = acp.to(torch::kDouble).view({-1, 1, 1, 1});
  return a.sqrt().to(out.options()) * out + (1 - a).sqrt().to(out.options()) * x;
}

torch::Tensor ModelSampling::latent_to_vae(const torch::Tensor& latent) const {
  auto z = latent * (1.0 / latent_scale_);
  return latent_shift_ != 0.0 ? z + latent_shift_ : z;
}

torch::Tensor ModelSampling::vae_to_latent(const torch::Tensor& z) const {
  return (latent_shift_ != 0.0 ? z - latent_shift_ : z) * latent_scale_;
}

}  // namespace sdgen
