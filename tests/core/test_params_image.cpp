// The img2img, inpainting and hires-fix parameters: their A1111 names, checks, infotext labels
// and sizes (A1111 processing.py), and paths of prompt-file lines taken relative to the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

std::string infotext_of(const GenerationParams& p) {
  return format_infotext(make_infotext(p, ModelStamp{}));
}

GenerationParams sized(int w, int h) {
  GenerationParams p;
  p.width = w;
  p.height = h;
  return p;
}

TEST(ParamsImage, ModeFollowsTheInputs) {
  GenerationParams p;
  EXPECT_EQ(p.mode(), Mode::kTxt2Img);
  p.init_image = "cat.png";
  EXPECT_EQ(p.mode(), Mode::kImg2Img);
  p.mask = "mask.png";
  EXPECT_EQ(p.mode(), Mode::kInpaint);
  EXPECT_STREQ(mode_name(p.mode()), "inpaint");
}

TEST(ParamsImage, HiresSizesAsA1111) {
  // scale: int(w * s) x int(h * s), in double
  auto p = sized(64, 64);
  p.hires = true;
  p.hires_scale = 2.0;
  auto s = hires_size(p);
  EXPECT_EQ(std::make_pair(s.width, s.height), std::make_pair(128, 128));
  p = sized(32, 64);
  p.hires = true;
  p.hires_scale = 1.5;
  s = hires_size(p);
  EXPECT_EQ(std::make_tuple(s.width, s.height, s.upscale_width), std::make_tuple(48, 96, 48));
  // one side given: the other keeps the aspect (integer division)
  p = sized(512, 768);
  p.hires = true;
  p.hires_width = 1000;
  s = hires_size(p);
  EXPECT_EQ(std::make_pair(s.upscale_width, s.upscale_height), std::make_pair(1000, 1500));
  EXPECT_EQ(std::make_pair(s.width, s.height), std::make_pair(1000, 1496));  // latent 125 x 187
  // both sides: upscale to cover 1024x768, then crop the latent (truncate_y = 256 // 8 = 32)
  p = sized(512, 512);
  p.hires = true;
  p.hires_width = 1024;
  p.hires_height = 768;
  s = hires_size(p);
  EXPECT_EQ(std::make_pair(s.upscale_width, s.upscale_height), std::make_pair(1024, 1024));
  EXPECT_EQ(std::make_tuple(s.crop_left, s.crop_top), std::make_tuple(0, 16));
  EXPECT_EQ(std::make_pair(s.width, s.height), std::make_pair(1024, 768));
}

TEST(ParamsImage, ChecksSayWhatIsWrong) {
  JobParams j;
  EXPECT_THAT(error_of([&] { param_spec("strength").set_text(j, "1.5"); }),
              HasSubstr("between 0 and 1"));
  EXPECT_THAT(error_of([&] { param_spec("hires_scale").set_text(j, "0.5"); }),
              HasSubstr("between 1 and 8"));
  EXPECT_THAT(error_of([&] { param_spec("hires_upscaler").set_text(j, "esrgan"); }),
              HasSubstr("latent | latent-antialiased"));
  EXPECT_THAT(error_of([&] { param_spec("inpaint_fill").set_text(j, "fill"); }),
              HasSubstr("\"fill\" is not supported"));
  EXPECT_THAT(error_of([&] { param_spec("mask_blur").set_text(j, "-1"); }),
              HasSubstr("between 0 and 64"));
  EXPECT_THAT(error_of([&] { param_spec("hires_size").set_text(j, "0x0"); }),
              HasSubstr("at least one side"));
  const ModelLimits limits;
  GenerationParams p = sized(64, 64);
  p.mask = "m.png";
  EXPECT_THAT(error_of([&] { validate_params(p, limits); }), HasSubstr("needs an init image"));
  p.init_image = "i.png";
  p.hires = true;
  EXPECT_THAT(error_of([&] { validate_params(p, limits); }),
              HasSubstr("second pass of text-to-image"));
  p = sized(512, 512);
  p.hires = true;
  p.hires_width = 256;
  p.hires_height = 256;
  EXPECT_THAT(error_of([&] { validate_params(p, limits); }), HasSubstr("at least as large"));
  p.hires_sampler = "ddim";
  p.hires_width = p.hires_height = 0;
  EXPECT_THAT(error_of([&] { validate_params(p, limits); }), HasSubstr("own timesteps"));
}

TEST(ParamsImage, InfotextLabelsAsA1111) {
  auto p = sized(64, 64);
  p.init_image = "cat.png";
  p.strength = 0.6;
  EXPECT_THAT(infotext_of(p), HasSubstr("Denoising strength: 0.6,"));
  EXPECT_THAT(infotext_of(p), ::testing::Not(HasSubstr("Mask blur")));
  p.mask = "m.png";
  p.mask_blur = 0;
  EXPECT_THAT(infotext_of(p), HasSubstr("Mask blur: 0,"));
  p = sized(32, 64);
  EXPECT_THAT(infotext_of(p), ::testing::Not(HasSubstr("Denoising strength")));
  p.hires = true;
  p.hires_scale = 1.5;
  p.hires_steps = 4;
  p.hires_strength = 0.6;
  p.hires_upscaler = "latent-nearest-exact";
  const auto text = infotext_of(p);
  for (const char* field : {"Size: 32x64,", "Denoising strength: 0.6,", "Hires upscale: 1.5,",
                            "Hires steps: 4,", "Hires upscaler: Latent (nearest-exact),"})
    EXPECT_THAT(text, HasSubstr(field));
  p.hires_scale = 2.0;
  p.hires_steps = 0;
  p.hires_prompt = "sharper";
  EXPECT_THAT(infotext_of(p), HasSubstr("Hires upscale: 2,"));
  EXPECT_THAT(infotext_of(p), ::testing::Not(HasSubstr("Hires steps")));
  EXPECT_THAT(infotext_of(p), HasSubstr("Hires prompt: sharper"));
  p.hires_width = 1024;
  p.hires_height = 768;
  EXPECT_THAT(infotext_of(p), HasSubstr("Hires resize: 1024x768,"));
}

TEST(ParamsImage, JsonRecordsCarryTheInputs) {
  auto p = sized(64, 64);
  auto j = params_json(p);
  EXPECT_TRUE(j["init_image"].is_null());
  EXPECT_TRUE(j["strength"].is_null());
  p.init_image = "a/cat.png";
  p.mask = "a/m.png";
  p.strength = 0.5;
  j = params_json(p);
  EXPECT_EQ(j["init_image"], "a/cat.png");
  EXPECT_EQ(j["mask"], "a/m.png");
  EXPECT_EQ(j["strength"], 0.5);
  EXPECT_EQ(j["mask_blur"], 4);
  EXPECT_EQ(j["inpaint_fill"], "original");
}

TEST(ParamsImage, BatchingKeepsTheScheduleTogether) {
  auto a = sized(64, 64), b = a;
  a.init_image = "x.png";
  b.init_image = "y.png";  // each image its own init latent
  EXPECT_TRUE(batchable(a, b));
  b.strength = 0.5;  // another slice of the schedule
  EXPECT_FALSE(batchable(a, b));
  b = a;
  b.mask = "m.png";  // inpainting is another mode
  EXPECT_FALSE(batchable(a, b));
  auto c = sized(64, 64), d = c;
  d.hires = true;
  EXPECT_FALSE(batchable(c, d));
}

std::vector<JobLine> lines_of(const std::string& text, PromptFormat f, const std::string& label,
                              const JobParams& cli = {}) {
  std::istringstream in(text);
  return parse_prompt_file(in, f, label, cli);
}

TEST(ParamsImage, PromptFilePathsAreRelativeToTheFile) {
  JobParams cli;
  cli.image.init_image = "from-cli.png";  // the command line's stays relative to the cwd
  const auto lines = lines_of(
      "{\"prompt\": \"a\", \"init_image\": \"cats/cat.png\", \"mask\": \"/abs/m.png\"}\n"
      "{\"prompt\": \"b\"}\n"
      "{\"prompt\": \"c\", \"init_image\": \"../up.png\"}\n",
      PromptFormat::Jsonl, "jobs/batch.jsonl", cli);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].params.image.init_image, "jobs/cats/cat.png");
  EXPECT_EQ(lines[0].params.image.mask, "/abs/m.png");
  EXPECT_EQ(lines[1].params.image.init_image, "from-cli.png");
  EXPECT_EQ(lines[2].params.image.init_image, "up.png");
  const auto a1111 = lines_of("--prompt \"x\" --init_image in.png --mask m.png\n",
                              PromptFormat::A1111, "dir/p.txt");
  EXPECT_EQ(a1111[0].params.image.init_image, "dir/in.png");
  EXPECT_EQ(a1111[0].params.image.mask, "dir/m.png");
  const auto from_stdin =
      lines_of("{\"prompt\": \"a\", \"init_image\": \"c.png\"}\n", PromptFormat::Jsonl, "<stdin>");
  EXPECT_EQ(from_stdin[0].params.image.init_image, "c.png");
}

TEST(ParamsImage, A1111OptionLinesOfTheHiresFixAndImg2Img) {
  auto l = lines_of(
      "--prompt \"a castle\" --enable_hr true --hr_scale 1.5 --denoising_strength 0.6 "
      "--hr_upscaler \"Latent (nearest-exact)\" --hr_second_pass_steps 4\n"
      "--prompt \"b\" --hr_scale 2\n"
      "--prompt \"c\" --init_image i.png --denoising_strength 0.3 --mask_blur 2 "
      "--inpainting_fill 2\n",
      PromptFormat::A1111, "p.txt");
  ASSERT_EQ(l.size(), 3u);
  const auto& a = l[0].params.image;
  EXPECT_TRUE(a.hires);
  EXPECT_EQ(a.hires_scale, 1.5);
  EXPECT_EQ(a.hires_strength, 0.6);
  EXPECT_EQ(a.hires_upscaler, "latent-nearest-exact");
  EXPECT_EQ(a.hires_steps, 4);
  EXPECT_FALSE(l[1].params.image.hires) << "hr_scale alone does not enable it, as in A1111";
  const auto& c = l[2].params.image;
  EXPECT_EQ(c.init_image, "i.png");
  EXPECT_EQ(c.strength, 0.3);
  EXPECT_EQ(c.mask_blur, 2);
  EXPECT_EQ(c.inpaint_fill, "latent-noise");
  EXPECT_THROW(lines_of("--prompt \"x\" --inpainting_fill 0\n", PromptFormat::A1111, "p.txt"),
               PromptFileError);
}

}  // namespace
}  // namespace sdgen
