// Helpers for the sampler tests: the analytic denoiser of unit-Gaussian data, a recorder of
// denoiser calls, and the replay of the k-diffusion trajectories in samplers_io.safetensors.
#pragma once
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sdgen/sampling/samplers.h"
#include "torch_test_util.h"

namespace sdgen::test {

// D(x, sigma) = x / (1 + sigma^2): the exact posterior mean E[x0 | x0 + sigma n = x] for
// independent unit-Gaussian x0 and n (the denoiser of samplers_io).
inline torch::Tensor analytic_denoiser(const torch::Tensor& x, const torch::Tensor& sigma) {
  return x / (1 + sigma.pow(2)).view({-1, 1, 1, 1});
}

// The matching noise prediction at DDPM timestep t for the unit-variance latent:
// E[n | sqrt(a) x0 + sqrt(1 - a) n = x] = sqrt(1 - a) x, with a = alphas_cumprod[t].
inline EpsModel analytic_eps_model(const torch::Tensor& alphas_cumprod) {
  return [alphas_cumprod](const torch::Tensor& x, const torch::Tensor& t) {
    auto a = alphas_cumprod.index({t.to(torch::kLong)}).to(x.scalar_type());
    return x * (1 - a).sqrt().view({-1, 1, 1, 1});
  };
}

// The exact probability-flow ODE solution for that data: x(s) = x_T sqrt(1 + s^2) / sqrt(1 +
// s_T^2).
inline torch::Tensor exact_ode(const torch::Tensor& x_T, double sigma_T, double sigma) {
  return x_T * (std::sqrt(1 + sigma * sigma) / std::sqrt(1 + sigma_T * sigma_T));
}

struct Recorder {
  std::vector<torch::Tensor> sigmas, xs;
  Denoiser wrap(Denoiser inner = analytic_denoiser) {
    return [this, inner](const torch::Tensor& x, const torch::Tensor& sigma) {
      sigmas.push_back(sigma.clone());
      xs.push_back(x.clone());
      return inner(x, sigma);
    };
  }
};

// Largest differences of one replayed run against the reference.
struct RunErrors {
  double x_final = 0, model_x = 0, model_sigma = 0, x_steps = 0;
};

// Runs `sampler` (a name for run_sampler) on the recorded start of `<ref_name>.<sched>`,
// replaying the recorded noise, and checks calls, steps and the result within `tol`.
inline RunErrors check_reference_run(const std::string& sampler, const std::string& ref_name,
                                     const std::string& sched, double tol = 5e-5) {
  const std::string f = "samplers_io.safetensors";
  const std::string run = ref_name + "." + sched;
  auto sigmas = rt(f, "sigmas." + sched);
  auto x = rt(f, "x_T." + sched).clone();
  const bool noisy = ref_tensors(f).count(run + ".noise") > 0;
  Recorder rec;
  int draws = 0;
  std::vector<std::pair<double, double>> draw_sigmas;
  NoiseSource noise = [&](const torch::Tensor& like, double s, double s_next) {
    draw_sigmas.emplace_back(s, s_next);
    if (!noisy) return torch::zeros_like(like);
    return rt(f, run + ".noise")[draws++];
  };
  std::vector<torch::Tensor> steps;
  auto out = run_sampler(sampler, rec.wrap(), x, sigmas, noise, {},
                         [&](int, int, const torch::Tensor& xi) { steps.push_back(xi.clone()); });
  RunErrors e;
  e.x_final = max_abs_diff(out, rt(f, run + ".x_final"));
  EXPECT_LT(e.x_final, tol) << run;
  const auto& calls = rt(f, run + ".model_sigma");
  EXPECT_EQ(static_cast<int64_t>(rec.sigmas.size()), calls.size(0)) << run;
  for (size_t i = 0; i < rec.sigmas.size() && static_cast<int64_t>(i) < calls.size(0); ++i) {
    e.model_sigma = std::max(e.model_sigma, max_abs_diff(rec.sigmas[i], calls[i]));
    e.model_x = std::max(e.model_x, max_abs_diff(rec.xs[i], rt(f, run + ".model_x")[i]));
  }
  EXPECT_LT(e.model_sigma, 1e-6) << run;
  EXPECT_LT(e.model_x, tol) << run;
  const auto& x_steps = rt(f, run + ".x_steps");
  EXPECT_EQ(static_cast<int64_t>(steps.size()) + 1, x_steps.size(0)) << run;
  for (size_t i = 0; i < steps.size() && static_cast<int64_t>(i) < x_steps.size(0); ++i)
    e.x_steps = std::max(e.x_steps, max_abs_diff(steps[i], x_steps[i]));
  EXPECT_LT(e.x_steps, tol) << run;
  if (noisy) {
    const auto& ns = rt(f, run + ".noise_sigmas");
    EXPECT_EQ(draws, ns.size(0)) << run;
    for (int k = 0; k < draws && k < ns.size(0); ++k) {
      EXPECT_FLOAT_EQ(draw_sigmas[k].first, ns[k][0].item<float>()) << run << " draw " << k;
      EXPECT_FLOAT_EQ(draw_sigmas[k].second, ns[k][1].item<float>()) << run << " draw " << k;
    }
  } else {
    EXPECT_TRUE(draw_sigmas.empty()) << run;
  }
  return e;
}

// Least-squares slope of log(err) against log(n).
inline double log_slope(const std::vector<int>& n, const std::vector<double>& err) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double m = static_cast<double>(n.size());
  for (size_t i = 0; i < n.size(); ++i) {
    const double x = std::log(static_cast<double>(n[i])), y = std::log(err[i]);
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  return (m * sxy - sx * sy) / (m * sxx - sx * sx);
}

}  // namespace sdgen::test
