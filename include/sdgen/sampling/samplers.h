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

struct SamplerOptions {
  // Noise amount of samplers that take one (ancestral, SDE, ddim). NaN: the sampler's default
  // (SamplerInfo::default_eta: 1 for ancestral and SDE samplers, 0 for ddim).
  double eta = std::numeric_limits<double>::quiet_NaN();
  double s_noise = 1.0;  // noise scale
};

struct SamplerInfo {
  std::string name;         // --sampler value
  std::string a1111_label;  // "Sampler" in A1111's infotext
  std::string description;
  bool ancestral = false;  // adds fresh noise while it samples (reads the NoiseSource)
  bool takes_eta = false;  // --eta applies
  double default_eta = 0.0;
  // Noise from a Brownian tree over [sigma_min, sigma_max] (k-diffusion's
  // BrownianTreeNoiseSampler) rather than independent draws; see brownian_tree.h.
  bool brownian_noise = false;
  // CompVis DDIM / PLMS: the pipeline starts from the unit-variance noise itself (not noise *
  // sigmas[0]), the sampler picks its own timesteps (no --scheduler), and it is driven by an
  // EpsModel through run_timestep_sampler instead of a Denoiser.
  bool unit_noise_timesteps = false;
  // The schedule A1111 (>= 1.9) gives this sampler under "Automatic": "" for the model's own
  // discrete sigmas, else a scheduler name. Decides when the infotext must say "Schedule type".
  std::string a1111_default_scheduler;
};
const std::vector<SamplerInfo>& samplers();
const SamplerInfo& sampler_info(const std::string& name);  // throws listing valid names
// The eta a sampler runs with: options.eta when given, else the sampler's default.
double effective_eta(const SamplerInfo& info, const SamplerOptions& options);
// Throws std::invalid_argument for an unknown sampler, an --eta the sampler does not take, or
// a step count it cannot run (ddim / plms: at most 1000, one per training timestep).
void validate_sampler(const std::string& name, int steps, const SamplerOptions& options);

// A1111 sampler labels accepted as --sampler values ("Euler a", "DPM++ 2M Karras", "k_lms"):
// each names a sampler and, when the label carries a schedule ("... Karras", "... Exponential"),
// a scheduler. Matching ignores case.
struct SamplerAlias {
  std::string label;
  std::string sampler;
  std::string scheduler;  // "" when the label names no schedule
};
const std::vector<SamplerAlias>& sampler_aliases();
// If `sampler` is an alias, replaces it with the sampler's name and, when the alias names a
// schedule, sets `scheduler`. A schedule from the alias that contradicts an explicitly given
// scheduler (scheduler_explicit) is an error (std::invalid_argument). Names that are not
// aliases are left alone (sampler_info reports unknown ones).
void apply_sampler_alias(std::string& sampler, std::string& scheduler, bool scheduler_explicit);

// The A1111 infotext fields for a sampler, schedule and options (pipeline make_infotext):
// "Schedule type" ("" to leave it out: the model's own sigmas where A1111's "Automatic" gives
// them too, and samplers with their own timesteps), and the eta field ("Eta" for k-diffusion
// samplers when eta != 1, "Eta DDIM" for ddim when eta != 0; name "" when none).
std::string a1111_schedule_type(const std::string& sampler, const std::string& scheduler);
std::pair<std::string, double> a1111_eta_field(const std::string& sampler,
                                               const SamplerOptions& options);

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

// --- CompVis DDIM / PLMS (ldm/models/diffusion/ddim.py, plms.py) with uniform timesteps.
// The timesteps make_ddim_timesteps("uniform") gives: range(0, T, T / steps) + 1, ascending,
// clipped to T - 1 as A1111 does (CompVis itself fails where the last one reaches T).
std::vector<int64_t> compvis_timesteps(int steps, int train_timesteps = 1000);
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
torch::Tensor run_timestep_sampler(const std::string& name, const EpsModel& model, torch::Tensor x,
                                   const torch::Tensor& alphas_cumprod, int steps,
                                   const NoiseSource& noise, const SamplerOptions& options = {},
                                   const StepCallback& callback = {});

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
