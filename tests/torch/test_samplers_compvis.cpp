// CompVis DDIM and PLMS: their uniform timesteps, DDIM as the Euler method in
// (x / sqrt(alpha), sigma), the eta noise term, PLMS' model calls and multistep combination, and
// the guided noise prediction the pipeline hands them.
#include <gtest/gtest.h>

#include <stb_image.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "sampler_test_util.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/sampling/schedule.h"
#include "sdgen/text/clip_tokenizer.h"

namespace sdgen::test {
namespace {

torch::Tensor acp64() {
  return DiscreteSchedule::scaled_linear().alphas_cumprod().to(torch::kDouble);
}

torch::Tensor unit_noise(int64_t seed, std::vector<int64_t> shape = {1, 4, 8, 8}) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kDouble));
}

TEST(CompVisTimesteps, UniformAsMakeDdimTimesteps) {
  const std::vector<int64_t> ten = {1, 101, 201, 301, 401, 501, 601, 701, 801, 901};
  EXPECT_EQ(compvis_timesteps(10), ten);
  // 1000 // 30 = 33: range(0, 1000, 33) has 31 entries, as CompVis runs it
  auto t30 = compvis_timesteps(30);
  ASSERT_EQ(t30.size(), 31u);
  EXPECT_EQ(t30[1], 34);
  EXPECT_EQ(t30.back(), 991);
  EXPECT_EQ(compvis_timesteps(7).size(), 8u);
  EXPECT_EQ(compvis_timesteps(1), std::vector<int64_t>{1});
  EXPECT_EQ(compvis_timesteps(500).back(), 999);
  // where range(0, 1000, 1000 // steps) + 1 reaches 1000 (CompVis: an index error), A1111's clip
  EXPECT_EQ(compvis_timesteps(3), (std::vector<int64_t>{1, 334, 667, 999}));
  EXPECT_EQ(compvis_timesteps(27).back(), 999);
  auto t1000 = compvis_timesteps(1000);
  ASSERT_EQ(t1000.size(), 1000u);
  EXPECT_EQ(t1000[998], 999);
  EXPECT_EQ(t1000[999], 999);
  EXPECT_THROW(compvis_timesteps(1001), std::invalid_argument);
  EXPECT_THROW(compvis_timesteps(0), std::invalid_argument);
  EXPECT_THROW(validate_sampler("ddim", 1001, {}), std::invalid_argument);
  EXPECT_NO_THROW(validate_sampler("plms", 1000, {}));
}

// DDIM (eta 0) is Euler's method on x / sqrt(a) = x_k over the sigmas of its timesteps, ending at
// sigma(t = 0): x_prev / sqrt(a_prev) = x / sqrt(a) + eps * (sigma_prev - sigma).
TEST(Ddim, IsEulerOnItsOwnSigmas) {
  const auto acp = acp64();
  const auto s = DiscreteSchedule::scaled_linear();
  for (int steps : {4, 10, 25}) {
    const auto ts = compvis_timesteps(steps);
    auto x_vp = unit_noise(steps);
    std::vector<int64_t> recorded;
    auto eps = analytic_eps_model(acp);
    EpsModel recording = [&](const torch::Tensor& x, const torch::Tensor& t) {
      recorded.push_back(static_cast<int64_t>(t[0].item<double>()));
      EXPECT_EQ(t[0].item<double>(), std::round(t[0].item<double>()));
      return eps(x, t);
    };
    auto ddim = run_timestep_sampler("ddim", recording, x_vp, acp, steps, {});
    ASSERT_EQ(recorded.size(), ts.size());
    for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(recorded[i], ts[ts.size() - 1 - i]);

    // the same path as k-diffusion Euler with the matching denoiser
    std::vector<double> sig;
    for (auto it = ts.rbegin(); it != ts.rend(); ++it) {
      const double a = s.alphas_cumprod()[*it].item<float>();
      sig.push_back(std::sqrt((1 - a) / a));
    }
    const double a0 = s.alphas_cumprod()[0].item<float>();
    sig.push_back(std::sqrt((1 - a0) / a0));
    auto sigmas = torch::tensor(sig, torch::kDouble);
    auto x_k = x_vp * std::sqrt(1 + sig[0] * sig[0]);
    auto euler =
        sample_euler(analytic_denoiser, x_k, sigmas) / std::sqrt(1 + sig.back() * sig.back());
    EXPECT_LT(max_abs_diff(ddim, euler), 1e-6) << steps;
  }
}

TEST(Ddim, FromTheUnitNoiseFloat32Arithmetic) {
  // float32 latent: the constants are float32 as in CompVis; one step by hand
  const auto s = DiscreteSchedule::scaled_linear();
  auto x = unit_noise(3).to(torch::kFloat);
  auto e = unit_noise(4).to(torch::kFloat);
  EpsModel constant = [&](const torch::Tensor&, const torch::Tensor&) { return e; };
  auto out = run_timestep_sampler("ddim", constant, x, s.alphas_cumprod(), 1, {});
  const float a_t = s.alphas_cumprod()[1].item<float>(),
              a_prev = s.alphas_cumprod()[0].item<float>();
  auto pred_x0 = (x - std::sqrt(1.0f - a_t) * e) / std::sqrt(a_t);
  auto want = std::sqrt(a_prev) * pred_x0 + std::sqrt(1.0f - a_prev) * e;
  EXPECT_LT(max_abs_diff(out, want), 1e-6);
}

TEST(Ddim, EtaAddsTheDdpmPosteriorNoise) {
  const auto acp = acp64();
  const auto s = DiscreteSchedule::scaled_linear();
  auto x = unit_noise(5), e = unit_noise(6), n = unit_noise(8);
  EpsModel constant = [&](const torch::Tensor&, const torch::Tensor&) { return e; };
  int draws = 0;
  NoiseSource noise = [&](const torch::Tensor&, double, double) {
    ++draws;
    return n;
  };
  SamplerOptions o;
  o.eta = 0.7;
  // two steps: timesteps 1, 501; the second step (t = 1 -> 0) checked by hand
  auto out = run_timestep_sampler("ddim", constant, x, acp, 2, noise, o);
  EXPECT_EQ(draws, 2);
  const double a501 = s.alphas_cumprod()[501].item<float>(),
               a1 = s.alphas_cumprod()[1].item<float>(), a0 = s.alphas_cumprod()[0].item<float>();
  auto step = [&](const torch::Tensor& xt, double a_t, double a_prev) {
    const double sigma =
        static_cast<float>(0.7 * std::sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)));
    auto pred = (xt - std::sqrt(1 - a_t) * e) / std::sqrt(a_t);
    return std::sqrt(a_prev) * pred + std::sqrt(1 - a_prev - sigma * sigma) * e + sigma * n;
  };
  EXPECT_LT(max_abs_diff(out, step(step(x, a501, a1), a1, a0)), 1e-6);
  EXPECT_EQ(a1111_eta_field("ddim", o).first, "Eta DDIM");
}

TEST(Plms, ModelCallsAndTimesteps) {
  const auto acp = acp64();
  std::vector<int64_t> ts;
  auto eps = analytic_eps_model(acp);
  EpsModel recording = [&](const torch::Tensor& x, const torch::Tensor& t) {
    ts.push_back(static_cast<int64_t>(t[0].item<double>()));
    return eps(x, t);
  };
  run_timestep_sampler("plms", recording, unit_noise(1), acp, 10, {});
  // the first step evaluates at its own and the next timestep (pseudo improved Euler)
  const std::vector<int64_t> want = {901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1};
  EXPECT_EQ(ts, want);
  ts.clear();
  run_timestep_sampler("plms", recording, unit_noise(1), acp, 1, {});
  EXPECT_EQ(ts, (std::vector<int64_t>{1, 1}));
}

TEST(Plms, ConstantNoisePredictionGivesDdim) {
  // the multistep combinations have weights summing to 1, so a constant eps passes through
  const auto acp = acp64();
  auto e = unit_noise(11);
  EpsModel constant = [&](const torch::Tensor&, const torch::Tensor&) { return e; };
  for (int steps : {1, 2, 3, 4, 10}) {
    auto x = unit_noise(12);
    auto plms = run_timestep_sampler("plms", constant, x, acp, steps, {});
    auto ddim = run_timestep_sampler("ddim", constant, x, acp, steps, {});
    EXPECT_LT(max_abs_diff(plms, ddim), 1e-12) << steps;
  }
}

TEST(Plms, MultistepCombinationOfTheRecordedEps) {
  // eps that depends only on t: PLMS's e' is the fixed Adams-Bashforth combination of the eps
  // at the visited timesteps, applied as a DDIM step; checked through the AB4 step.
  const auto acp = acp64();
  auto base = unit_noise(13);
  EpsModel by_t = [&](const torch::Tensor&, const torch::Tensor& t) {
    return base * (1 + t[0].item<double>() / 1000.0);
  };
  auto e_at = [&](int64_t t) { return base * (1 + t / 1000.0); };
  auto x0 = unit_noise(14);
  auto ddim_step = [&](const torch::Tensor& x, const torch::Tensor& e, int64_t t, int64_t prev) {
    const double a = acp[t].item<double>(), ap = acp[prev].item<double>();
    const double af = static_cast<float>(a), apf = static_cast<float>(ap);
    return std::sqrt(apf) * ((x - std::sqrt(1 - af) * e) / std::sqrt(af)) + std::sqrt(1 - apf) * e;
  };
  // steps = 4: timesteps 1, 251, 501, 751
  auto x1 = ddim_step(x0, (e_at(751) + e_at(501)) / 2, 751, 501);
  auto x2 = ddim_step(x1, (3 * e_at(501) - e_at(751)) / 2, 501, 251);
  auto x3 = ddim_step(x2, (23 * e_at(251) - 16 * e_at(501) + 5 * e_at(751)) / 12, 251, 1);
  auto x4 =
      ddim_step(x3, (55 * e_at(1) - 59 * e_at(251) + 37 * e_at(501) - 9 * e_at(751)) / 24, 1, 0);
  auto out = run_timestep_sampler("plms", by_t, x0, acp, 4, {});
  EXPECT_LT(max_abs_diff(out, x4), 1e-6);
}

TEST(Plms, RefusesEta) {
  SamplerOptions o;
  o.eta = 0.5;
  EXPECT_THROW(validate_sampler("plms", 10, o), std::invalid_argument);
  EXPECT_THROW(
      run_timestep_sampler("plms", analytic_eps_model(acp64()), unit_noise(1), acp64(), 10, {}, o),
      std::invalid_argument);
}

TEST(CompVisDispatch, EachSamplerHasItsEntryPoint) {
  EXPECT_TRUE(sampler_info("ddim").unit_noise_timesteps);
  EXPECT_TRUE(sampler_info("plms").unit_noise_timesteps);
  EXPECT_THROW(run_sampler("ddim", analytic_denoiser, unit_noise(1), torch::ones({2}), {}),
               std::invalid_argument);
  EXPECT_THROW(
      run_timestep_sampler("euler", analytic_eps_model(acp64()), unit_noise(1), acp64(), 10, {}),
      std::invalid_argument);
}

Pipeline& tiny_pipeline() {
  static Pipeline p(tiny_sd1(),
                    ClipTokenizer::from_path(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz")),
                    torch::kCPU, torch::kFloat);
  return p;
}

// The pipeline's guided noise prediction: the raw UNet at integer t on the unit latent, CFG
// in eps space, and no uncond pass at cfg 1 (the tiny checkpoint, CPU float32).
TEST(GuidedEpsModel, CfgInEpsSpaceOnTheRawUNet) {
  torch::NoGradGuard g;
  auto& unet = tiny_sd1().unet;
  auto context = rt("unet_io.safetensors", "a.context");  // [2, 77, 32]: as uncond, cond
  auto uncond = context.narrow(0, 0, 1), cond = context.narrow(0, 1, 1);
  auto x = rt("unet_io.safetensors", "a.x").narrow(0, 0, 1);
  auto t = torch::full({1}, 981.0f);
  auto e_u = unet->forward(x, t, Conditioning(uncond)),
       e_c = unet->forward(x, t, Conditioning(cond));
  auto& p = tiny_pipeline();
  auto guided = guided_eps_model(p, cond, uncond, 7.0)(x, t);
  EXPECT_LT(max_abs_diff(guided, e_u + 7.0 * (e_c - e_u)), 1e-4);
  auto single = guided_eps_model(p, cond, uncond, 1.0)(x, t);
  EXPECT_LT(max_abs_diff(single, e_c), 1e-5);
}

// DDIM through the pipeline's eps model equals Euler through its denoiser over DDIM's sigmas
// (the same method in other variables), for eps and for v prediction (the eps model's v -> eps
// conversion against CompVisVDenoiser's); the tiny UNet serves for both.
TEST(GuidedEpsModel, DdimMatchesEulerThroughTheDenoiser) {
  torch::NoGradGuard g;
  auto& p = tiny_pipeline();
  auto cond = p.prompts().encode("a red fox in the snow", {1}).context;
  auto uncond = p.prompts().encode("", {1}).context;
  const auto& s = p.schedule();
  const int steps = 6;
  const auto ts = compvis_timesteps(steps);
  std::vector<float> sig;
  for (auto it = ts.rbegin(); it != ts.rend(); ++it) sig.push_back(s.sigmas()[*it].item<float>());
  sig.push_back(s.sigmas()[0].item<float>());
  auto sigmas = torch::tensor(sig);
  auto gen = at::detail::createCPUGenerator(77);
  auto noise = torch::randn({1, 4, 8, 8}, gen, torch::TensorOptions().dtype(torch::kFloat));
  for (const char* prediction : {"eps", "v"}) {
    auto ddim = run_timestep_sampler("ddim", guided_eps_model(p, cond, uncond, 5.0, prediction),
                                     noise, s.alphas_cumprod(), steps, {});
    auto x_k = noise * std::sqrt(1.0 + sig[0] * sig[0]);
    auto euler = sample_euler(guided_denoiser(p, cond, uncond, 5.0, prediction), x_k, sigmas) /
                 std::sqrt(1.0 + sig.back() * sig.back());
    EXPECT_LT(max_abs_diff(ddim, euler), 1e-4 * ddim.abs().max().item<double>()) << prediction;
  }
}

// The conformance case sampler_ddim_discrete through Pipeline::generate: within 1 of the
// CompVis DDIMSampler image on every channel of every pixel.
TEST(PipelineDdim, ReproducesTheCompVisImage) {
  const std::string dir = std::string(SDGEN_REFERENCE_DIR) + "/../conformance/";
  std::ifstream in(dir + "cases.json");
  ASSERT_TRUE(in) << dir;
  nlohmann::json c;
  for (const auto& k : nlohmann::json::parse(in))
    if (k["id"] == "sampler_ddim_discrete") c = k;
  ASSERT_FALSE(c.is_null());
  GenerationParams params;
  params.prompt = c["prompt"];
  params.negative_prompt = c["negative"];
  params.steps = c["steps"];
  params.cfg_scale = c["cfg"];
  params.sampler = c["sampler"];
  params.scheduler = c["scheduler"];
  params.seed = c["seed"];
  params.width = c["width"];
  params.height = c["height"];
  auto image = tiny_pipeline().generate(params);
  int w = 0, h = 0, ch = 0;
  unsigned char* want = stbi_load((dir + c["expected"].get<std::string>()).c_str(), &w, &h, &ch, 3);
  ASSERT_NE(want, nullptr);
  ASSERT_EQ(w, image.width);
  ASSERT_EQ(h, image.height);
  int max_diff = 0;
  for (size_t i = 0; i < image.rgb.size(); ++i)
    max_diff = std::max(max_diff, std::abs(int{image.rgb[i]} - int{want[i]}));
  stbi_image_free(want);
  EXPECT_LE(max_diff, 1);
}

}  // namespace
}  // namespace sdgen::test
