// Convergence orders, from the methods themselves: on unit-Gaussian data the denoiser
// D(x, sigma) = x / (1 + sigma^2) is exact and the probability-flow ODE has the solution
// x(sigma) = x_T sqrt(1 + sigma^2) / sqrt(1 + sigma_T^2). Each deterministic sampler runs in
// float64 from sigma_max to sigma_min with n steps (no step to 0, whose first-order last step
// would put a floor under every method), and the slope of log(error) against log(n) must be
// near the method's order. For CompVis DDIM / PLMS on their own timesteps the exact solution
// keeps the unit-variance latent constant.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>

#include "sampler_test_util.h"
#include "sdgen/sampling/schedule.h"

namespace sdgen::test {
namespace {

constexpr double kSigmaMin = 0.0291675, kSigmaMax = 14.614642;

torch::Tensor start_noise() {
  auto gen = at::detail::createCPUGenerator(7);
  return torch::randn({1, 4, 8, 8}, gen, torch::TensorOptions().dtype(torch::kDouble));
}

// n + 1 sigmas from sigma_max to sigma_min (float64).
torch::Tensor karras64(int n) {
  auto ramp = torch::linspace(0, 1, n + 1, torch::TensorOptions().dtype(torch::kDouble));
  const double lo = std::pow(kSigmaMin, 1 / 7.0), hi = std::pow(kSigmaMax, 1 / 7.0);
  return (hi + ramp * (lo - hi)).pow(7);
}

torch::Tensor exponential64(int n) {
  return torch::linspace(std::log(kSigmaMax), std::log(kSigmaMin), n + 1,
                         torch::TensorOptions().dtype(torch::kDouble))
      .exp();
}

using SamplerRun =
    std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigmas)>;

// Relative max error at sigma_min for each n, printed, and the fitted order.
double fitted_order(const std::string& label, const SamplerRun& run,
                    const std::function<torch::Tensor(int)>& schedule, const std::vector<int>& ns) {
  const auto noise = start_noise();
  std::vector<double> errs;
  std::printf("  %-22s", label.c_str());
  for (int n : ns) {
    auto sigmas = schedule(n);
    const double s0 = sigmas[0].item<double>(), s1 = sigmas[-1].item<double>();
    auto x_T = noise * s0;
    auto want = exact_ode(x_T, s0, s1);
    const double err = max_abs_diff(run(x_T, sigmas), want) / want.abs().max().item<double>();
    errs.push_back(err);
    std::printf(" n=%d %.2e", n, err);
  }
  const double order = -log_slope(ns, errs);
  std::printf("  order %.2f\n", order);
  return order;
}

SamplerRun by_name(const std::string& name) {
  return [name](const torch::Tensor& x, const torch::Tensor& sigmas) {
    NoiseSource zero = [](const torch::Tensor& like, double, double) {
      return torch::zeros_like(like);
    };
    SamplerOptions o;
    o.eta = sampler_info(name).takes_eta ? 0.0 : o.eta;  // the deterministic limit
    return run_sampler(name, analytic_denoiser, x, sigmas, zero, o);
  };
}

const std::vector<int> kSteps = {16, 32, 64, 128};

TEST(Convergence, EulerIsFirstOrder) {
  EXPECT_NEAR(fitted_order("euler karras", by_name("euler"), karras64, kSteps), 1.0, 0.15);
  EXPECT_NEAR(fitted_order("euler exponential", by_name("euler"), exponential64, kSteps), 1.0,
              0.15);
}

TEST(Convergence, EulerAncestralAtEta0IsEuler) {
  auto x = start_noise() * kSigmaMax;
  auto sigmas = karras64(20);
  EXPECT_TRUE(torch::equal(by_name("euler_a")(x, sigmas), by_name("euler")(x, sigmas)));
  EXPECT_TRUE(torch::equal(by_name("dpm2_a")(x, sigmas), by_name("dpm2")(x, sigmas)));
}

TEST(Convergence, HeunIsSecondOrder) {
  EXPECT_NEAR(fitted_order("heun karras", by_name("heun"), karras64, kSteps), 2.0, 0.2);
  EXPECT_NEAR(fitted_order("heun exponential", by_name("heun"), exponential64, kSteps), 2.0, 0.2);
}

TEST(Convergence, Dpm2IsSecondOrder) {
  EXPECT_NEAR(fitted_order("dpm2 karras", by_name("dpm2"), karras64, kSteps), 2.0, 0.2);
  EXPECT_NEAR(fitted_order("dpm2 exponential", by_name("dpm2"), exponential64, kSteps), 2.0, 0.2);
}

TEST(Convergence, DpmSolverPlusPlus2SAtEta0IsSecondOrder) {
  EXPECT_NEAR(fitted_order("dpm++2s_a(eta 0) karras", by_name("dpm++2s_a"), karras64, kSteps), 2.0,
              0.2);
}

TEST(Convergence, DpmSolverPlusPlus2MIsSecondOrder) {
  EXPECT_NEAR(fitted_order("dpm++2m karras", by_name("dpm++2m"), karras64, kSteps), 2.0, 0.2);
  EXPECT_NEAR(fitted_order("dpm++2m exponential", by_name("dpm++2m"), exponential64, kSteps), 2.0,
              0.2);
}

TEST(Convergence, DpmSolverPlusPlus2MSdeAtEta0IsDpmSolverPlusPlus2M) {
  auto x = start_noise() * kSigmaMax;
  for (auto sigmas :
       {karras64(12), sigmas_karras(DiscreteSchedule::scaled_linear(), 12).to(torch::kDouble)}) {
    auto a = by_name("dpm++2m_sde")(x, sigmas), b = by_name("dpm++2m")(x, sigmas);
    EXPECT_LT(max_abs_diff(a, b), 1e-12 * b.abs().max().item<double>());
  }
  EXPECT_NEAR(fitted_order("dpm++2m_sde(eta 0)", by_name("dpm++2m_sde"), karras64, kSteps), 2.0,
              0.2);
}

TEST(Convergence, LmsIsHigherOrder) {
  // order-4 linear multistep, started with lower orders
  const double order = fitted_order("lms karras", by_name("lms"), karras64, kSteps);
  EXPECT_GT(order, 3.0);
  EXPECT_LT(order, 4.6);
}

TEST(Convergence, UniPCPredictorCorrectorGainsAnOrder) {
  // UniP-p with the UniC corrector is of order p + 1: the default (bh2, p = 2) is third order.
  EXPECT_NEAR(fitted_order("unipc karras", by_name("unipc"), karras64, kSteps), 3.0, 0.3);
  EXPECT_NEAR(fitted_order("unipc exponential", by_name("unipc"), exponential64, kSteps), 3.0, 0.3);
  auto unipc = [](UniPCOptions o) -> SamplerRun {
    return [o](const torch::Tensor& x, const torch::Tensor& sigmas) {
      return sample_unipc(analytic_denoiser, x, sigmas, o);
    };
  };
  UniPCOptions o;
  o.bh2 = false;
  EXPECT_NEAR(fitted_order("unipc bh1", unipc(o), exponential64, kSteps), 3.0, 0.3);
  o.order = 1;
  EXPECT_NEAR(fitted_order("unipc order 1", unipc(o), exponential64, kSteps), 2.0, 0.2);
  // Order 3 needs lower_order_final off: otherwise the last step is a first-order predictor
  // that nothing corrects, whose O(h^2) local error then dominates.
  o.order = 3;
  o.lower_order_final = false;
  EXPECT_GT(fitted_order("unipc order 3", unipc(o), exponential64, {32, 64, 128, 256}), 3.4);
  o.lower_order_final = true;
  EXPECT_NEAR(fitted_order("unipc order 3 lof", unipc(o), exponential64, {64, 128, 256, 512}), 2.0,
              0.4);
}

// DDIM and PLMS on CompVis' timesteps; steps dividing 1000 so that the timesteps are uniform.
double compvis_order(const std::string& name, const std::vector<int>& steps) {
  const auto acp = DiscreteSchedule::scaled_linear().alphas_cumprod().to(torch::kDouble);
  const auto x_T = start_noise();
  std::vector<double> errs;
  std::printf("  %-22s", name.c_str());
  for (int n : steps) {
    NoiseSource none;
    auto out = run_timestep_sampler(name, analytic_eps_model(acp), x_T, acp, n, none);
    errs.push_back(max_abs_diff(out, x_T) / x_T.abs().max().item<double>());
    std::printf(" n=%d %.2e", n, errs.back());
  }
  const double order = -log_slope(steps, errs);
  std::printf("  order %.2f\n", order);
  return order;
}

TEST(Convergence, DdimIsFirstOrder) {
  EXPECT_NEAR(compvis_order("ddim", {20, 40, 100, 200}), 1.0, 0.15);
}

TEST(Convergence, PlmsIsFarAheadOfDdim) {
  // PLMS combines the eps of 4 uniformly spaced timesteps (Adams-Bashforth 4 after a pseudo
  // improved Euler start) into DDIM steps; it has no clean order on CompVis' timesteps: its last
  // step, from t = 1 to t = 0, is shorter than the spacing the combination assumes, which leaves
  // a first-order term with a small constant (the error changes sign near 110 steps). Over
  // 10-50 steps it falls faster than first order and stays far below DDIM.
  const std::vector<int> steps = {10, 20, 25, 40, 50};
  EXPECT_GT(compvis_order("plms", steps), 1.4);
  const auto acp = DiscreteSchedule::scaled_linear().alphas_cumprod().to(torch::kDouble);
  const auto x_T = start_noise();
  for (int n : {10, 20, 50, 100, 200}) {
    auto err = [&](const char* name) {
      return max_abs_diff(run_timestep_sampler(name, analytic_eps_model(acp), x_T, acp, n, {}),
                          x_T);
    };
    EXPECT_LT(err("plms"), 0.1 * err("ddim")) << n;
  }
}

}  // namespace
}  // namespace sdgen::test
