// The sampler and scheduler registry: names, A1111 labels and aliases, option checks and the
// infotext fields they give. Torch-free, so that job parameters are validated (and prompt files
// read) without libtorch; the samplers themselves are in samplers.h.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace sdgen {

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

// --- CompVis DDIM / PLMS (ldm/models/diffusion/ddim.py, plms.py) with uniform timesteps.
// The timesteps make_ddim_timesteps("uniform") gives: range(0, T, T / steps) + 1, ascending,
// clipped to T - 1 as A1111 does (CompVis itself fails where the last one reaches T). Throws
// std::invalid_argument for a step count it cannot give (more than T).
std::vector<int64_t> compvis_timesteps(int steps, int train_timesteps = 1000);

struct SchedulerInfo {
  std::string name;         // --scheduler value
  std::string a1111_label;  // "Schedule type" in A1111's infotext
  std::string description;
};
const std::vector<SchedulerInfo>& schedulers();
// Throws std::invalid_argument listing the valid names when `name` is unknown.
void validate_scheduler(const std::string& name);

}  // namespace sdgen
