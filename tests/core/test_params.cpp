// The job-parameter schema: one description per parameter drives the command line, the
// prompt files, the --json records, the infotext and the validation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "sdgen/job/params.h"
#include "sdgen/job/prompt_file.h"

namespace sdgen {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(Params, EveryParameterIsDescribedOnce) {
  std::set<std::string> names, flags, a1111;
  for (const auto& s : param_specs()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    if (!s.cli.empty()) {
      EXPECT_TRUE(flags.insert(s.cli).second) << s.cli;
    }
    for (const auto& o : s.a1111) EXPECT_TRUE(a1111.insert(o).second) << o;
    EXPECT_TRUE(s.set_text && s.set_json && s.set_a1111 && s.check) << s.name;
    EXPECT_FALSE(s.help.empty()) << s.name;
  }
  EXPECT_EQ(jsonl_keys(),
            "prompt, negative_prompt, steps, sampler, scheduler, cfg_scale, seed, size, "
            "init_image, mask, strength, eta, clip_skip, emphasis, prediction, "
            "sdxl_original_size, sdxl_crop, sdxl_target_size, mask_blur, inpaint_fill, "
            "hires_scale, hires_size, hires, hires_steps, hires_strength, hires_upscaler, "
            "hires_sampler, hires_prompt, hires_negative_prompt, loras, batch_count, output");
  EXPECT_THROW(param_spec("colour"), std::logic_error);
}

TEST(Params, SeedsAreUnsigned64Bit) {
  JobParams j;
  const auto& seed = param_spec("seed");
  seed.set_text(j, "18446744073709551615");
  EXPECT_EQ(j.image.seed, UINT64_MAX);
  EXPECT_FALSE(j.random_seed);
  seed.set_text(j, "9223372036854775808");  // 2^63: no longer clamped to 2^63 - 1
  EXPECT_EQ(j.image.seed, 9223372036854775808ULL);
  seed.set_text(j, "-1");
  EXPECT_TRUE(j.random_seed);
  EXPECT_THAT(error_of([&] { seed.set_text(j, "18446744073709551616"); }),
              HasSubstr("from 0 to 18446744073709551615"));
  EXPECT_THAT(error_of([&] { seed.set_text(j, "-2"); }), HasSubstr("must be -1 (random)"));
  EXPECT_THAT(error_of([&] { seed.set_text(j, "+5"); }), HasSubstr("must be -1"));
  // jsonl takes the full range too
  seed.set_json(j, nlohmann::json::parse("18446744073709551615"));
  EXPECT_EQ(j.image.seed, UINT64_MAX);
}

TEST(Params, TextAndJsonValuesAreCheckedAlike) {
  JobParams j;
  EXPECT_THAT(error_of([&] { param_spec("steps").set_text(j, "0"); }),
              HasSubstr("between 1 and 10000, got 0"));
  EXPECT_THAT(error_of([&] { param_spec("steps").set_json(j, nlohmann::json(0)); }),
              HasSubstr("steps must be between 1 and 10000, got 0"));
  EXPECT_THAT(error_of([&] { param_spec("cfg_scale").set_json(j, nlohmann::json("7")); }),
              HasSubstr("'cfg_scale' must be a number, got string \"7\""));
  EXPECT_THAT(error_of([&] { param_spec("size").set_text(j, "0x0"); }),
              HasSubstr("at least 1 pixel"));
  EXPECT_THAT(error_of([&] { param_spec("scheduler").set_text(j, "linear"); }),
              HasSubstr("valid: discrete, karras"));
  EXPECT_THAT(error_of([&] { param_spec("output").set_text(j, "{colour}.png"); }),
              HasSubstr("colour"));
  param_spec("size").set_a1111(j, "height", "768");
  param_spec("size").set_a1111(j, "width", "512");
  EXPECT_EQ(j.image.width, 512);
  EXPECT_EQ(j.image.height, 768);
  param_spec("emphasis").set_text(j, "Original");  // A1111's name
  EXPECT_EQ(j.image.emphasis, "a1111");
}

TEST(Params, ValidationUsesTheModelsLimits) {
  GenerationParams p;
  p.width = 72;
  p.height = 64;
  ModelLimits limits;
  EXPECT_NO_THROW(validate_params(p, limits));
  limits.size_multiple = 16;  // a VAE with five levels
  EXPECT_THAT(error_of([&] { validate_params(p, limits); }),
              HasSubstr("multiples of 16, the VAE's downsampling factor (72 is not a multiple of "
                        "16); try 64x64"));
  p.width = 64;
  p.clip_skip = 3;
  limits.max_clip_skip = 2;
  EXPECT_THAT(error_of([&] { validate_params(p, limits); }),
              HasSubstr("clip skip must be between 1 and 2"));
  p.clip_skip = 1;
  p.sampler = "euler";
  p.sampler_options.eta = 0.5;
  EXPECT_THAT(error_of([&] { validate_params(p, limits); }), HasSubstr("--eta does not apply"));
  p.sampler_options.eta = std::numeric_limits<double>::quiet_NaN();
  p.sampler = "ddim";
  p.steps = 1001;
  EXPECT_THAT(error_of([&] { validate_params(p, limits); }), HasSubstr("1 to 1000 steps"));
}

TEST(Params, ResolveFillsTheNativeSizeAndWarns) {
  ModelLimits limits;
  limits.native_width = limits.native_height = 768;
  limits.clip_skip_warning = " is odd here";
  GenerationParams p;
  p.clip_skip = 2;
  std::vector<std::string> warnings;
  const auto r = resolve_params(p, limits, [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_EQ(r.width, 768);
  EXPECT_EQ(r.height, 768);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "clip skip 2 is odd here");
  p.width = 2048;
  p.height = 768;
  p.clip_skip = 1;
  warnings.clear();
  resolve_params(p, limits, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("far above the model's native 768x768"));
}

TEST(Params, SamplerLabelsSetTheScheduleUnlessTheUserChoseOne) {
  // the command line's --scheduler exponential, then lines that name samplers
  JobParams cli;
  param_spec("scheduler").set_text(cli, "exponential");
  std::istringstream in(
      "{\"prompt\": \"a\", \"sampler\": \"DPM++ 2M Karras\"}\n"
      "{\"prompt\": \"b\", \"sampler\": \"DPM++ 2M\"}\n"
      "{\"prompt\": \"c\"}\n"
      "{\"prompt\": \"d\", \"sampler\": \"DPM++ 2M Karras\", \"scheduler\": \"simple\"}\n");
  auto lines = parse_prompt_file(in, PromptFormat::Jsonl, "p.jsonl", cli);
  ASSERT_EQ(lines.size(), 4u);
  const ModelLimits limits;
  finish_job(lines[0].params, limits);  // the line's label decides its schedule
  EXPECT_EQ(lines[0].params.image.sampler, "dpm++2m");
  EXPECT_EQ(lines[0].params.image.scheduler, "karras");
  finish_job(lines[1].params, limits);  // a label without a schedule keeps the command line's
  EXPECT_EQ(lines[1].params.image.scheduler, "exponential");
  finish_job(lines[2].params, limits);
  EXPECT_EQ(lines[2].params.image.scheduler, "exponential");
  EXPECT_THAT(error_of([&] { finish_job(lines[3].params, limits); }),
              HasSubstr("contradicts --scheduler simple"));
}

TEST(Params, BatchableComparesWhatTheUNetBatchShares) {
  GenerationParams a, b;
  b.prompt = "other";
  b.seed = 9;
  b.clip_skip = 2;
  b.negative_prompt = "x";
  EXPECT_TRUE(batchable(a, b));
  for (const auto& change : std::vector<std::function<void(GenerationParams&)>>{
           [](GenerationParams& p) { p.steps = 31; }, [](GenerationParams& p) { p.width = 64; },
           [](GenerationParams& p) { p.sampler = "heun"; },
           [](GenerationParams& p) { p.scheduler = "karras"; },
           [](GenerationParams& p) { p.cfg_scale = 1; },
           [](GenerationParams& p) { p.prediction = "v"; },
           [](GenerationParams& p) { p.sampler_options.eta = 0.5; }}) {
    GenerationParams c = a;
    change(c);
    EXPECT_FALSE(batchable(a, c));
  }
}

TEST(Params, InfotextInA1111OrderWithTheModelAfterTheSize) {
  GenerationParams p;
  p.prompt = "a (fox)";
  p.negative_prompt = "blur";
  p.steps = 20;
  p.sampler = "ddim";
  p.sampler_options.eta = 0.3;
  p.cfg_scale = 4.5;
  p.seed = 18446744073709551615ULL;
  p.width = 64;
  p.height = 96;
  p.clip_skip = 2;
  p.emphasis = "none";
  p.prediction = "v";
  const auto text = format_infotext(make_infotext(p, {"tiny", "0123456789", "vae-ft"}));
  EXPECT_EQ(text,
            "a (fox)\nNegative prompt: blur\nSteps: 20, Sampler: DDIM, CFG scale: 4.5, Seed: "
            "18446744073709551615, Size: 64x96, Model hash: 0123456789, Model: tiny, VAE: vae-ft, "
            "Eta DDIM: 0.3, Clip skip: 2, Emphasis: None, Prediction: v, Version: sdgen 0.1.0");
  const auto j = params_json(p);
  EXPECT_EQ(j["seed"].get<uint64_t>(), 18446744073709551615ULL);
  EXPECT_EQ(j["size"], "64x96");
  EXPECT_EQ(j["cfg"], 4.5);
  EXPECT_EQ(j["eta"], 0.3);
  EXPECT_EQ(j["negative"], "blur");
  p.sampler = "euler";
  EXPECT_TRUE(params_json(p)["eta"].is_null());  // a sampler without noise
  EXPECT_EQ(sdgen_version(), "sdgen 0.1.0");
}

}  // namespace
}  // namespace sdgen
