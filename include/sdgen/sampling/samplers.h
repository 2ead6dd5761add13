// Samplers: small functions over a denoiser callback (k-diffusion's formulation), plus the
// CompVis DDIM / PLMS samplers over a noise-prediction callback at integer timesteps.
//
// Every k-diffusion-style sampler follows crowsonkb/k-diffusion k_diffusion/sampling.py
// (commit 4601bf0) operation for operation, so that float32 results match it; they work in the
// dtype of `sigmas` (float32 in the pipeline, float64 in the convergence tests).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "sdgen/sampling/sampler_registry.h"

namespace sdgen {

// D(x, sigma): the denoised estimate of x at noise level sigma. x: [B, C, h, w], sigma: [B].
using Denoiser = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigma)>;
// A standard-normal tensor shaped like `like` (for ancestral / SDE steps); sigma and sigma_next
// are those of the step that asks, for noise sources that depend on them (Brownian tree).
using NoiseSource =
    std::function<torch::Tensor(const torch::Tensor& like, double sigma, double sigma_next)>;
// Called at the start of each step with the step index and the current x.
using StepCallback = std::function<void(int step, int steps, const torch::Tensor& x)>;
// CompVis-style noise prediction: eps(x, t) for the unit-variance ("VP") latent x at the integer
// DDPM timesteps t ([B], float), classifier-free guidance already applied in eps space.
using EpsModel = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t)>;

// --- k-diffusion samplers. x: the initial noisy latent (noise * sigmas[0]); sigmas: [n + 1]
// ending with 0 (schedules without the trailing 0 also work; then the result is at sigmas[n]).
torch::Tensor sample_euler(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const StepCallback& callback = {});
torch::Tensor sample_euler_ancestral(const Denoiser& model, torch::Tensor x,
                                     const torch::Tensor& sigmas, const NoiseSource& noise,
                                     const SamplerOptions& options = {},
                                     const StepCallback& callback = {});
torch::Tensor sample_heun(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                          const StepCallback& callback = {});
torch::Tensor sample_dpm_2(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const StepCallback& callback = {});
torch::Tensor sample_dpm_2_ancestral(const Denoiser& model, torch::Tensor x,
                                     const torch::Tensor& sigmas, const NoiseSource& noise,
                                     const SamplerOptions& options = {},
                                     const StepCallback& callback = {});
torch::Tensor sample_dpmpp_2s_ancestral(const Denoiser& model, torch::Tensor x,
                                        const torch::Tensor& sigmas, const NoiseSource& noise,
                                        const SamplerOptions& options = {},
                                        const StepCallback& callback = {});
torch::Tensor sample_dpmpp_2m(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                              const StepCallback& callback = {});
// DPM-Solver++(2M) SDE, midpoint variant; eta 0 gives sample_dpmpp_2m.
torch::Tensor sample_dpmpp_2m_sde(const Denoiser& model, torch::Tensor x,
                                  const torch::Tensor& sigmas, const NoiseSource& noise,
                                  const SamplerOptions& options = {},
                                  const StepCallback& callback = {});
// Linear multistep; coefficients by exact integration of the Lagrange basis in sigma.
torch::Tensor sample_lms(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                         int order = 4, const StepCallback& callback = {});
// The k-diffusion / webui LCM step: x = D(x, sigma) + sigma_next * noise.
torch::Tensor sample_lcm(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                         const NoiseSource& noise, const StepCallback& callback = {});

// UniPC (Zhao et al. 2023) multistep predictor-corrector in data-prediction form over the given
// sigmas, as diffusers' UniPCMultistepScheduler with its defaults (bh2, order 2, corrector on
// every step, lower_order_final).
struct UniPCOptions {
  int order = 2;
  bool bh2 = true;  // B(h) = expm1(h) ("bh2"); false: B(h) = h ("bh1")
  bool lower_order_final = true;
};
torch::Tensor sample_unipc(const Denoiser& model, torch::Tensor x, const torch::Tensor& sigmas,
                           const UniPCOptions& options = {}, const StepCallback& callback = {});

// k-diffusion linear_multistep_coeff: the integral over [t[i], t[i+1]] of the Lagrange basis
// polynomial of node i - j among t[i], ..., t[i - order + 1]. float32_nodes: the nodes are
// float32 values and their differences are rounded to float32, as numpy does in k-diffusion.
double linear_multistep_coeff(int order, const std::vector<double>& t, int i, int j,
                              bool float32_nodes = false);

// --- CompVis DDIM / PLMS (ldm/models/diffusion/ddim.py, plms.py), over compvis_timesteps
// (sampler_registry.h).
// x: the unit-variance starting noise; alphas_cumprod: the model's [T] float32 table. Visits
// the timesteps from the highest down; eta as SamplerOptions (default 0).
torch::Tensor sample_ddim(const EpsModel& model, torch::Tensor x,
                          const std::vector<int64_t>& timesteps,
                          const torch::Tensor& alphas_cumprod, const NoiseSource& noise,
                          const SamplerOptions& options = {}, const StepCallback& callback = {});
// Pseudo linear multistep (PNDM); needs eta 0.
torch::Tensor sample_plms(const EpsModel& model, torch::Tensor x,
                          const std::vector<int64_t>& timesteps,
                          const torch::Tensor& alphas_cumprod, const StepCallback& callback = {});

// Dispatch by name: the k-diffusion-style samplers (not unit_noise_timesteps).
torch::Tensor run_sampler(const std::string& name, const Denoiser& model, torch::Tensor x,
                          const torch::Tensor& sigmas, const NoiseSource& noise,
                          const SamplerOptions& options = {}, const StepCallback& callback = {});
// Dispatch by name: the unit_noise_timesteps samplers (ddim, plms), `steps` as --steps.
// t_enc >= 0 (img2img, CompVis img2img.py's decode): only the first t_enc timesteps, x being
// the latent noised to timesteps[t_enc]; -1: all of them from pure noise.
torch::Tensor run_timestep_sampler(const std::string& name, const EpsModel& model, torch::Tensor x,
                                   const torch::Tensor& alphas_cumprod, int steps,
                                   const NoiseSource& noise, const SamplerOptions& options = {},
                                   const StepCallback& callback = {}, int t_enc = -1);

// The noise a sampler reads, drawn from the image's CPU generator: independent standard-normal
// tensors in draw order (k-diffusion's default_noise_sampler, torch.randn_like), or for
// brownian_noise samplers a BrownianTree over [min positive sigma, max sigma] whose seed is one
// draw from the generator (as k-diffusion's BrownianTreeNoiseSampler seeds itself with
// torch.randint from the global generator).
NoiseSource make_noise_source(const SamplerInfo& info, at::Generator generator,
                              const torch::Tensor& sigmas);

// k-diffusion get_ancestral_step: the deterministic target sigma_down and the noise sigma_up.
std::pair<torch::Tensor, torch::Tensor> ancestral_step(const torch::Tensor& sigma_from,
                                                       const torch::Tensor& sigma_to, double eta);

}  // namespace sdgen
