// SD 2.x against ../shared/reference/sd2: configuration from shapes, token ids padded with 0,
// the OpenCLIP text tower, the UNet with linear projections and 16-wide heads, the eps and v
// denoisers, and both end-to-end runs through the library and the sdgen binary.
#include <gtest/gtest.h>
#include <stb_image.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "sdgen/io/png.h"
#include "sdgen/models/openclip.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/util/fs.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

constexpr double kTol = 1e-4;  // sd2/README: clip_io, unet_io, contexts
const std::string kPrompt = "a red fox sitting in a snowy forest, digital art";
const std::string kVocab = "clip_vocab/bpe_simple_vocab_16e6.txt.gz";

LoadedModel load_sd2(const std::string& prediction = "") {
  LoadOptions o;
  o.model_path = ref("sd2/tiny-sd2.safetensors");
  o.prediction = prediction;
  return load_model(o);
}

LoadedModel& tiny_sd2() {
  static LoadedModel m = load_sd2();
  return m;
}

OpenClipTextModelImpl& open_clip() {
  auto* t = dynamic_cast<OpenClipTextModelImpl*>(tiny_sd2().text.get());
  if (!t) throw std::runtime_error("tiny-sd2 did not load an OpenCLIP text encoder");
  return *t;
}

std::shared_ptr<const Tokenizer> tokenizer() {
  static std::shared_ptr<const Tokenizer> t = ClipTokenizer::from_path(ref(kVocab));
  return t;
}

Pipeline& sd2_pipeline() {
  static Pipeline p(tiny_sd2(), tokenizer(), torch::kCPU, torch::kFloat);
  return p;
}

std::vector<int64_t> as_ids(const torch::Tensor& t) {
  auto c = t.reshape({-1}).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

// Largest difference and count of differing values between two uint8 buffers.
std::pair<int, int64_t> u8_diff(const uint8_t* a, const uint8_t* b, int64_t n) {
  int max_diff = 0;
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int d = std::abs(int(a[i]) - int(b[i]));
    max_diff = std::max(max_diff, d);
    off += d > 0;
  }
  return {max_diff, off};
}

TEST(Sd2, ConfigFromShapesAndSidecarJson) {
  const auto& m = tiny_sd2();
  const auto& c = m.config;
  EXPECT_EQ(c.family, "sd2");
  EXPECT_EQ(c.text.width, 32);
  EXPECT_EQ(c.text.layers, 3);
  EXPECT_EQ(c.text.heads, 2);
  EXPECT_EQ(c.text.intermediate, 128);
  EXPECT_EQ(c.text.max_positions, 77);
  EXPECT_EQ(c.text.activation, "gelu");
  EXPECT_EQ(c.unet.model_channels, 64);
  EXPECT_EQ(c.unet.channel_mult, (std::vector<int>{1, 2}));
  EXPECT_EQ(c.unet.num_res_blocks, 1);
  EXPECT_EQ(c.unet.attention_resolutions, (std::vector<int>{1}));
  EXPECT_EQ(c.unet.num_head_channels, 16);
  EXPECT_EQ(c.unet.heads_for(64), 4);  // sd2/README: 4 heads of 16 at 64 channels
  EXPECT_EQ(c.unet.heads_for(128), 8);
  EXPECT_EQ(c.unet.context_dim, 32);
  EXPECT_TRUE(c.unet.use_linear_proj);
  EXPECT_EQ(c.vae.ch_mult, (std::vector<int>{1, 1, 1, 2}));
  EXPECT_EQ(m.text->max_clip_skip(), 2);
  EXPECT_EQ(m.text->pad_id(49407), 0);
  // Without the JSON the documented guesses give the same heads, with a note.
  const auto file = TensorSource::open_file(ref("sd2/tiny-sd2.safetensors"));
  const ModelFamily& family = detect_family(file);
  EXPECT_EQ(family.name, "sd2");
  std::vector<std::string> notes;
  auto guessed = family.infer_config(file, nullptr, &notes);
  EXPECT_EQ(guessed.text.heads, 2);
  EXPECT_EQ(guessed.unet.num_head_channels, 16);
  EXPECT_TRUE(guessed.prediction.empty());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("16 channels wide"), std::string::npos) << notes[0];
  EXPECT_EQ(detect_family(TensorSource::open_file(ref("tiny-sd1.safetensors"))).name, "sd1");
}

TEST(Sd2, PredictionByA1111TestIsEpsHere) {
  // sd2/README: the A1111 test on this checkpoint gives mean(out - x) = -0.522 (eps).
  auto& m = tiny_sd2();
  EXPECT_NEAR(v_prediction_score(m.unet, torch::kCPU, torch::kFloat), -0.522, 1e-3);
  EXPECT_EQ(m.config.prediction, "eps");
  EXPECT_EQ(m.config.native_size, 512);
  bool noted = false;
  for (const auto& n : m.notes) noted |= n.find("prediction eps (A1111's test") == 0;
  EXPECT_TRUE(noted);
  auto v = load_sd2("v");
  EXPECT_EQ(v.config.prediction, "v");
  EXPECT_EQ(v.config.native_size, 768);
  EXPECT_THROW(load_sd2("x"), std::invalid_argument);
}

TEST(Sd2, TokenIdsPaddedWithZero) {
  std::ifstream in(ref("sd2/clip_tokens_sd2.json"));
  const auto j = nlohmann::json::parse(in);
  const int64_t pad = tiny_sd2().text->pad_id(tokenizer()->eos_id());
  int checked = 0, through_pipeline = 0;
  for (const auto& c : j.at("cases")) {
    const auto prompt = c.at("prompt").get<std::string>();
    const auto want = c.at("input_ids").get<std::vector<int64_t>>();
    EXPECT_EQ(tokenizer()->encode(prompt), c.at("ids").get<std::vector<int64_t>>()) << prompt;
    EXPECT_EQ(frame_ids(tokenizer()->encode(prompt), 49406, 49407, pad, 77), want) << prompt;
    // Through the pipeline too, for the prompts that A1111's emphasis syntax (brackets,
    // escapes, BREAK) and 75-token chunking leave as they are.
    const bool plain = prompt.find_first_of("()[]\\") == std::string::npos &&
                       prompt.find("BREAK") == std::string::npos;
    if (plain && !c.at("truncated").get<bool>()) {
      EXPECT_EQ(sd2_pipeline().prompts().token_ids(prompt), want) << prompt;
      ++through_pipeline;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 41);
  EXPECT_GE(through_pipeline, 30);
}

TEST(Sd2, OpenClipTextEncoderMatchesReference) {
  torch::NoGradGuard g;
  auto& t = open_clip();
  const std::string f = "sd2/clip_io.safetensors";
  auto ids = rt(f, "input_ids");
  EXPECT_LT(max_abs_diff(t.forward(ids), rt(f, "penultimate")), kTol);
  EXPECT_LT(max_abs_diff(tiny_sd2().text->forward(ids, 1), rt(f, "penultimate")), kTol);
  EXPECT_LT(max_abs_diff(t.forward_last(ids), rt(f, "last")), kTol);
  EXPECT_LT(
      max_abs_diff(t.forward(rt(f, "eos_padding.input_ids")), rt(f, "eos_padding.penultimate")),
      kTol);
  auto hs = t.hidden_states(ids);
  ASSERT_EQ(hs.size(), 4u);
  for (size_t i = 0; i < hs.size(); ++i)
    EXPECT_LT(max_abs_diff(hs[i], rt(f, "hidden_states." + std::to_string(i))), kTol) << i;
  // clip skip 2 counts from the penultimate default: one block earlier, then ln_final.
  EXPECT_LT(max_abs_diff(t.forward(ids, 2), t.ln_final(rt(f, "hidden_states.1"))), kTol);
  EXPECT_THROW(t.forward(ids, 3), std::invalid_argument);
  // The padding matters: 0 vs EOS padding moves the context the UNet sees.
  EXPECT_GT(max_abs_diff(t.forward(ids), rt(f, "eos_padding.penultimate")), 0.1);
}

void check_unet_case(const std::string& c) {
  torch::NoGradGuard g;
  auto& unet = tiny_sd2().unet;
  const std::string f = "sd2/unet_io.safetensors";
  const auto& x = rt(f, c + ".x");
  const auto& ts = rt(f, c + ".timesteps");
  const auto& ctx = rt(f, c + ".context");
  std::vector<std::pair<std::string, torch::Tensor>> blocks;
  auto out = unet->forward(x, ts, Conditioning(ctx), &blocks);
  EXPECT_LT(max_abs_diff(out, rt(f, c + ".out")), kTol);
  EXPECT_EQ(expect_blocks_match(blocks, f, c, kTol),
            9);  // 4 input blocks, the middle block, 4 output blocks
  auto temb = timestep_embedding(ts, 64);
  EXPECT_LT(max_abs_diff(temb, rt(f, c + ".debug.t_emb_sinusoidal")), 1e-5);
  auto emb = unet->time_embed->forward(temb);
  EXPECT_LT(max_abs_diff(emb, rt(f, c + ".debug.time_embed")), kTol);

  // The first SpatialTransformer's linear projections, from the reference's block 0 output.
  auto block1 = unet->input_blocks[1]->as<TimestepBlock>();
  auto res = std::dynamic_pointer_cast<ResBlockImpl>(block1->layers.at(0));
  auto st = std::dynamic_pointer_cast<SpatialTransformerImpl>(block1->layers.at(1));
  ASSERT_TRUE(res && st && st->linear_proj);
  auto h = res->forward(rt(f, c + ".debug.input_blocks.0"), emb);
  const auto b = h.size(0), ch = h.size(1), hh = h.size(2), ww = h.size(3);
  auto y = st->norm(h).permute({0, 2, 3, 1}).reshape({b, hh * ww, ch});
  y = st->proj_in.forward(y);
  EXPECT_LT(max_abs_diff(y, rt(f, c + ".debug.input_blocks.1.1.proj_in")), kTol);
  for (const auto& blk : *st->transformer_blocks)
    y = blk->as<BasicTransformerBlock>()->forward(y, ctx);
  y = st->proj_out.forward(y);
  EXPECT_LT(max_abs_diff(y, rt(f, c + ".debug.input_blocks.1.1.proj_out")), kTol);
}

TEST(Sd2, UNetSquareMatchesReference) { check_unet_case("a"); }
TEST(Sd2, UNetNonSquareFractionalTimestepMatchesReference) { check_unet_case("b"); }

TEST(Sd2, UNetTakesEverySizeMultipleOfEight) {
  torch::NoGradGuard g;
  for (auto [h, w] : {std::pair<int, int>{9, 13}, {1, 1}, {3, 8}}) {
    auto x = torch::randn({1, 4, h, w});
    auto out = tiny_sd2().unet->forward(x, torch::tensor({500.f}),
                                        Conditioning(torch::randn({1, 77, 32})));
    EXPECT_EQ(out.sizes(), x.sizes());
    EXPECT_TRUE(torch::isfinite(out).all().item<bool>());
  }
}

// The stored Euler run of one e2e file, step by step through guided_denoiser.
void check_e2e_steps(const std::string& file, const std::string& prediction) {
  torch::NoGradGuard g;
  auto& p = sd2_pipeline();
  EXPECT_EQ(p.prompts().token_ids(kPrompt), as_ids(rt(file, "cond.input_ids")));
  EXPECT_EQ(p.prompts().token_ids(""), as_ids(rt(file, "uncond.input_ids")));
  EXPECT_LT(max_abs_diff(p.prompts().encode(kPrompt, {1}).context, rt(file, "cond.context")), kTol);
  EXPECT_LT(max_abs_diff(p.prompts().encode("", {1}).context, rt(file, "uncond.context")), kTol);
  auto sigmas = make_sigmas("discrete", p.schedule(), 6);
  EXPECT_LT(max_abs_diff(sigmas, rt(file, "sigmas")), 1e-6 * 14.62);

  auto model =
      guided_denoiser(p, rt(file, "cond.context"), rt(file, "uncond.context"), 7.5, prediction);
  const auto& ref_x = rt(file, "steps.x");
  const auto& ref_d = rt(file, "steps.denoised_cfg");
  for (int i = 0; i < 6; ++i) {
    auto d = model(ref_x[i], rt(file, "steps.sigma")[i].reshape({1}));
    EXPECT_LT(max_abs_diff(d, ref_d[i]), 1e-4 * ref_d[i].abs().max().item<double>()) << i;
  }
  auto latent = sample_euler(model, rt(file, "x_T"), sigmas);
  const auto& ref_latent = rt(file, "latent");
  EXPECT_LT(max_abs_diff(latent, ref_latent), 1e-4 * ref_latent.abs().max().item<double>());

  auto image = p.decode_latent(ref_latent);
  const auto& want = rt(file, "image_uint8");
  ASSERT_EQ(image.sizes(), want.sizes());
  auto [max_diff, off] = u8_diff(image.data_ptr<uint8_t>(), want.data_ptr<uint8_t>(), want.numel());
  EXPECT_LE(max_diff, 1);
  EXPECT_LE(off, want.numel() / 100);
}

TEST(Sd2E2E, EulerEpsStepsLatentAndImage) {
  check_e2e_steps("sd2/e2e_euler_eps.safetensors", "eps");
}
TEST(Sd2E2E, EulerVStepsLatentAndImage) { check_e2e_steps("sd2/e2e_euler_v.safetensors", "v"); }

TEST(Sd2E2E, VDenoiserIsNotTheEpsDenoiser) {
  // The first UNet call is shared; the v denoiser must use it differently.
  torch::NoGradGuard g;
  const std::string f = "sd2/e2e_euler_v.safetensors";
  auto& p = sd2_pipeline();
  auto ctx_c = rt(f, "cond.context"), ctx_u = rt(f, "uncond.context");
  auto x = rt(f, "steps.x")[0];
  auto s = rt(f, "steps.sigma")[0].reshape({1});
  EXPECT_GT(max_abs_diff(guided_denoiser(p, ctx_c, ctx_u, 7.5, "v")(x, s),
                         guided_denoiser(p, ctx_c, ctx_u, 7.5, "eps")(x, s)),
            1.0);
  // Without an explicit prediction the model's (eps here) is used.
  EXPECT_LT(max_abs_diff(guided_denoiser(p, ctx_c, ctx_u, 7.5)(x, s),
                         guided_denoiser(p, ctx_c, ctx_u, 7.5, "eps")(x, s)),
            1e-6);
}

void check_generate(const std::string& file, const std::string& prediction) {
  auto& p = sd2_pipeline();
  GenerationParams params;
  params.prompt = kPrompt;
  params.steps = 6;
  params.cfg_scale = 7.5;
  params.seed = 1234;
  params.width = params.height = 64;
  params.prediction = prediction;
  auto image = p.generate(params);
  const auto& want = rt(file, "image_uint8");
  ASSERT_EQ(static_cast<int64_t>(image.rgb.size()), want.numel());
  auto [max_diff, off] = u8_diff(image.rgb.data(), want.data_ptr<uint8_t>(), want.numel());
  EXPECT_LE(max_diff, 1);
  EXPECT_LE(off, want.numel() / 100);
}

TEST(Sd2E2E, GenerateReproducesEpsImage) { check_generate("sd2/e2e_euler_eps.safetensors", ""); }
TEST(Sd2E2E, GenerateReproducesVImage) { check_generate("sd2/e2e_euler_v.safetensors", "v"); }

TEST(Sd2E2E, ResolveFillsPredictionNativeSizeAndChecksClipSkip) {
  auto& p = sd2_pipeline();
  GenerationParams params;
  auto r = p.resolve(params);
  EXPECT_EQ(r.prediction, "eps");
  EXPECT_EQ(r.width, 512);
  params.prediction = "v";
  EXPECT_EQ(p.resolve(params).prediction, "v");
  params.prediction = "x";
  EXPECT_THROW(p.resolve(params), std::invalid_argument);
  params.prediction.clear();
  params.clip_skip = 3;
  EXPECT_THROW(p.resolve(params), std::invalid_argument);
  params.clip_skip = 2;
  std::vector<std::string> warnings;
  PipelineEvents ev;
  ev.warn = [&](const std::string& w) { warnings.push_back(w); };
  p.resolve(params, ev);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("A1111 ignores clip skip"), std::string::npos);

  Pipeline v(load_sd2("v"), tokenizer(), torch::kCPU, torch::kFloat);
  EXPECT_EQ(v.resolve(GenerationParams{}).width, 768);
  EXPECT_EQ(v.resolve(GenerationParams{}).prediction, "v");
  // SD 1.x keeps its infotext unchanged: no prediction unless asked for.
  Pipeline sd1(tiny_sd1(), tokenizer(), torch::kCPU, torch::kFloat);
  EXPECT_EQ(sd1.resolve(GenerationParams{}).prediction, "");
}

TEST(Sd2E2E, InfotextRecordsPrediction) {
  GenerationParams params;
  params.prompt = "a fox";
  params.steps = 20;
  params.seed = 42;
  params.width = params.height = 768;
  params.prediction = "v";
  EXPECT_EQ(format_infotext(make_infotext(params, {"tiny-sd2", "", ""})),
            "a fox\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 42, Size: 768x768, Model: "
            "tiny-sd2, Prediction: v, Version: sdgen 0.1.0");
}

// ---- prediction from files beside the checkpoint ----

class Sd2Files : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("sdgen-sd2-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    model = (dir / "model.safetensors").string();
    std::filesystem::create_symlink(ref("sd2/tiny-sd2.safetensors"), model);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
  }
  LoadedModel load(const std::string& config = "") {
    LoadOptions o;
    o.model_path = model;
    o.config_path = config;
    return load_model(o);
  }
  std::filesystem::path dir;
  std::string model;
};

TEST_F(Sd2Files, YamlBesideTheCheckpointDecides) {
  write("model.yaml",
        "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n"
        "    parameterization: \"v\"\n    linear_start: 0.00085\n");
  auto m = load();
  EXPECT_EQ(m.config.prediction, "v");
  EXPECT_EQ(m.config.native_size, 768);
  EXPECT_EQ(m.config.unet.num_head_channels, 16);  // the guess, with no JSON beside
  write("model.yaml", "model:\n  params:\n    linear_start: 0.00085\n");  // v2-inference.yaml
  EXPECT_EQ(load().config.prediction, "eps");
}

TEST_F(Sd2Files, ConfigJsonDecides) {
  std::ifstream in(ref("sd2/tiny-sd2.json"));
  auto j = nlohmann::json::parse(in);
  j["scheduler"]["prediction_type"] = "v_prediction";
  write("model.json", j.dump());
  auto m = load();
  EXPECT_EQ(m.config.prediction, "v");
  j["prediction"] = "eps";
  j["native_size"] = 640;
  write("other.json", j.dump());
  m = load((dir / "other.json").string());
  EXPECT_EQ(m.config.prediction, "eps");
  EXPECT_EQ(m.config.native_size, 640);
}

// ---- through the binary ----

class Sd2Binary : public Sd2Files {};

void check_binary(const std::filesystem::path& dir, const std::string& prediction,
                  const std::string& file) {
  const auto out = (dir / ("out-" + prediction + ".png")).string();
  std::vector<std::string> args =
      check_args(ref("sd2/tiny-sd2.safetensors"), ref(kVocab), kPrompt, out);
  if (!prediction.empty()) args.insert(args.end(), {"--prediction", prediction});
  auto r = run_sdgen(args, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string chosen = prediction.empty() ? "eps" : prediction;
  EXPECT_NE(r.err.find("prediction " + chosen + " ("), std::string::npos) << r.err;
  auto png = read_file_bytes(out);
  int w = 0, h = 0, n = 0;
  unsigned char* px =
      stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &n, 3);
  ASSERT_NE(px, nullptr);
  ASSERT_EQ(w, 64);
  ASSERT_EQ(h, 64);
  const auto& want = rt(file, "image_uint8");
  auto [max_diff, off] = u8_diff(px, want.data_ptr<uint8_t>(), want.numel());
  stbi_image_free(px);
  EXPECT_LE(max_diff, 1);
  EXPECT_LE(off, want.numel() / 100);
  auto text = png_text_chunks(png).at("parameters");
  EXPECT_EQ(text.rfind(kPrompt + "\n", 0), 0u) << text;
  EXPECT_NE(text.find("Seed: 1234, Size: 64x64, Model hash: "), std::string::npos) << text;
  EXPECT_NE(text.find(", Prediction: " + chosen + ","), std::string::npos) << text;
}

TEST_F(Sd2Binary, EpsReproducesReferenceImage) {
  check_binary(dir, "eps", "sd2/e2e_euler_eps.safetensors");
}
TEST_F(Sd2Binary, VReproducesReferenceImage) {
  check_binary(dir, "v", "sd2/e2e_euler_v.safetensors");
}
TEST_F(Sd2Binary, WithoutFlagDecidesAsA1111) {
  check_binary(dir, "", "sd2/e2e_euler_eps.safetensors");
}

TEST_F(Sd2Binary, BadPredictionIsAUsageError) {
  auto r = run_sdgen({"--model", ref("sd2/tiny-sd2.safetensors"), "--prediction", "x0", "-o",
                      (dir / "x.png").string()},
                     dir);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("--prediction"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sdgen::test
