// Every k-diffusion trajectory of samplers_io.safetensors (8 samplers x discrete / karras),
// replayed through run_sampler with the recorded noise: x at every step, every denoiser call
// (sigma and x) and the result within 5e-5 (the reference README's tolerance), and the noise
// draws with their (sigma, sigma_next) arguments.
#include <gtest/gtest.h>

#include <cstdio>

#include "sampler_test_util.h"

namespace sdgen::test {
namespace {

struct Case {
  const char* sampler;  // --sampler name
  const char* ref;      // k-diffusion function suffix in the reference
};

const Case kCases[] = {
    {"euler", "euler"},
    {"euler_a", "euler_ancestral"},
    {"heun", "heun"},
    {"dpm2", "dpm_2"},
    {"dpm2_a", "dpm_2_ancestral"},
    {"dpm++2s_a", "dpmpp_2s_ancestral"},
    {"dpm++2m", "dpmpp_2m"},
    {"lms", "lms"},
};

class ReferenceTrajectory : public ::testing::TestWithParam<Case> {};

TEST_P(ReferenceTrajectory, MatchesKDiffusion) {
  const Case c = GetParam();
  for (const char* sched : {"discrete", "karras"}) {
    const auto e = check_reference_run(c.sampler, c.ref, sched);
    std::printf("  %-10s %-8s max |diff|: x_final %.2e  x_steps %.2e  model_x %.2e\n", c.sampler,
                sched, e.x_final, e.x_steps, e.model_x);
  }
}

INSTANTIATE_TEST_SUITE_P(Samplers, ReferenceTrajectory, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = i.param.ref;
                           return n;
                         });

// Driven through the A1111 label, the same sampler runs.
TEST(ReferenceTrajectoryAlias, LabelsResolveToTheSameSampler) {
  std::string sampler = "DPM++ 2M Karras", scheduler = "discrete";
  apply_sampler_alias(sampler, scheduler, false);
  EXPECT_EQ(sampler, "dpm++2m");
  EXPECT_EQ(scheduler, "karras");
  check_reference_run(sampler, "dpmpp_2m", scheduler);
}

}  // namespace
}  // namespace sdgen::test
