// CompVis' DDIM and PLMS samplers (CompVis/stable-diffusion ldm/models/diffusion/ddim.py and
// plms.py, commit 21f890f) as the webuis run them: uniform timesteps
// range(0, 1000, 1000 // steps) + 1 visited from the highest down, a noise-prediction model with
// classifier-free guidance in eps space, started from the unit-variance noise itself. The
// per-step constants are float32 [B, 1, 1, 1] tensors as in CompVis, so the float32 arithmetic
// is the same.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "sampler_util.h"
#include "sdgen/sampling/samplers.h"

namespace sdgen {
namespace {

// The DDIM constants of one timestep (make_ddim_sampling_parameters).
struct DdimStep {
  int64_t t = 0;
  float a_t = 0, a_prev = 0, sigma_t = 0, sqrt_one_minus_at = 0;
};

std::vector<DdimStep> ddim_parameters(const std::vector<int64_t>& timesteps,
                                      const torch::Tensor& alphas_cumprod, double eta) {
  auto acp = alphas_cumprod.to(torch::kCPU).to(torch::kFloat).contiguous();
  const float* a = acp.data_ptr<float>();
  const int64_t T = acp.numel();
  std::vector<DdimStep> out;
  for (size_t k = 0; k < timesteps.size(); ++k) {
    const int64_t t = timesteps[k];
    const int64_t prev = k == 0 ? 0 : timesteps[k - 1];
    if (t < 0 || t >= T) throw std::invalid_argument("timestep out of range of the schedule");
    DdimStep s;
    s.t = t;
    s.a_t = a[t];
    s.a_prev = k == 0 ? a[0] : a[prev];  // alphas_prev = [acp[0]] + acp[timesteps[:-1]]
    s.sqrt_one_minus_at = std::sqrt(1.0f - s.a_t);
    const double at = s.a_t, ap = s.a_prev;
    s.sigma_t = static_cast<float>(eta * std::sqrt((1 - ap) / (1 - at) * (1 - at / ap)));
    out.push_back(s);
  }
  return out;
}

torch::Tensor filled(const torch::Tensor& x, float v) {
  return torch::full({x.size(0), 1, 1, 1}, v, x.options());
}

torch::Tensor timestep_batch(const torch::Tensor& x, int64_t t) {
  return torch::full({x.size(0)}, static_cast<float>(t), x.options());
}

double k_sigma(float a) { return std::sqrt((1.0 - a) / a); }

// get_x_prev_and_pred_x0 of ddim.py / plms.py, eta's noise added by the caller.
torch::Tensor ddim_update(const torch::Tensor& x, const torch::Tensor& e_t, const DdimStep& s) {
  auto a_t = filled(x, s.a_t), a_prev = filled(x, s.a_prev);
  auto sigma_t = filled(x, s.sigma_t), sqrt_one_minus_at = filled(x, s.sqrt_one_minus_at);
  auto pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt();
  auto dir_xt = (1. - a_prev - sigma_t.pow(2)).sqrt() * e_t;
  return a_prev.sqrt() * pred_x0 + dir_xt;
}

}  // namespace

torch::Tensor sample_ddim(const EpsModel& model, torch::Tensor x,
                          const std::vector<int64_t>& timesteps,
                          const torch::Tensor& alphas_cumprod, const NoiseSource& noise,
                          const SamplerOptions& o, const StepCallback& callback) {
  const double eta = detail::eta_or(o, 0.0);
  const auto params = ddim_parameters(timesteps, alphas_cumprod, eta);
  const int steps = static_cast<int>(params.size());
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    const auto& s = params[steps - 1 - i];
    auto e_t = model(x, timestep_batch(x, s.t));
    auto x_prev = ddim_update(x, e_t, s);
    if (s.sigma_t != 0.0f) {
      // noise = sigma_t * randn * temperature, drawn only where it is not multiplied by 0
      auto n = noise(x, k_sigma(s.a_t), k_sigma(s.a_prev));
      x_prev = x_prev + filled(x, s.sigma_t) * n * o.s_noise;
    }
    x = x_prev;
  }
  return x;
}

torch::Tensor sample_plms(const EpsModel& model, torch::Tensor x,
                          const std::vector<int64_t>& timesteps,
                          const torch::Tensor& alphas_cumprod, const StepCallback& callback) {
  const auto params = ddim_parameters(timesteps, alphas_cumprod, 0.0);
  const int steps = static_cast<int>(params.size());
  std::vector<torch::Tensor> old_eps;
  for (int i = 0; i < steps; ++i) {
    if (callback) callback(i, steps, x);
    const auto& s = params[steps - 1 - i];
    const int64_t t_next = params[std::max(0, steps - 2 - i)].t;
    auto e_t = model(x, timestep_batch(x, s.t));
    torch::Tensor e_t_prime;
    const size_t n = old_eps.size();
    if (n == 0) {
      // pseudo improved Euler (2nd order)
      auto x_prev = ddim_update(x, e_t, s);
      auto e_t_next = model(x_prev, timestep_batch(x, t_next));
      e_t_prime = (e_t + e_t_next) / 2;
    } else if (n == 1) {
      e_t_prime = (3 * e_t - old_eps[n - 1]) / 2;  // 2nd order Adams-Bashforth
    } else if (n == 2) {
      e_t_prime = (23 * e_t - 16 * old_eps[n - 1] + 5 * old_eps[n - 2]) / 12;
    } else {
      e_t_prime = (55 * e_t - 59 * old_eps[n - 1] + 37 * old_eps[n - 2] - 9 * old_eps[n - 3]) / 24;
    }
    x = ddim_update(x, e_t_prime, s);
    old_eps.push_back(e_t);
    if (old_eps.size() >= 4) old_eps.erase(old_eps.begin());
  }
  return x;
}

}  // namespace sdgen
