// The sampler and scheduler registry (torch-free): names, A1111 labels and aliases, option
// checks. Dispatch and the noise each sampler reads are in samplers.cpp.
#include "sdgen/sampling/sampler_registry.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

namespace sdgen {
namespace {

SamplerInfo info(std::string name, std::string label, std::string description) {
  SamplerInfo s;
  s.name = std::move(name);
  s.a1111_label = std::move(label);
  s.description = std::move(description);
  return s;
}

SamplerInfo noisy(SamplerInfo s, bool takes_eta = true) {
  s.ancestral = true;
  s.takes_eta = takes_eta;
  s.default_eta = takes_eta ? 1.0 : 0.0;
  return s;
}

SamplerInfo default_schedule(SamplerInfo s, std::string scheduler) {
  s.a1111_default_scheduler = std::move(scheduler);
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string valid_names() {
  std::string valid;
  for (const auto& s : samplers()) valid += (valid.empty() ? "" : ", ") + s.name;
  return valid;
}

}  // namespace

const std::vector<SamplerInfo>& samplers() {
  static const std::vector<SamplerInfo> list = [] {
    std::vector<SamplerInfo> l;
    l.push_back(info("euler", "Euler",
                     "Euler's method on the probability-flow ODE (k-diffusion sample_euler)"));
    l.push_back(noisy(info("euler_a", "Euler a",
                           "Euler ancestral: an Euler step down to sigma_down, then fresh noise "
                           "up to the next sigma (sample_euler_ancestral; --eta scales the "
                           "noise)")));
    l.push_back(info("heun", "Heun",
                     "Heun's second-order method, 2 model calls per step but the last "
                     "(sample_heun)"));
    l.push_back(default_schedule(
        info("dpm2", "DPM2",
             "DPM-Solver-2: a midpoint step at the geometric mean sigma, 2 model calls per "
             "step but the last (sample_dpm_2)"),
        "karras"));
    l.push_back(default_schedule(
        noisy(info("dpm2_a", "DPM2 a",
                   "DPM-Solver-2 ancestral: DPM2 down to sigma_down, then fresh noise "
                   "(sample_dpm_2_ancestral; --eta)")),
        "karras"));
    l.push_back(default_schedule(
        noisy(info("dpm++2s_a", "DPM++ 2S a",
                   "DPM-Solver++(2S) ancestral: 2 model calls per step, fresh noise each step "
                   "(sample_dpmpp_2s_ancestral; --eta)")),
        "karras"));
    l.push_back(
        default_schedule(info("dpm++2m", "DPM++ 2M",
                              "DPM-Solver++(2M): second-order multistep, 1 model call per step "
                              "(sample_dpmpp_2m)"),
                         "karras"));
    auto sde = noisy(info("dpm++2m_sde", "DPM++ 2M SDE",
                          "DPM-Solver++(2M) SDE, midpoint: 2M on the reverse SDE with "
                          "Brownian-tree noise seeded from the image seed "
                          "(sample_dpmpp_2m_sde; --eta 0 gives dpm++2m)"));
    sde.brownian_noise = true;
    l.push_back(default_schedule(sde, "exponential"));
    l.push_back(info("lms", "LMS",
                     "linear multistep of order 4 with exactly integrated coefficients "
                     "(sample_lms)"));
    auto ddim = info("ddim", "DDIM",
                     "CompVis DDIM with uniform timesteps from unit noise, CFG on the noise "
                     "prediction (own timesteps: --scheduler does not apply; --eta, default 0)");
    ddim.takes_eta = true;
    ddim.unit_noise_timesteps = true;
    l.push_back(ddim);
    auto plms = info("plms", "PLMS",
                     "CompVis PLMS (pseudo linear multistep) with uniform timesteps from unit "
                     "noise, steps + 1 model calls (own timesteps: --scheduler does not apply)");
    plms.unit_noise_timesteps = true;
    l.push_back(plms);
    l.push_back(info("unipc", "UniPC",
                     "UniPC bh2 order 2 predictor-corrector (as diffusers' "
                     "UniPCMultistepScheduler defaults), 1 model call per step"));
    l.push_back(noisy(info("lcm", "LCM",
                           "latent consistency sampling: jump to the denoised estimate, re-noise "
                           "to the next sigma (sample_lcm; for LCM-distilled models, few steps)"),
                      false));
    return l;
  }();
  return list;
}

const SamplerInfo& sampler_info(const std::string& name) {
  for (const auto& s : samplers())
    if (s.name == name) return s;
  throw std::invalid_argument("unknown sampler '" + name + "'; valid: " + valid_names() +
                              " (or an A1111 label such as \"DPM++ 2M Karras\")");
}

double effective_eta(const SamplerInfo& info, const SamplerOptions& options) {
  if (!info.takes_eta) return info.default_eta;
  return std::isnan(options.eta) ? info.default_eta : options.eta;
}

void validate_sampler(const std::string& name, int steps, const SamplerOptions& options) {
  const auto& s = sampler_info(name);
  if (!std::isnan(options.eta)) {
    if (!s.takes_eta) {
      std::string takers;
      for (const auto& t : samplers())
        if (t.takes_eta) takers += (takers.empty() ? "" : ", ") + t.name;
      throw std::invalid_argument("--eta does not apply to sampler " + name +
                                  "; samplers that take it: " + takers);
    }
    if (!(options.eta >= 0) || options.eta > 100)
      throw std::invalid_argument("--eta must be between 0 and 100");
  }
  if (s.unit_noise_timesteps) compvis_timesteps(steps);  // throws for an impossible count
}

const std::vector<SamplerAlias>& sampler_aliases() {
  // A1111's labels (modules/sd_samplers_kdiffusion.py, sd_samplers_timesteps.py; before 1.9
  // the schedule was part of the label), its k_ aliases, and ComfyUI's spellings.
  static const std::vector<SamplerAlias> list = {
      {"Euler", "euler", ""},
      {"Euler a", "euler_a", ""},
      {"Heun", "heun", ""},
      {"DPM2", "dpm2", ""},
      {"DPM2 Karras", "dpm2", "karras"},
      {"DPM2 a", "dpm2_a", ""},
      {"DPM2 a Karras", "dpm2_a", "karras"},
      {"DPM++ 2S a", "dpm++2s_a", ""},
      {"DPM++ 2S a Karras", "dpm++2s_a", "karras"},
      {"DPM++ 2M", "dpm++2m", ""},
      {"DPM++ 2M Karras", "dpm++2m", "karras"},
      {"DPM++ 2M SDE", "dpm++2m_sde", ""},
      {"DPM++ 2M SDE Karras", "dpm++2m_sde", "karras"},
      {"DPM++ 2M SDE Exponential", "dpm++2m_sde", "exponential"},
      {"LMS", "lms", ""},
      {"LMS Karras", "lms", "karras"},
      {"DDIM", "ddim", ""},
      {"PLMS", "plms", ""},
      {"UniPC", "unipc", ""},
      {"LCM", "lcm", ""},
      {"k_euler", "euler", ""},
      {"k_euler_a", "euler_a", ""},
      {"k_euler_ancestral", "euler_a", ""},
      {"k_heun", "heun", ""},
      {"k_dpm_2", "dpm2", ""},
      {"k_dpm_2_ka", "dpm2", "karras"},
      {"k_dpm_2_a", "dpm2_a", ""},
      {"k_dpm_2_a_ka", "dpm2_a", "karras"},
      {"k_dpmpp_2s_a", "dpm++2s_a", ""},
      {"k_dpmpp_2s_a_ka", "dpm++2s_a", "karras"},
      {"k_dpmpp_2m", "dpm++2m", ""},
      {"k_dpmpp_2m_ka", "dpm++2m", "karras"},
      {"k_dpmpp_2m_sde", "dpm++2m_sde", ""},
      {"k_dpmpp_2m_sde_ka", "dpm++2m_sde", "karras"},
      {"k_lms", "lms", ""},
      {"k_lms_ka", "lms", "karras"},
      {"euler_ancestral", "euler_a", ""},
      {"dpm_2", "dpm2", ""},
      {"dpm_2_ancestral", "dpm2_a", ""},
      {"dpmpp_2s_ancestral", "dpm++2s_a", ""},
      {"dpmpp_2m", "dpm++2m", ""},
      {"dpmpp_2m_sde", "dpm++2m_sde", ""},
      {"uni_pc_bh2", "unipc", ""},
  };
  return list;
}

void apply_sampler_alias(std::string& sampler, std::string& scheduler, bool scheduler_explicit) {
  for (const auto& s : samplers())
    if (s.name == sampler) return;
  const std::string key = lower(sampler);
  for (const auto& a : sampler_aliases()) {
    if (lower(a.label) != key) continue;
    if (!a.scheduler.empty()) {
      if (scheduler_explicit && scheduler != a.scheduler)
        throw std::invalid_argument("--sampler \"" + sampler + "\" means --sampler " + a.sampler +
                                    " --scheduler " + a.scheduler +
                                    ", which contradicts "
                                    "--scheduler " +
                                    scheduler + "; give one or the other");
      scheduler = a.scheduler;
    }
    sampler = a.sampler;
    return;
  }
}

std::string a1111_schedule_type(const std::string& sampler, const std::string& scheduler) {
  const auto& info = sampler_info(sampler);
  if (info.unit_noise_timesteps) return "";
  if (scheduler == "discrete" && info.a1111_default_scheduler.empty()) return "";
  for (const auto& s : schedulers())
    if (s.name == scheduler) return s.a1111_label;
  return scheduler;
}

std::pair<std::string, double> a1111_eta_field(const std::string& sampler,
                                               const SamplerOptions& options) {
  const auto& info = sampler_info(sampler);
  const double eta = effective_eta(info, options);
  if (!info.takes_eta || eta == info.default_eta) return {"", eta};
  return {info.unit_noise_timesteps ? "Eta DDIM" : "Eta", eta};
}

std::vector<int64_t> compvis_timesteps(int steps, int train_timesteps) {
  // make_ddim_timesteps("uniform"): range(0, T, T // steps) + 1. For some step counts (3, 9, 27,
  // 36, 37, 101-111, 251-333, 501-1000) that reaches T, where CompVis fails with an index error;
  // A1111 clips to T - 1 (sd_samplers_timesteps.py), and so does this.
  const int c = steps < 1 ? 0 : train_timesteps / steps;
  if (c < 1)
    throw std::invalid_argument("CompVis uniform timesteps take 1 to " +
                                std::to_string(train_timesteps) + " steps, not " +
                                std::to_string(steps));
  std::vector<int64_t> out;
  for (int t = 0; t < train_timesteps; t += c)
    out.push_back(std::min<int64_t>(t + 1, train_timesteps - 1));
  return out;
}

const std::vector<SchedulerInfo>& schedulers() {
  static const std::vector<SchedulerInfo> list = {
      {"discrete", "Uniform",
       "the model's own timesteps, evenly spaced from 999 to 0 (k-diffusion get_sigmas; "
       "A1111 \"Automatic\" for most samplers)"},
      {"karras", "Karras", "Karras et al. (2022) rho=7 spacing: more steps at low noise"},
      {"exponential", "Exponential", "evenly spaced in log sigma"},
      {"sgm_uniform", "SGM Uniform",
       "timesteps evenly spaced from 999 towards 0 without reaching it (for LCM / turbo "
       "models)"},
      {"simple", "Simple", "every (1000 / steps)-th sigma of the model's table, from the top"},
  };
  return list;
}

void validate_scheduler(const std::string& name) {
  std::string valid;
  for (const auto& s : schedulers()) {
    if (s.name == name) return;
    valid += (valid.empty() ? "" : ", ") + s.name;
  }
  throw std::invalid_argument("unknown scheduler '" + name + "'; valid: " + valid);
}

}  // namespace sdgen
