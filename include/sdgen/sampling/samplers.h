// Samplers: small functions over a denoiser callback (k-diffusion's formulation).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace sdgen {

// D(x, sigma): the denoised estimate of x at noise level sigma. x: [B, C, h, w], sigma: [B].
using Denoiser = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigma)>;
// A standard-normal tensor shaped like `like` (for ancestral / SDE steps); sigma and sigma_next
// are those of the step that asks, for noise sources that depend on them.
using NoiseSource =
    std::function<torch::Tensor(const torch::Tensor& like, double sigma, double sigma_next)>;
// Called at the start of each step with the step index and the current x.
using StepCallback = std::function<void(int step, int steps, const torch::Tensor& x)>;

struct SamplerOptions {
  double eta = 1.0;      // ancestral noise amount (0: deterministic)
  double s_noise = 1.0;  // noise scale
};

struct SamplerInfo {
  std::string name;         // --sampler value
  std::string a1111_label;  // "Sampler" in A1111's infotext
  std::string description;
  bool ancestral;
};
const std::vector<SamplerInfo>& samplers();
const SamplerInfo& sampler_info(const std::string& name);  // throws listing valid names

// x: the initial noisy latent (noise * sigmas[0]); sigmas: [n + 1] float32 ending with 0.
torch::Tensor sample_euler(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const StepCallback& callback = {});
torch::Tensor sample_euler_ancestral(const Denoiser& model, torch::Tensor x,
                                     const torch::Tensor& sigmas, const NoiseSource& noise,
                                     const SamplerOptions& options = {},
                                     const StepCallback& callback = {});

// Dispatch by name.
torch::Tensor run_sampler(const std::string& name, const Denoiser& model, torch::Tensor x,
                          const torch::Tensor& sigmas, const NoiseSource& noise,
                          const SamplerOptions& options = {}, const StepCallback& callback = {});

// k-diffusion get_ancestral_step: the deterministic target sigma_down and the noise sigma_up.
std::pair<torch::Tensor, torch::Tensor> ancestral_step(const torch::Tensor& sigma_from,
                                                       const torch::Tensor& sigma_to, double eta);

}  // namespace sdgen
