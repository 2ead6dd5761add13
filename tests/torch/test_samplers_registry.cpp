// The sampler and scheduler registry: names, A1111 labels and aliases, option checks, the
// infotext fields, the sgm_uniform / simple schedules, and every sampler end to end on the
// analytic denoiser over every schedule.
#include <gtest/gtest.h>

#include <cmath>

#include "sampler_test_util.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/sampling/schedule.h"

namespace sdgen::test {
namespace {

TEST(SamplerRegistry, AllSamplersListedInOrder) {
  std::vector<std::string> names;
  for (const auto& s : samplers()) names.push_back(s.name);
  const std::vector<std::string> want = {"euler",     "euler_a", "heun",        "dpm2", "dpm2_a",
                                         "dpm++2s_a", "dpm++2m", "dpm++2m_sde", "lms",  "ddim",
                                         "plms",      "unipc",   "lcm"};
  EXPECT_EQ(names, want);
  for (const auto& s : samplers()) {
    EXPECT_FALSE(s.a1111_label.empty()) << s.name;
    EXPECT_FALSE(s.description.empty()) << s.name;
  }
  EXPECT_EQ(sampler_info("euler_a").a1111_label, "Euler a");
  EXPECT_EQ(sampler_info("dpm++2m").a1111_label, "DPM++ 2M");
  EXPECT_EQ(sampler_info("dpm++2m_sde").a1111_label, "DPM++ 2M SDE");
  EXPECT_TRUE(sampler_info("dpm++2m_sde").brownian_noise);
  EXPECT_TRUE(sampler_info("lcm").ancestral);
  EXPECT_FALSE(sampler_info("lcm").takes_eta);
}

TEST(SamplerRegistry, UnknownNameListsEveryValidOne) {
  try {
    sampler_info("Euler a");  // a label, not a name: apply_sampler_alias maps those
    FAIL();
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    for (const auto& s : samplers()) EXPECT_NE(msg.find(s.name), std::string::npos) << s.name;
  }
}

TEST(SamplerRegistry, EffectiveEtaAndValidation) {
  SamplerOptions unset, half;
  half.eta = 0.5;
  EXPECT_EQ(effective_eta(sampler_info("euler_a"), unset), 1.0);
  EXPECT_EQ(effective_eta(sampler_info("dpm++2m_sde"), unset), 1.0);
  EXPECT_EQ(effective_eta(sampler_info("ddim"), unset), 0.0);
  EXPECT_EQ(effective_eta(sampler_info("dpm2_a"), half), 0.5);
  EXPECT_NO_THROW(validate_sampler("euler_a", 20, half));
  EXPECT_NO_THROW(validate_sampler("ddim", 20, half));
  EXPECT_THROW(validate_sampler("euler", 20, half), std::invalid_argument);
  EXPECT_THROW(validate_sampler("lcm", 20, half), std::invalid_argument);
  SamplerOptions negative;
  negative.eta = -1;
  EXPECT_THROW(validate_sampler("euler_a", 20, negative), std::invalid_argument);
  EXPECT_THROW(validate_sampler("nope", 20, unset), std::invalid_argument);
}

TEST(SamplerAliases, A1111LabelsSetSamplerAndSchedule) {
  struct Case {
    std::string given, sampler, scheduler;
  };
  const Case cases[] = {
      {"Euler a", "euler_a", "discrete"},
      {"DPM++ 2M Karras", "dpm++2m", "karras"},
      {"dpm++ 2m karras", "dpm++2m", "karras"},
      {"DPM++ 2M", "dpm++2m", "discrete"},
      {"DPM++ 2M SDE Karras", "dpm++2m_sde", "karras"},
      {"DPM++ 2M SDE Exponential", "dpm++2m_sde", "exponential"},
      {"DPM2 a Karras", "dpm2_a", "karras"},
      {"DPM++ 2S a", "dpm++2s_a", "discrete"},
      {"LMS Karras", "lms", "karras"},
      {"DDIM", "ddim", "discrete"},
      {"PLMS", "plms", "discrete"},
      {"UniPC", "unipc", "discrete"},
      {"LCM", "lcm", "discrete"},
      {"Heun", "heun", "discrete"},
      {"k_dpmpp_2m_ka", "dpm++2m", "karras"},
      {"euler_a", "euler_a", "discrete"},
  };
  for (const auto& c : cases) {
    std::string sampler = c.given, scheduler = "discrete";
    apply_sampler_alias(sampler, scheduler, false);
    EXPECT_EQ(sampler, c.sampler) << c.given;
    EXPECT_EQ(scheduler, c.scheduler) << c.given;
    EXPECT_NO_THROW(sampler_info(sampler)) << c.given;
  }
  // every alias names a real sampler and scheduler
  const auto s = DiscreteSchedule::scaled_linear();
  for (const auto& a : sampler_aliases()) {
    EXPECT_NO_THROW(sampler_info(a.sampler)) << a.label;
    if (!a.scheduler.empty()) {
      EXPECT_NO_THROW(make_sigmas(a.scheduler, s, 3)) << a.label;
    }
  }
}

TEST(SamplerAliases, ExplicitSchedulerAgreesOrIsAnError) {
  // a label without a schedule leaves an explicit scheduler alone
  std::string sampler = "Euler a", scheduler = "karras";
  apply_sampler_alias(sampler, scheduler, true);
  EXPECT_EQ(scheduler, "karras");
  // the same schedule twice is fine
  sampler = "DPM++ 2M Karras";
  apply_sampler_alias(sampler, scheduler, true);
  EXPECT_EQ(sampler, "dpm++2m");
  // a contradiction is reported
  sampler = "DPM++ 2M Karras";
  scheduler = "exponential";
  EXPECT_THROW(apply_sampler_alias(sampler, scheduler, true), std::invalid_argument);
  // not explicit (the CLI default): the label's schedule wins
  apply_sampler_alias(sampler, scheduler, false);
  EXPECT_EQ(scheduler, "karras");
  // unknown names pass through for sampler_info to report
  sampler = "DPM++ 9Z";
  apply_sampler_alias(sampler, scheduler, false);
  EXPECT_EQ(sampler, "DPM++ 9Z");
}

TEST(SamplerInfotext, ScheduleTypeAndEtaAsA1111) {
  EXPECT_EQ(a1111_schedule_type("euler", "discrete"), "");
  EXPECT_EQ(a1111_schedule_type("euler_a", "karras"), "Karras");
  EXPECT_EQ(a1111_schedule_type("dpm++2m", "karras"), "Karras");
  // A1111's "Automatic" is Karras for DPM++ 2M, so discrete must be spelled out
  EXPECT_EQ(a1111_schedule_type("dpm++2m", "discrete"), "Uniform");
  EXPECT_EQ(a1111_schedule_type("dpm++2m_sde", "exponential"), "Exponential");
  EXPECT_EQ(a1111_schedule_type("lcm", "sgm_uniform"), "SGM Uniform");
  EXPECT_EQ(a1111_schedule_type("euler", "simple"), "Simple");
  EXPECT_EQ(a1111_schedule_type("ddim", "karras"), "");  // own timesteps

  SamplerOptions unset, half, zero;
  half.eta = 0.5;
  zero.eta = 0;
  EXPECT_EQ(a1111_eta_field("euler_a", unset).first, "");
  EXPECT_EQ(a1111_eta_field("euler_a", half), (std::pair<std::string, double>{"Eta", 0.5}));
  EXPECT_EQ(a1111_eta_field("dpm++2m_sde", zero).first, "Eta");
  EXPECT_EQ(a1111_eta_field("ddim", zero).first, "");
  EXPECT_EQ(a1111_eta_field("ddim", half).first, "Eta DDIM");
  EXPECT_EQ(a1111_eta_field("euler", half).first, "");

  GenerationParams p;
  p.prompt = "a fox";
  p.steps = 20;
  p.sampler = "dpm++2m";
  p.scheduler = "karras";
  p.seed = 1;
  p.width = p.height = 512;
  const auto text = format_infotext(make_infotext(p, {"m", "", ""}));
  EXPECT_NE(text.find("Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7,"),
            std::string::npos)
      << text;
  p.sampler = "ddim";
  p.sampler_options.eta = 0.25;
  const auto ddim = format_infotext(make_infotext(p, {"m", "", ""}));
  EXPECT_NE(ddim.find("Sampler: DDIM, CFG scale"), std::string::npos) << ddim;
  EXPECT_NE(ddim.find("Eta DDIM: 0.25"), std::string::npos) << ddim;
}

TEST(Schedules, SgmUniformAndSimpleAsTheWebuis) {
  const auto s = DiscreteSchedule::scaled_linear();
  for (int n : {1, 4, 10, 30}) {
    // sgm_uniform: t = linspace(999, 0, n + 1)[:-1], sigma = t_to_sigma(t)
    auto sgm = make_sigmas("sgm_uniform", s, n);
    ASSERT_EQ(sgm.size(0), n + 1);
    EXPECT_EQ(sgm[n].item<float>(), 0.f);
    for (int i = 0; i < n; ++i) {
      const double t = 999.0 - 999.0 * i / n;
      const double want = s.t_to_sigma(torch::tensor({static_cast<float>(t)})).item<float>();
      EXPECT_NEAR(sgm[i].item<float>(), want, 1e-6 * want) << n << " " << i;
    }
    EXPECT_NEAR(sgm[0].item<float>(), s.sigma_max().item<float>(), 1e-5);
    // simple: sigmas[999 - int(i * 1000 / n)]
    auto simple = make_sigmas("simple", s, n);
    ASSERT_EQ(simple.size(0), n + 1);
    EXPECT_EQ(simple[n].item<float>(), 0.f);
    for (int i = 0; i < n; ++i)
      EXPECT_EQ(simple[i].item<float>(),
                s.sigmas()[999 - static_cast<int>(i * (1000.0 / n))].item<float>())
          << n << " " << i;
  }
  // every schedule: n + 1 values, strictly decreasing, ending with 0
  for (const auto& info : schedulers()) {
    auto sig = make_sigmas(info.name, s, 12);
    ASSERT_EQ(sig.size(0), 13) << info.name;
    EXPECT_EQ(sig[12].item<float>(), 0.f) << info.name;
    EXPECT_TRUE((sig.narrow(0, 0, 12) > sig.narrow(0, 1, 12)).all().item<bool>()) << info.name;
  }
  try {
    make_sigmas("linear", s, 10);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("discrete, karras, exponential, sgm_uniform, simple"),
              std::string::npos);
  }
}

// Every k-diffusion-style sampler through run_sampler on float32 schedules from make_sigmas:
// finite, the right shape, and (deterministic ones) near the exact ODE solution at 30 steps.
TEST(SamplerRegistry, EverySamplerRunsOnEverySchedule) {
  const auto s = DiscreteSchedule::scaled_linear();
  auto gen = at::detail::createCPUGenerator(3);
  auto noise = torch::randn({1, 4, 8, 8}, gen, torch::TensorOptions().dtype(torch::kFloat));
  for (const auto& info : samplers()) {
    if (info.unit_noise_timesteps) continue;
    for (const auto& sched : schedulers()) {
      auto sigmas = make_sigmas(sched.name, s, 30);
      auto x = noise * sigmas[0];
      auto ng = at::detail::createCPUGenerator(4);
      int calls = 0;
      Denoiser counting = [&](const torch::Tensor& xi, const torch::Tensor& sigma) {
        ++calls;
        return analytic_denoiser(xi, sigma);
      };
      auto out = run_sampler(info.name, counting, x, sigmas, make_noise_source(info, ng, sigmas));
      ASSERT_EQ(out.sizes(), x.sizes()) << info.name;
      EXPECT_TRUE(torch::isfinite(out).all().item<bool>()) << info.name << " " << sched.name;
      EXPECT_GE(calls, 30) << info.name;
      if (!info.ancestral) {
        auto want = exact_ode(x, sigmas[0].item<double>(), 0.0);
        EXPECT_LT(max_abs_diff(out, want), 0.15 * want.abs().max().item<double>())
            << info.name << " " << sched.name;
      }
    }
  }
}

TEST(LinearMultistep, CoefficientsAreExactIntegrals) {
  const std::vector<double> t = {10, 9, 8, 7, 6, 5.5};
  // order 1: the step itself
  EXPECT_DOUBLE_EQ(linear_multistep_coeff(1, t, 0, 0), -1.0);
  // uniform steps: Adams-Bashforth 2 and 4
  EXPECT_NEAR(linear_multistep_coeff(2, t, 1, 0), -1.5, 1e-14);
  EXPECT_NEAR(linear_multistep_coeff(2, t, 1, 1), 0.5, 1e-14);
  const double ab4[] = {55, -59, 37, -9};
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(linear_multistep_coeff(4, t, 3, j), -ab4[j] / 24, 1e-13);
  // non-uniform step: the coefficients still integrate constants and lines exactly
  double sum = 0, first = 0;
  for (int j = 0; j < 4; ++j) {
    const double c = linear_multistep_coeff(4, t, 4, j);
    sum += c;
    first += c * t[4 - j];
  }
  EXPECT_NEAR(sum, t[5] - t[4], 1e-14);
  EXPECT_NEAR(first, (t[5] * t[5] - t[4] * t[4]) / 2, 1e-13);
  EXPECT_THROW(linear_multistep_coeff(3, t, 1, 0), std::invalid_argument);
}

}  // namespace
}  // namespace sdgen::test
