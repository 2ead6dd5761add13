#include "sdgen/sampling/schedule.h"

#include <cmath>
#include <stdexcept>

namespace sdgen {
namespace {

torch::Tensor append_zero(const torch::Tensor& x) {
  return torch::cat({x, torch::zeros({1}, x.options())});
}

}  // namespace

DiscreteSchedule DiscreteSchedule::scaled_linear(int timesteps, double beta_start,
                                                 double beta_end) {
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto betas = torch::linspace(std::sqrt(beta_start), std::sqrt(beta_end), timesteps, f64).pow(2);
  auto alphas_cumprod = torch::cumprod(1.0 - betas, 0);
  return DiscreteSchedule(alphas_cumprod.to(torch::kFloat32));
}

DiscreteSchedule DiscreteSchedule::linear(int timesteps, double beta_start, double beta_end) {
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto betas = torch::linspace(beta_start, beta_end, timesteps, f64);
  return DiscreteSchedule(torch::cumprod(1.0 - betas, 0).to(torch::kFloat32));
}

DiscreteSchedule::DiscreteSchedule(torch::Tensor acp) : alphas_cumprod_(std::move(acp)) {
  sigmas_ = ((1 - alphas_cumprod_) / alphas_cumprod_).pow(0.5);
  log_sigmas_ = sigmas_.log();
}

// k-diffusion DiscreteSchedule.sigma_to_t, same float32 operations.
torch::Tensor DiscreteSchedule::sigma_to_t(const torch::Tensor& sigma) const {
  auto log_sigma = sigma.to(torch::kFloat32).log();
  auto dists = log_sigma - log_sigmas_.unsqueeze(1);
  auto low_idx = dists.ge(0).cumsum(0).argmax(0).clamp_max(log_sigmas_.size(0) - 2);
  auto high_idx = low_idx + 1;
  auto low = log_sigmas_.index({low_idx}), high = log_sigmas_.index({high_idx});
  auto w = ((low - log_sigma) / (low - high)).clamp(0, 1);
  auto t = (1 - w) * low_idx + w * high_idx;
  return t.view(sigma.sizes());
}

torch::Tensor DiscreteSchedule::t_to_sigma(const torch::Tensor& t_in) const {
  auto t = t_in.to(torch::kFloat32);
  auto low_idx = t.floor().to(torch::kLong), high_idx = t.ceil().to(torch::kLong);
  auto w = t.frac();
  auto log_sigma = (1 - w) * log_sigmas_.index({low_idx}) + w * log_sigmas_.index({high_idx});
  return log_sigma.exp();
}

torch::Tensor sigmas_discrete(const DiscreteSchedule& s, int n) {
  const double t_max = static_cast<double>(s.sigmas().size(0) - 1);
  auto t = torch::linspace(t_max, 0, n, torch::TensorOptions().dtype(torch::kFloat32));
  return append_zero(s.t_to_sigma(t));
}

torch::Tensor sigmas_karras(const DiscreteSchedule& s, int n, double rho) {
  auto ramp = torch::linspace(0, 1, n, torch::TensorOptions().dtype(torch::kFloat32));
  auto min_inv_rho = s.sigma_min().pow(1.0 / rho);
  auto max_inv_rho = s.sigma_max().pow(1.0 / rho);
  return append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)).pow(rho));
}

torch::Tensor sigmas_exponential(const DiscreteSchedule& s, int n) {
  // k-diffusion takes math.log of the float32 sigmas, in double precision.
  const double lo = std::log(static_cast<double>(s.sigma_min().item<float>()));
  const double hi = std::log(static_cast<double>(s.sigma_max().item<float>()));
  return append_zero(
      torch::linspace(hi, lo, n, torch::TensorOptions().dtype(torch::kFloat32)).exp());
}

torch::Tensor sigmas_sgm_uniform(const DiscreteSchedule& s, int n) {
  // A1111 sd_schedulers.sgm_uniform: start = sigma_to_t(sigma_max), end = sigma_to_t(sigma_min),
  // t = linspace(start, end, n + 1)[:-1] (float32), sigma = t_to_sigma(t), then 0.
  const double start = s.sigma_to_t(s.sigma_max().reshape({1})).item<float>();
  const double end = s.sigma_to_t(s.sigma_min().reshape({1})).item<float>();
  auto t = torch::linspace(start, end, n + 1, torch::TensorOptions().dtype(torch::kFloat));
  return append_zero(s.t_to_sigma(t.narrow(0, 0, n)));
}

torch::Tensor sigmas_simple(const DiscreteSchedule& s, int n) {
  // A1111 sd_schedulers.simple_scheduler: ss = len(sigmas) / n,
  // sigmas[-(1 + int(x * ss))] for x in range(n), then 0.
  const int64_t T = s.sigmas().size(0);
  const double ss = static_cast<double>(T) / n;
  std::vector<int64_t> idx;
  for (int x = 0; x < n; ++x) idx.push_back(T - 1 - static_cast<int64_t>(x * ss));
  return append_zero(s.sigmas().index({torch::tensor(idx, torch::kLong)}));
}

torch::Tensor make_sigmas(const std::string& name, const DiscreteSchedule& s, int steps) {
  if (steps < 1)
    throw std::invalid_argument("steps must be at least 1, got " + std::to_string(steps));
  if (name == "discrete") return sigmas_discrete(s, steps);
  if (name == "karras") return sigmas_karras(s, steps);
  if (name == "exponential") return sigmas_exponential(s, steps);
  if (name == "sgm_uniform") return sigmas_sgm_uniform(s, steps);
  if (name == "simple") return sigmas_simple(s, steps);
  validate_scheduler(name);  // throws naming the valid ones
  throw std::logic_error("scheduler '" + name + "' is listed but has no implementation");
}

}  // namespace sdgen
