// Helpers shared by the sampler files (private to src/sampling).
#pragma once
#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "sdgen/sampling/samplers.h"

namespace sdgen::detail {

// sigma (0-d) shaped to broadcast against x, as k-diffusion's append_dims does.
inline torch::Tensor expand_as_x(const torch::Tensor& sigma, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  return sigma.reshape(shape);
}

// k-diffusion to_d: the Karras ODE derivative (x - denoised) / sigma.
inline torch::Tensor to_d(const torch::Tensor& x, const torch::Tensor& sigma,
                          const torch::Tensor& denoised) {
  return (x - denoised) / expand_as_x(sigma, x);
}

// sigma * x.new_ones([B]): the per-sample sigma the denoiser is called with.
inline torch::Tensor batch_sigma(const torch::Tensor& sigma, const torch::Tensor& x) {
  return sigma * torch::ones({x.size(0)}, sigma.options());
}

inline int num_steps(const torch::Tensor& sigmas) { return static_cast<int>(sigmas.size(0)) - 1; }

inline double value(const torch::Tensor& t) { return t.item<double>(); }

// The eta a noise-adding sampler runs with when options leave it unset.
inline double eta_or(const SamplerOptions& o, double fallback) {
  return std::isnan(o.eta) ? fallback : o.eta;
}

// k-diffusion's t = -log(sigma) and its inverse, as 0-d tensor ops.
inline torch::Tensor t_fn(const torch::Tensor& sigma) { return sigma.log().neg(); }
inline torch::Tensor sigma_fn(const torch::Tensor& t) { return t.neg().exp(); }

}  // namespace sdgen::detail
