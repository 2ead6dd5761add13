#include "sdgen/sampling/samplers.h"

#include <stdexcept>

namespace sdgen {
namespace {

// sigma (0-d) broadcast against x as k-diffusion's append_dims does.
torch::Tensor expand_as_x(const torch::Tensor& sigma, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  return sigma.reshape(shape);
}

torch::Tensor to_d(const torch::Tensor& x, const torch::Tensor& sigma,
                   const torch::Tensor& denoised) {
  return (x - denoised) / expand_as_x(sigma, x);
}

torch::Tensor batch_sigma(const torch::Tensor& sigma, const torch::Tensor& x) {
  return sigma * torch::ones({x.size(0)}, sigma.options());
}

}  // namespace

const std::vector<SamplerInfo>& samplers() {
  static const std::vector<SamplerInfo> list = {
      {"euler", "Euler", "Euler's method on the probability-flow ODE (k-diffusion sample_euler)",
       false},
      {"euler_a", "Euler a",
       "Euler ancestral: an Euler step down to sigma_down, then fresh noise up to the next "
       "sigma (sample_euler_ancestral; --eta scales the noise)",
       true},
  };
  return list;
}

const SamplerInfo& sampler_info(const std::string& name) {
  for (const auto& s : samplers())
    if (s.name == name) return s;
  std::string valid;
  for (const auto& s : samplers()) valid += (valid.empty() ? "" : ", ") + s.name;
  throw std::invalid_argument("unknown sampler '" + name + "'; valid: " + valid);
}

std::pair<torch::Tensor, torch::Tensor> ancestral_step(const torch::Tensor& sigma_from,
                                                       const torch::Tensor& sigma_to, double eta) {
  if (eta == 0.0) return {sigma_to, torch::zeros_like(sigma_to)};
  auto up =
      eta * (sigma_to.pow(2) * (sigma_from.pow(2) - sigma_to.pow(2)) / sigma_from.pow(2)).pow(0.5);
  auto sigma_up = torch::minimum(sigma_to, up);
  auto sigma_down = (sigma_to.pow(2) - sigma_up.pow(2)).pow(0.5);
  return {sigma_down, sigma_up};
}

torch::Tensor sample_euler(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const StepCallback& callback) {
  const int steps = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto d = to_d(x, sigma, denoised);
    x = x + d * (sigmas[i + 1] - sigma);
  }
  return x;
}

torch::Tensor sample_euler_ancestral(const Denoiser& model, torch::Tensor x,
                                     const torch::Tensor& sigmas, const NoiseSource& noise,
                                     const SamplerOptions& o, const StepCallback& callback) {
  const int steps = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto [sigma_down, sigma_up] = ancestral_step(sigma, next, o.eta);
    auto d = to_d(x, sigma, denoised);
    x = x + d * (sigma_down - sigma);
    if (next.item<float>() > 0) {
      x = x + noise(x, sigma.item<double>(), next.item<double>()) * o.s_noise * sigma_up;
    }
  }
  return x;
}

torch::Tensor run_sampler(const std::string& name, const Denoiser& model, torch::Tensor x,
                          const torch::Tensor& sigmas, const NoiseSource& noise,
                          const SamplerOptions& options, const StepCallback& callback) {
  sampler_info(name);  // validates the name
  if (name == "euler") return sample_euler(model, std::move(x), sigmas, callback);
  if (name == "euler_a")
    return sample_euler_ancestral(model, std::move(x), sigmas, noise, options, callback);
  throw std::logic_error("sampler '" + name + "' is listed but has no implementation");
}

}  // namespace sdgen
