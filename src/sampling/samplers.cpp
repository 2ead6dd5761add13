// Sampler dispatch by name and the noise each sampler reads. The registry (names, labels,
// option checks) is in sampler_registry.cpp; the samplers in samplers_kdiffusion.cpp,
// samplers_multistep.cpp and samplers_compvis.cpp.
#include "sdgen/sampling/samplers.h"

#include <cmath>
#include <memory>
#include <stdexcept>

#include "sdgen/sampling/brownian_tree.h"

namespace sdgen {

torch::Tensor run_sampler(const std::string& name, const Denoiser& model, torch::Tensor x,
                          const torch::Tensor& sigmas, const NoiseSource& noise,
                          const SamplerOptions& o, const StepCallback& cb) {
  const auto& info = sampler_info(name);
  if (info.unit_noise_timesteps)
    throw std::invalid_argument("sampler '" + name + "' runs through run_timestep_sampler");
  if (name == "euler") return sample_euler(model, std::move(x), sigmas, cb);
  if (name == "euler_a") return sample_euler_ancestral(model, std::move(x), sigmas, noise, o, cb);
  if (name == "heun") return sample_heun(model, std::move(x), sigmas, cb);
  if (name == "dpm2") return sample_dpm_2(model, std::move(x), sigmas, cb);
  if (name == "dpm2_a") return sample_dpm_2_ancestral(model, std::move(x), sigmas, noise, o, cb);
  if (name == "dpm++2s_a")
    return sample_dpmpp_2s_ancestral(model, std::move(x), sigmas, noise, o, cb);
  if (name == "dpm++2m") return sample_dpmpp_2m(model, std::move(x), sigmas, cb);
  if (name == "dpm++2m_sde") return sample_dpmpp_2m_sde(model, std::move(x), sigmas, noise, o, cb);
  if (name == "lms") return sample_lms(model, std::move(x), sigmas, 4, cb);
  if (name == "unipc") return sample_unipc(model, std::move(x), sigmas, {}, cb);
  if (name == "lcm") return sample_lcm(model, std::move(x), sigmas, noise, cb);
  throw std::logic_error("sampler '" + name + "' is listed but has no implementation");
}

torch::Tensor run_timestep_sampler(const std::string& name, const EpsModel& model, torch::Tensor x,
                                   const torch::Tensor& alphas_cumprod, int steps,
                                   const NoiseSource& noise, const SamplerOptions& o,
                                   const StepCallback& cb, int t_enc) {
  const auto& info = sampler_info(name);
  if (!info.unit_noise_timesteps)
    throw std::invalid_argument("sampler '" + name + "' runs through run_sampler");
  auto timesteps = compvis_timesteps(steps, static_cast<int>(alphas_cumprod.size(0)));
  if (t_enc >= 0) {
    if (t_enc >= static_cast<int>(timesteps.size()))
      throw std::invalid_argument("run_timestep_sampler: t_enc must be below the step count");
    timesteps.resize(static_cast<size_t>(t_enc));
    if (timesteps.empty()) return x;  // (strength so low that no step runs)
  }
  if (name == "ddim")
    return sample_ddim(model, std::move(x), timesteps, alphas_cumprod, noise, o, cb);
  if (name == "plms") {
    if (!std::isnan(o.eta) && o.eta != 0) throw std::invalid_argument("plms needs eta 0");
    return sample_plms(model, std::move(x), timesteps, alphas_cumprod, cb);
  }
  throw std::logic_error("sampler '" + name + "' is listed but has no implementation");
}

NoiseSource make_noise_source(const SamplerInfo& info, at::Generator generator,
                              const torch::Tensor& sigmas) {
  if (info.brownian_noise) {
    // k-diffusion: BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max()) seeded
    // by torch.randint(0, 2 ** 63 - 1, []) from the global generator.
    auto s = sigmas.to(torch::kCPU).to(torch::kDouble);
    const double lo = s.masked_select(s.gt(0)).min().item<double>();
    const double hi = s.max().item<double>();
    const auto seed = static_cast<uint64_t>(
        torch::randint(0, INT64_MAX, {}, generator, torch::TensorOptions().dtype(torch::kLong))
            .item<int64_t>());
    auto source = std::make_shared<NoiseSource>();
    return [source, seed, lo, hi](const torch::Tensor& like, double sigma, double next) {
      if (!*source) *source = brownian_noise_source(seed, like.sizes().vec(), lo, hi);
      return (*source)(like, sigma, next);
    };
  }
  // k-diffusion default_noise_sampler: torch.randn_like(x) from the global generator.
  return [generator](const torch::Tensor& like, double, double) mutable {
    return torch::randn(like.sizes(), generator, torch::TensorOptions().dtype(torch::kFloat))
        .to(like.device(), like.scalar_type());
  };
}

}  // namespace sdgen
