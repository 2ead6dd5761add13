// The single-step k-diffusion samplers: Euler, Euler ancestral, Heun, DPM-2, DPM-2 ancestral,
// DPM-Solver++(2S) ancestral and LCM. Each follows k_diffusion/sampling.py (commit 4601bf0)
// operation for operation (s_churn = 0), so float32 results agree with it to rounding.
#include <torch/torch.h>

#include "sampler_util.h"
#include "sdgen/sampling/samplers.h"

namespace sdgen {

using detail::batch_sigma;
using detail::num_steps;
using detail::sigma_fn;
using detail::t_fn;
using detail::to_d;
using detail::value;

std::pair<torch::Tensor, torch::Tensor> ancestral_step(const torch::Tensor& sigma_from,
                                                       const torch::Tensor& sigma_to, double eta) {
  if (eta == 0.0) return {sigma_to, torch::zeros_like(sigma_to)};
  auto up =
      eta * (sigma_to.pow(2) * (sigma_from.pow(2) - sigma_to.pow(2)) / sigma_from.pow(2)).pow(0.5);
  auto sigma_up = torch::minimum(sigma_to, up);
  auto sigma_down = (sigma_to.pow(2) - sigma_up.pow(2)).pow(0.5);
  return {sigma_down, sigma_up};
}

// sample_euler: x += d * (sigma_next - sigma).
torch::Tensor sample_euler(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const StepCallback& callback) {
  const int steps = num_steps(sigmas);
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto d = to_d(x, sigma, denoised);
    x = x + d * (sigmas[i + 1] - sigma);
  }
  return x;
}

// sample_euler_ancestral: an Euler step to sigma_down, then noise * sigma_up.
torch::Tensor sample_euler_ancestral(const Denoiser& model, torch::Tensor x,
                                     const torch::Tensor& sigmas, const NoiseSource& noise,
                                     const SamplerOptions& o, const StepCallback& callback) {
  const double eta = detail::eta_or(o, 1.0);
  const int steps = num_steps(sigmas);
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto [sigma_down, sigma_up] = ancestral_step(sigma, next, eta);
    auto d = to_d(x, sigma, denoised);
    x = x + d * (sigma_down - sigma);
    if (value(next) > 0) x = x + noise(x, value(sigma), value(next)) * o.s_noise * sigma_up;
  }
  return x;
}

// sample_heun: Heun's method (trapezoidal correction), Euler for the step to sigma 0.
torch::Tensor sample_heun(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                          const StepCallback& callback) {
  const int steps = num_steps(sigmas);
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto d = to_d(x, sigma, denoised);
    auto dt = next - sigma;
    if (value(next) == 0) {
      x = x + d * dt;
    } else {
      auto x_2 = x + d * dt;
      auto denoised_2 = model(x_2, batch_sigma(next, x));
      auto d_2 = to_d(x_2, next, denoised_2);
      auto d_prime = (d + d_2) / 2;
      x = x + d_prime * dt;
    }
  }
  return x;
}

// sample_dpm_2: a midpoint step at the geometric mean of sigma and sigma_next.
torch::Tensor sample_dpm_2(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const StepCallback& callback) {
  const int steps = num_steps(sigmas);
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto d = to_d(x, sigma, denoised);
    if (value(next) == 0) {
      x = x + d * (next - sigma);
    } else {
      auto sigma_mid = sigma.log().lerp(next.log(), 0.5).exp();
      auto dt_1 = sigma_mid - sigma;
      auto dt_2 = next - sigma;
      auto x_2 = x + d * dt_1;
      auto denoised_2 = model(x_2, batch_sigma(sigma_mid, x));
      auto d_2 = to_d(x_2, sigma_mid, denoised_2);
      x = x + d_2 * dt_2;
    }
  }
  return x;
}

// sample_dpm_2_ancestral: DPM-2 down to sigma_down, then noise * sigma_up (drawn only on the
// second-order steps, as k-diffusion does).
torch::Tensor sample_dpm_2_ancestral(const Denoiser& model, torch::Tensor x,
                                     const torch::Tensor& sigmas, const NoiseSource& noise,
                                     const SamplerOptions& o, const StepCallback& callback) {
  const double eta = detail::eta_or(o, 1.0);
  const int steps = num_steps(sigmas);
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto [sigma_down, sigma_up] = ancestral_step(sigma, next, eta);
    auto d = to_d(x, sigma, denoised);
    if (value(sigma_down) == 0) {
      x = x + d * (sigma_down - sigma);
    } else {
      auto sigma_mid = sigma.log().lerp(sigma_down.log(), 0.5).exp();
      auto dt_1 = sigma_mid - sigma;
      auto dt_2 = sigma_down - sigma;
      auto x_2 = x + d * dt_1;
      auto denoised_2 = model(x_2, batch_sigma(sigma_mid, x));
      auto d_2 = to_d(x_2, sigma_mid, denoised_2);
      x = x + d_2 * dt_2;
      x = x + noise(x, value(sigma), value(next)) * o.s_noise * sigma_up;
    }
  }
  return x;
}

// sample_dpmpp_2s_ancestral: DPM-Solver++(2S) in t = -log(sigma) down to sigma_down, then
// noise * sigma_up.
torch::Tensor sample_dpmpp_2s_ancestral(const Denoiser& model, torch::Tensor x,
                                        const torch::Tensor& sigmas, const NoiseSource& noise,
                                        const SamplerOptions& o, const StepCallback& callback) {
  const double eta = detail::eta_or(o, 1.0);
  const int steps = num_steps(sigmas);
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    auto denoised = model(x, batch_sigma(sigma, x));
    auto [sigma_down, sigma_up] = ancestral_step(sigma, next, eta);
    if (value(sigma_down) == 0) {
      auto d = to_d(x, sigma, denoised);
      x = x + d * (sigma_down - sigma);
    } else {
      auto t = t_fn(sigma), t_next = t_fn(sigma_down);
      const double r = 0.5;
      auto h = t_next - t;
      auto s = t + r * h;
      auto x_2 = (sigma_fn(s) / sigma_fn(t)) * x - (-h * r).expm1() * denoised;
      auto denoised_2 = model(x_2, batch_sigma(sigma_fn(s), x));
      x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_2;
    }
    if (value(next) > 0) x = x + noise(x, value(sigma), value(next)) * o.s_noise * sigma_up;
  }
  return x;
}

// sample_lcm (k-diffusion as the webuis carry it): jump to the denoised estimate, then re-noise
// to the next sigma.
torch::Tensor sample_lcm(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                         const NoiseSource& noise, const StepCallback& callback) {
  const int steps = num_steps(sigmas);
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    auto sigma = sigmas[i], next = sigmas[i + 1];
    x = model(x, batch_sigma(sigma, x));
    if (value(next) > 0) x = x + next * noise(x, value(sigma), value(next));
  }
  return x;
}

}  // namespace sdgen
