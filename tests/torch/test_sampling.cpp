// Schedules against schedules.json, samplers against the recorded k-diffusion trajectories,
// and the CPU generator against torch.manual_seed + torch.randn.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "sdgen/sampling/samplers.h"
#include "sdgen/sampling/schedule.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

const nlohmann::json& schedules_json() {
  static nlohmann::json j = [] {
    std::ifstream in(ref("schedules.json"));
    return nlohmann::json::parse(in);
  }();
  return j;
}

torch::Tensor json_f32(const nlohmann::json& a) {
  std::vector<float> v;
  for (const auto& x : a) v.push_back(static_cast<float>(x.get<double>()));
  return torch::tensor(v);
}

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  auto da = a.to(torch::kDouble), db = b.to(torch::kDouble);
  return ((da - db).abs() / db.abs().clamp_min(1e-30)).max().item<double>();
}

TEST(Schedule, AlphasCumprodAndSigmasExact) {
  const auto s = DiscreteSchedule::scaled_linear();
  const auto& j = schedules_json();
  EXPECT_TRUE(torch::equal(s.alphas_cumprod(), json_f32(j["alphas_cumprod"])));
  EXPECT_TRUE(torch::equal(s.sigmas(), json_f32(j["sigmas"])));
  EXPECT_TRUE(torch::equal(s.log_sigmas(), json_f32(j["log_sigmas"])));
  EXPECT_EQ(s.sigma_min().item<float>(), static_cast<float>(j["sigma_min"].get<double>()));
  EXPECT_EQ(s.sigma_max().item<float>(), static_cast<float>(j["sigma_max"].get<double>()));
}

TEST(Schedule, SigmaSchedulesMatchKDiffusion) {
  const auto s = DiscreteSchedule::scaled_linear();
  int checked = 0;
  for (const auto& g : schedules_json()["get_sigmas"]) {
    const auto kind = g["kind"].get<std::string>();
    const int n = g["n"].get<int>();
    auto got = make_sigmas(kind, s, n);
    auto want = json_f32(g["sigmas"]);
    ASSERT_EQ(got.size(0), n + 1) << kind;
    EXPECT_EQ(got[n].item<float>(), 0.f) << kind;
    EXPECT_LT(max_rel_diff(got.narrow(0, 0, n), want.narrow(0, 0, n)), 1e-6) << kind << " " << n;
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(Schedule, SigmaToTAndBack) {
  const auto s = DiscreteSchedule::scaled_linear();
  const auto& j = schedules_json();
  auto t = s.sigma_to_t(json_f32(j["sigma_to_t"]["sigma"]));
  EXPECT_LT(max_abs_diff(t, json_f32(j["sigma_to_t"]["t"])), 1e-3);
  auto sigma = s.t_to_sigma(json_f32(j["t_to_sigma"]["t"]));
  EXPECT_LT(max_rel_diff(sigma, json_f32(j["t_to_sigma"]["sigma"])), 1e-6);
}

TEST(Schedule, UnknownSchedulerListsValidNames) {
  const auto s = DiscreteSchedule::scaled_linear();
  try {
    make_sigmas("linear", s, 10);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("discrete, karras, exponential"), std::string::npos);
  }
}

// The analytic denoiser of unit-Gaussian data used by samplers_io.
torch::Tensor analytic(const torch::Tensor& x, const torch::Tensor& sigma) {
  return x / (1 + sigma.pow(2)).view({-1, 1, 1, 1});
}

struct Recorder {
  std::vector<torch::Tensor> sigmas, xs;
  Denoiser wrap() {
    return [this](const torch::Tensor& x, const torch::Tensor& sigma) {
      sigmas.push_back(sigma.clone());
      xs.push_back(x.clone());
      return analytic(x, sigma);
    };
  }
};

void check_run(const std::string& sampler, const std::string& ref_name, const std::string& sched) {
  const std::string f = "samplers_io.safetensors";
  const std::string run = ref_name + "." + sched;
  auto sigmas = rt(f, "sigmas." + sched);
  auto x = rt(f, "x_T." + sched).clone();
  Recorder rec;
  int draws = 0;
  NoiseSource noise = [&](const torch::Tensor&, double, double) {
    return rt(f, run + ".noise")[draws++];
  };
  std::vector<torch::Tensor> steps;
  auto out = run_sampler(sampler, rec.wrap(), x, sigmas, noise, {},
                         [&](int, int, const torch::Tensor& xi) { steps.push_back(xi.clone()); });
  EXPECT_LT(max_abs_diff(out, rt(f, run + ".x_final")), 5e-5) << run;
  const auto& calls = rt(f, run + ".model_sigma");
  ASSERT_EQ(static_cast<int64_t>(rec.sigmas.size()), calls.size(0)) << run;
  for (size_t i = 0; i < rec.sigmas.size(); ++i) {
    EXPECT_LT(max_abs_diff(rec.sigmas[i], calls[i]), 1e-6) << run << " call " << i;
    EXPECT_LT(max_abs_diff(rec.xs[i], rt(f, run + ".model_x")[i]), 5e-5) << run << " call " << i;
  }
  const auto& x_steps = rt(f, run + ".x_steps");
  ASSERT_EQ(static_cast<int64_t>(steps.size()) + 1, x_steps.size(0));
  for (size_t i = 0; i < steps.size(); ++i)
    EXPECT_LT(max_abs_diff(steps[i], x_steps[i]), 5e-5) << run << " step " << i;
  if (ref_tensors(f).count(run + ".noise")) {
    EXPECT_EQ(draws, rt(f, run + ".noise").size(0)) << run;
  } else {
    EXPECT_EQ(draws, 0) << run;
  }
}

TEST(Samplers, EulerMatchesKDiffusion) {
  check_run("euler", "euler", "discrete");
  check_run("euler", "euler", "karras");
}

TEST(Samplers, EulerAncestralMatchesKDiffusionWithReplayedNoise) {
  check_run("euler_a", "euler_ancestral", "discrete");
  check_run("euler_a", "euler_ancestral", "karras");
}

TEST(Samplers, UnknownSamplerListsValidNames) {
  try {
    sampler_info("k_euler");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("euler, euler_a"), std::string::npos);
  }
}

TEST(Random, CpuGeneratorMatchesTorchManualSeed) {
  int checked = 0;
  for (const auto& [name, want] : ref_tensors("torch_randn.safetensors")) {
    // seed<S>.n<N> or seed<S>.shape_1x4x8x8
    const auto dot = name.find('.');
    const uint64_t seed = std::stoull(name.substr(4, dot - 4));
    auto gen = at::detail::createCPUGenerator(seed);
    auto got = torch::randn(want.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat));
    EXPECT_TRUE(torch::equal(got, want)) << name << " max diff " << max_abs_diff(got, want);
    ++checked;
  }
  EXPECT_EQ(checked, 25);
}

}  // namespace
}  // namespace sdgen::test
