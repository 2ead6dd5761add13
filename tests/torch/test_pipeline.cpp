// The whole chain against e2e_euler.safetensors (CLIP -> Euler + CFG -> VAE -> uint8), stage by
// stage through the library and end to end through the sdgen binary.
#include <gtest/gtest.h>
#include <stb_image.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "cli_test_util.h"
#include "sdgen/io/png.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/text/clip_tokenizer.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

const std::string kE2E = "e2e_euler.safetensors";
const std::string kPrompt = "a red fox sitting in a snowy forest, digital art";

Pipeline& tiny_pipeline() {
  static Pipeline p(tiny_sd1(),
                    ClipTokenizer::from_path(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz")),
                    torch::kCPU, torch::kFloat);
  return p;
}

std::vector<int64_t> as_ids(const torch::Tensor& t) {
  auto c = t.reshape({-1}).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(PipelineE2E, TokensAndContexts) {
  auto& p = tiny_pipeline();
  EXPECT_EQ(p.prompts().token_ids(kPrompt), as_ids(rt(kE2E, "cond.input_ids")));
  EXPECT_EQ(p.prompts().token_ids(""), as_ids(rt(kE2E, "uncond.input_ids")));
  EXPECT_LT(max_abs_diff(p.prompts().encode(kPrompt, {1}).context, rt(kE2E, "cond.context")), 1e-4);
  EXPECT_LT(max_abs_diff(p.prompts().encode("", {1}).context, rt(kE2E, "uncond.context")), 1e-4);
}

TEST(PipelineE2E, EulerStepsLatentAndImage) {
  torch::NoGradGuard g;
  auto& p = tiny_pipeline();
  auto sigmas = make_sigmas("discrete", p.schedule(), 6);
  EXPECT_LT(max_abs_diff(sigmas, rt(kE2E, "sigmas")), 1e-6 * 14.62);
  auto gen = at::detail::createCPUGenerator(1234);
  auto noise = torch::randn({1, 4, 8, 8}, gen, torch::TensorOptions().dtype(torch::kFloat));
  EXPECT_TRUE(torch::equal(noise, rt(kE2E, "noise")));

  auto model = guided_denoiser(p, rt(kE2E, "cond.context"), rt(kE2E, "uncond.context"), 7.5);
  std::vector<torch::Tensor> denoised;
  Denoiser recording = [&](const torch::Tensor& x, const torch::Tensor& s) {
    denoised.push_back(model(x, s));
    return denoised.back();
  };
  std::vector<torch::Tensor> xs;
  auto latent = sample_euler(recording, noise * sigmas[0], sigmas,
                             [&](int, int, const torch::Tensor& x) { xs.push_back(x.clone()); });
  const auto& ref_x = rt(kE2E, "steps.x");
  const auto& ref_d = rt(kE2E, "steps.denoised_cfg");
  ASSERT_EQ(xs.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_LT(max_abs_diff(xs[i], ref_x[i]), 1e-4 * ref_x[i].abs().max().item<double>()) << i;
    EXPECT_LT(max_abs_diff(denoised[i], ref_d[i]), 1e-4 * ref_d[i].abs().max().item<double>()) << i;
  }
  const auto& ref_latent = rt(kE2E, "latent");
  EXPECT_LT(max_abs_diff(latent, ref_latent), 1e-4 * ref_latent.abs().max().item<double>());

  auto image = p.decode_latent(ref_latent);  // decoder alone, from the reference latent
  const auto& want = rt(kE2E, "image_uint8");
  ASSERT_EQ(image.sizes(), want.sizes());
  auto diff = (image.to(torch::kInt) - want.to(torch::kInt)).abs();
  EXPECT_LE(diff.max().item<int>(), 1);
  EXPECT_LE(diff.gt(0).sum().item<int64_t>(), want.numel() / 100);
}

TEST(PipelineE2E, GenerateReproducesReferenceImage) {
  auto& p = tiny_pipeline();
  GenerationParams params;
  params.prompt = kPrompt;
  params.steps = 6;
  params.cfg_scale = 7.5;
  params.seed = 1234;
  params.width = params.height = 64;
  auto image = p.generate(params);
  const auto& want = rt(kE2E, "image_uint8");
  ASSERT_EQ(static_cast<int64_t>(image.rgb.size()), want.numel());
  int max_diff = 0, off = 0;
  for (size_t i = 0; i < image.rgb.size(); ++i) {
    const int d = std::abs(int(image.rgb[i]) - int(want.data_ptr<uint8_t>()[i]));
    max_diff = std::max(max_diff, d);
    off += d > 0;
  }
  EXPECT_LE(max_diff, 1);
  EXPECT_LE(off, static_cast<int>(image.rgb.size() / 100));
}

TEST(PipelineE2E, SizeValidation) {
  auto& p = tiny_pipeline();
  GenerationParams params;
  params.width = 60;
  params.height = 64;
  try {
    p.resolve(params);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of 8"), std::string::npos) << e.what();
  }
  std::vector<std::string> warnings;
  PipelineEvents ev;
  ev.warn = [&](const std::string& w) { warnings.push_back(w); };
  params.width = params.height = 2048;
  auto r = p.resolve(params, ev);
  EXPECT_EQ(r.width, 2048);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("duplicated objects"), std::string::npos);
  params.width = params.height = 0;
  EXPECT_EQ(p.resolve(params).width, 512);  // native size
}

TEST(PipelineE2E, InfotextNamesSamplerAndSchedule) {
  GenerationParams params;
  params.prompt = "a fox";
  params.negative_prompt = "blurry";
  params.steps = 20;
  params.sampler = "euler_a";
  params.scheduler = "karras";
  params.cfg_scale = 7.5;
  params.seed = 42;
  params.width = 512;
  params.height = 768;
  EXPECT_EQ(format_infotext(make_infotext(params, {"tiny-sd1", "da1c81e326", ""})),
            "a fox\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Schedule type: Karras, "
            "CFG scale: 7.5, Seed: 42, Size: 512x768, Model hash: da1c81e326, Model: tiny-sd1, "
            "Version: sdgen 0.1.0");
}

// ---- through the binary ----

std::vector<std::string> base_args(const std::string& out) {
  return check_args(ref("tiny-sd1.safetensors"), ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"),
                    kPrompt, out);
}

class Binary : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("sdgen-bin-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    setenv("XDG_CACHE_HOME", (dir / "cache").c_str(), 1);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::filesystem::path dir;
};

TEST_F(Binary, ReproducesE2EImageWithinOneLevel) {
  const auto out = (dir / "sub" / "out.png").string();
  auto r = run_sdgen(base_args(out), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  auto png = read_file_bytes(out);
  int w = 0, h = 0, n = 0;
  unsigned char* px =
      stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &n, 3);
  ASSERT_NE(px, nullptr);
  ASSERT_EQ(w, 64);
  ASSERT_EQ(h, 64);
  const auto& want = rt(kE2E, "image_uint8");
  int max_diff = 0;
  for (int i = 0; i < w * h * 3; ++i)
    max_diff = std::max(max_diff, std::abs(int(px[i]) - int(want.data_ptr<uint8_t>()[i])));
  stbi_image_free(px);
  EXPECT_LE(max_diff, 1);
  auto text = png_text_chunks(png).at("parameters");
  EXPECT_EQ(text.rfind(kPrompt + "\n", 0), 0u) << text;
  EXPECT_NE(text.find("Steps: 6, Sampler: Euler, CFG scale: 7.5, Seed: 1234, Size: 64x64, "
                      "Model hash: da1c81e326, Model: tiny-sd1"),
            std::string::npos)
      << text;
  // no temporary file left beside the output
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "sub"))
    files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST_F(Binary, NeverReplacesAnExistingFileWithoutOverwrite) {
  // The job is skipped (so re-running a command resumes it) and the file stays as it was.
  const auto out = (dir / "out.png").string();
  write_file_atomic(out, "keep", 4, false);
  auto r = run_sdgen(base_args(out), dir);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.err.find("skipped " + out + " (exists; --overwrite replaces it)"), std::string::npos)
      << r.err;
  auto kept = read_file_bytes(out);
  EXPECT_EQ(std::string(kept.begin(), kept.end()), "keep");
  // --overwrite replaces PNGs only: any other file is the user's, an error before loading
  auto args = base_args(out);
  args.push_back("--overwrite");
  r = run_sdgen(args, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(out + " exists and is not a PNG image; --overwrite replaces only PNG"),
            std::string::npos)
      << r.err;
  kept = read_file_bytes(out);
  EXPECT_EQ(std::string(kept.begin(), kept.end()), "keep");
  const std::string old_png = "\x89PNG\r\n\x1a\nold";
  write_file_atomic(out, old_png.data(), old_png.size(), true);
  EXPECT_EQ(run_sdgen(args, dir).status, 0);
  EXPECT_GT(read_file_bytes(out).size(), 100u);
}

TEST_F(Binary, UserMistakesGiveOneClearLine) {
  const auto out = (dir / "out.png").string();
  auto args = base_args(out);
  args[args.size() - 7] = "60x64";  // --size
  auto r = run_sdgen(args, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("multiples of 8"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  args = base_args(out);
  args[13] = "euler_x";  // --sampler
  r = run_sdgen(args, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("valid: euler, euler_a"), std::string::npos) << r.err;

  args = base_args(out);
  args[1] = (dir / "missing.safetensors").string();
  r = run_sdgen(args, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("missing.safetensors"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(Binary, RandomSeedIsReportedAndRecorded) {
  const auto out = (dir / "out.png").string();
  auto args = base_args(out);
  args[17] = "-1";  // --seed
  auto r = run_sdgen(args, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto pos = r.err.find("seed ");
  ASSERT_NE(pos, std::string::npos) << r.err;
  const auto seed = std::stoull(r.err.substr(pos + 5));
  auto text = png_text_chunks(read_file_bytes(out)).at("parameters");
  EXPECT_NE(text.find("Seed: " + std::to_string(seed) + ","), std::string::npos) << text;
}

}  // namespace
}  // namespace sdgen::test
