// Noise schedules in the k-diffusion view: x = x0 + sigma * eps.
#pragma once
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sdgen/sampling/sampler_registry.h"

namespace sdgen {

// The DDPM training schedule seen as a table of sigmas indexed by timestep (k-diffusion
// DiscreteSchedule over CompVis' alphas_cumprod). All tensors float32 on the CPU.
class DiscreteSchedule {
 public:
  // SD's "scaled linear" betas: linspace(sqrt(beta_start), sqrt(beta_end), n)^2 in float64,
  // alphas_cumprod = cumprod(1 - betas) in float64, then stored as float32 as CompVis does.
  static DiscreteSchedule scaled_linear(int timesteps = 1000, double beta_start = 0.00085,
                                        double beta_end = 0.012);
  // DDPM's "linear" betas: linspace(beta_start, beta_end, n) in float64, then as above.
  static DiscreteSchedule linear(int timesteps, double beta_start, double beta_end);
  explicit DiscreteSchedule(torch::Tensor alphas_cumprod_f32);

  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
  const torch::Tensor& sigmas() const { return sigmas_; }  // [T], ascending
  const torch::Tensor& log_sigmas() const { return log_sigmas_; }
  torch::Tensor sigma_min() const { return sigmas_[0]; }  // 0-d
  torch::Tensor sigma_max() const { return sigmas_[-1]; }

  // Fractional timestep of each sigma by linear interpolation in log-sigma.
  torch::Tensor sigma_to_t(const torch::Tensor& sigma) const;
  torch::Tensor t_to_sigma(const torch::Tensor& t) const;

 private:
  torch::Tensor alphas_cumprod_, sigmas_, log_sigmas_;
};

// Sigma schedules of n steps, each followed by a trailing 0 (n + 1 values, float32).
torch::Tensor sigmas_discrete(const DiscreteSchedule& s, int n);  // A1111 "normal"
torch::Tensor sigmas_karras(const DiscreteSchedule& s, int n, double rho = 7.0);
torch::Tensor sigmas_exponential(const DiscreteSchedule& s, int n);
// A1111 / ComfyUI "SGM Uniform": n timesteps evenly spaced from t(sigma_max) towards
// t(sigma_min), the endpoint left out (linspace(999, 0, n + 1)[:-1]), mapped to sigmas.
torch::Tensor sigmas_sgm_uniform(const DiscreteSchedule& s, int n);
// A1111 / ComfyUI "Simple": every (T / n)-th entry of the sigma table from the top:
// sigmas[T - 1 - int(i * T / n)] for i < n.
torch::Tensor sigmas_simple(const DiscreteSchedule& s, int n);

// Throws std::invalid_argument listing the valid names when `name` is unknown.
torch::Tensor make_sigmas(const std::string& name, const DiscreteSchedule& s, int steps);

}  // namespace sdgen
