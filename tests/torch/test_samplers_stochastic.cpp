// Noise-adding samplers, tested by their statistics on unit-Gaussian data (the analytic
// denoiser is exact there, so a sampler of the reverse SDE must end with N(0, 1) samples), and
// the Brownian tree behind dpm++2m_sde.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "sampler_test_util.h"
#include "sdgen/sampling/brownian_tree.h"
#include "sdgen/sampling/schedule.h"

namespace sdgen::test {
namespace {

const std::vector<int64_t> kShape = {1, 4, 64, 64};  // 16384 samples per run

struct Moments {
  double mean, var;
};

Moments moments(const torch::Tensor& x) {
  auto d = x.to(torch::kDouble);
  return {d.mean().item<double>(), d.var(/*unbiased=*/false).item<double>()};
}

double correlation(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = a.to(torch::kDouble).flatten(), y = b.to(torch::kDouble).flatten();
  x = x - x.mean();
  y = y - y.mean();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

// One run of `name` from the exact marginal at sigma_max (x_T ~ N(0, 1 + sigma_max^2)), with the
// pipeline's noise source for that sampler, seeded with `seed`.
torch::Tensor run_from_marginal(const std::string& name, const std::string& schedule, int steps,
                                uint64_t seed, torch::Tensor* x_T_out = nullptr,
                                SamplerOptions o = {}) {
  const auto sigmas = make_sigmas(schedule, DiscreteSchedule::scaled_linear(), steps);
  auto gen = at::detail::createCPUGenerator(seed);
  auto noise = torch::randn(kShape, gen, torch::TensorOptions().dtype(torch::kFloat));
  const double s0 = sigmas[0].item<double>();
  auto x_T = noise * std::sqrt(1 + s0 * s0);
  if (x_T_out) *x_T_out = x_T;
  return run_sampler(name, analytic_denoiser, x_T, sigmas,
                     make_noise_source(sampler_info(name), gen, sigmas), o);
}

TEST(Stochastic, SdeSamplersEndWithTheDataDistribution) {
  for (const char* name : {"euler_a", "dpm2_a", "dpm++2s_a", "dpm++2m_sde"}) {
    double deficit[2];
    int k = 0;
    for (int steps : {30, 100}) {
      torch::Tensor x_T;
      auto out = run_from_marginal(name, "karras", steps, 100 + steps, &x_T);
      const auto m = moments(out);
      const double corr = correlation(out, x_T);
      std::printf("  %-12s %3d steps: mean %+.4f var %.4f corr(x_T) %.3f\n", name, steps, m.mean,
                  m.var, corr);
      deficit[k++] = 1 - m.var;
      // sampling error of the mean and variance over 16384 samples: ~0.008 and ~0.011
      EXPECT_LT(std::abs(m.mean), 0.04) << name << " " << steps;
      // fresh noise all the way down forgets most of the start (an ODE sampler keeps corr 1)
      EXPECT_LT(corr, 0.5) << name << " " << steps;
      if (std::string(name) != "euler_a") {
        EXPECT_NEAR(m.var, 1.0, steps == 30 ? 0.06 : 0.04) << name << " " << steps;
      }
    }
    if (std::string(name) == "euler_a") {
      // Euler ancestral is first order in distribution too: it loses variance (0.2 at 30 Karras
      // steps on this data), and the loss shrinks like 1 / steps
      EXPECT_GT(deficit[0], 0.1);
      EXPECT_LT(deficit[1], 0.45 * deficit[0]);
      EXPECT_GT(deficit[1], 0);
    }
  }
}

TEST(Stochastic, EtaBlendsTowardsTheOde) {
  // less eta, less fresh noise: the result stays more correlated with the start
  double last = -1;
  for (double eta : {1.0, 0.5, 0.0}) {
    SamplerOptions o;
    o.eta = eta;
    torch::Tensor x_T;
    auto out = run_from_marginal("euler_a", "karras", 30, 7, &x_T, o);
    const double corr = correlation(out, x_T);
    EXPECT_GT(corr, last) << eta;
    last = corr;
  }
  EXPECT_GT(last, 0.999);
}

TEST(Stochastic, LcmVarianceFollowsItsRecursion) {
  // x_{i+1} = D(x_i, s_i) + s_{i+1} n: Var_{i+1} = Var_i / (1 + s_i^2)^2 + s_{i+1}^2, and the
  // result D(x, s_last) has Var / (1 + s_last^2)^2 (the posterior mean, not a sample).
  for (const char* sched : {"sgm_uniform", "karras"}) {
    const int steps = 4;
    const auto sigmas = make_sigmas(sched, DiscreteSchedule::scaled_linear(), steps);
    double var = 1 + std::pow(sigmas[0].item<double>(), 2);
    for (int i = 0; i < steps; ++i) {
      const double s = sigmas[i].item<double>(), next = sigmas[i + 1].item<double>();
      var = var / std::pow(1 + s * s, 2) + next * next;
    }
    auto out = run_from_marginal("lcm", sched, steps, 11);
    const auto m = moments(out);
    EXPECT_NEAR(m.var, var, 0.04 * var) << sched;
    EXPECT_LT(std::abs(m.mean), 0.04) << sched;
  }
  // data concentrated on one point: D is constant and LCM returns it whatever the noise
  auto c = torch::full({1, 4, 8, 8}, 0.25f);
  Denoiser point = [&](const torch::Tensor&, const torch::Tensor&) { return c; };
  auto sigmas = make_sigmas("sgm_uniform", DiscreteSchedule::scaled_linear(), 6);
  auto gen = at::detail::createCPUGenerator(1);
  auto out = sample_lcm(point, torch::randn({1, 4, 8, 8}, gen) * 14.6, sigmas,
                        make_noise_source(sampler_info("lcm"), gen, sigmas));
  EXPECT_TRUE(torch::equal(out, c));
}

TEST(Stochastic, DdimEtaOneApproachesUnitVariance) {
  // eta 1: the DDPM posterior step around the predicted x0; it loses variance at coarse steps
  // (about 0.1 at 50) and converges to the data's as the steps shrink
  const auto acp = DiscreteSchedule::scaled_linear().alphas_cumprod();
  double deficit[2];
  int k = 0;
  for (int steps : {50, 200}) {
    auto gen = at::detail::createCPUGenerator(21);
    auto x_T = torch::randn(kShape, gen, torch::TensorOptions().dtype(torch::kFloat));
    SamplerOptions o;
    o.eta = 1.0;
    auto sigmas = make_sigmas("discrete", DiscreteSchedule::scaled_linear(), steps);
    auto out = run_timestep_sampler("ddim", analytic_eps_model(acp.to(torch::kDouble)), x_T, acp,
                                    steps, make_noise_source(sampler_info("ddim"), gen, sigmas), o);
    const auto m = moments(out);
    std::printf("  ddim eta 1, %d steps: mean %+.4f var %.4f corr %.3f\n", steps, m.mean, m.var,
                correlation(out, x_T));
    deficit[k++] = 1 - m.var;
    EXPECT_LT(std::abs(m.mean), 0.04);
    EXPECT_LT(correlation(out, x_T), 0.5);
  }
  EXPECT_LT(deficit[0], 0.15);
  EXPECT_LT(std::abs(deficit[1]), 0.45 * deficit[0]);
}

// --- Brownian tree ---

TEST(BrownianTree, SameSeedSameValuesInAnyQueryOrder) {
  BrownianTree a(42, {2, 3}, 0.03, 14.6), b(42, {2, 3}, 0.03, 14.6), c(43, {2, 3}, 0.03, 14.6);
  const double ts[] = {0.5, 7.0, 0.031, 14.0, 3.3, 0.5};
  std::vector<torch::Tensor> fwd;
  for (double t : ts) fwd.push_back(a.w(t));
  for (int i = 5; i >= 0; --i) EXPECT_TRUE(torch::equal(b.w(ts[i]), fwd[i])) << ts[i];
  EXPECT_TRUE(torch::equal(fwd[0], fwd[5]));
  EXPECT_FALSE(torch::equal(c.w(7.0), fwd[1]));
  EXPECT_TRUE(torch::equal(a.w(0.03), torch::zeros({2, 3}, torch::kDouble)));
}

TEST(BrownianTree, IncrementsAreIndependentUnitNormals) {
  // the increments a dpm++2m_sde run asks for, over a 20-step Karras schedule
  const auto sigmas = make_sigmas("karras", DiscreteSchedule::scaled_linear(), 20);
  BrownianTree tree(7, kShape, sigmas[19].item<double>(), sigmas[0].item<double>());
  torch::Tensor prev;
  for (int i = 0; i < 19; ++i) {
    auto n = tree.normalized_increment(sigmas[i].item<double>(), sigmas[i + 1].item<double>());
    const auto m = moments(n);
    EXPECT_LT(std::abs(m.mean), 0.04) << i;
    EXPECT_NEAR(m.var, 1.0, 0.05) << i;
    if (prev.defined()) {
      EXPECT_LT(std::abs(correlation(n, prev)), 0.04) << i;
    }
    prev = n;
  }
  // W(t) - W(t0) has variance t - t0 at any t
  for (double t : {0.1, 1.0, 5.5, 13.0}) {
    const auto m = moments(tree.w(t));
    const double want = t - sigmas[19].item<double>();
    EXPECT_NEAR(m.var, want, 0.05 * want) << t;
  }
  // and the increment over [s, t] adds up from its pieces
  auto whole = tree.w(9.0) - tree.w(2.0);
  auto parts = (tree.w(9.0) - tree.w(4.0)) + (tree.w(4.0) - tree.w(2.0));
  EXPECT_LT(max_abs_diff(whole, parts), 1e-12);
}

TEST(BrownianTree, NoiseSourceIsSeededFromTheImageGenerator) {
  const auto& info = sampler_info("dpm++2m_sde");
  const auto sigmas = make_sigmas("karras", DiscreteSchedule::scaled_linear(), 10);
  auto like = torch::zeros({1, 4, 8, 8});
  auto g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5),
       g3 = at::detail::createCPUGenerator(6);
  auto a = make_noise_source(info, g1, sigmas)(like, 3.0, 2.0);
  auto b = make_noise_source(info, g2, sigmas)(like, 3.0, 2.0);
  auto c = make_noise_source(info, g3, sigmas)(like, 3.0, 2.0);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_EQ(a.scalar_type(), torch::kFloat);
  // it took exactly one draw (k-diffusion's torch.randint seed) from the generator
  auto g4 = at::detail::createCPUGenerator(5);
  torch::randint(0, INT64_MAX, {}, g4, torch::TensorOptions().dtype(torch::kLong));
  EXPECT_TRUE(torch::equal(torch::randn({3}, g1), torch::randn({3}, g4)));
}

TEST(NoiseSource, IndependentDrawsContinueTheImageGenerator) {
  // k-diffusion's default_noise_sampler: torch.randn_like(x) from the generator, in order
  const auto sigmas = make_sigmas("karras", DiscreteSchedule::scaled_linear(), 10);
  auto g = at::detail::createCPUGenerator(9), ref = at::detail::createCPUGenerator(9);
  auto source = make_noise_source(sampler_info("euler_a"), g, sigmas);
  auto like = torch::zeros({1, 4, 8, 8});
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(torch::equal(source(like, 1, 0.5), torch::randn({1, 4, 8, 8}, ref)));
}

}  // namespace
}  // namespace sdgen::test
