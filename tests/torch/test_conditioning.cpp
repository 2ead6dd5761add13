// The seams every model family goes through: the Conditioning value (context, vector for
// label_emb, channel concat), the text encoders' pooled output and layer choice, the model
// sampling (eps / v, latent scale and shift) and the one guided denoiser. The SDXL parts are
// checked against ../shared/reference/sdxl at component level (the SDXL family itself is not
// runnable yet).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "loading/infer_config.h"
#include "sdgen/loading/load_module.h"
#include "sdgen/models/clip.h"
#include "sdgen/models/openclip.h"
#include "sdgen/sampling/guidance.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

constexpr double kTol = 1e-4;  // sdxl/README: suggested max abs difference
const std::string kSdxl = "sdxl/tiny-sdxl.safetensors";

nlohmann::json sdxl_json() {
  std::ifstream in(ref("sdxl/tiny-sdxl.json"));
  return nlohmann::json::parse(in);
}

TEST(Conditioning, RowsConcatenatePadAndSelect) {
  Conditioning a(torch::ones({1, 77, 8}), torch::full({1, 5}, 1.0), torch::full({1, 2, 4, 4}, 1.0));
  Conditioning b(torch::full({1, 77, 8}, 2.0), torch::full({1, 5}, 2.0),
                 torch::full({1, 2, 4, 4}, 2.0));
  const auto both = cat_rows({a, b});
  EXPECT_EQ(both.rows(), 2);
  EXPECT_EQ(both.vector[1][0].item<double>(), 2.0);
  EXPECT_EQ(both.concat.size(0), 2);
  const auto twice = both.repeat_interleave(2);  // rows a, a, b, b
  EXPECT_EQ(twice.context[1][0][0].item<double>(), 1.0);
  EXPECT_EQ(twice.vector[2][0].item<double>(), 2.0);
  const auto picked = twice.index_select(torch::tensor({3, 0}, torch::kLong));
  EXPECT_EQ(picked.concat[0][0][0][0].item<double>(), 2.0);
  EXPECT_EQ(picked.concat[1][0][0][0].item<double>(), 1.0);
  // A1111's pad_cond_uncond on the tokens; the vector and concat are kept
  const Conditioning empty(torch::full({1, 77, 8}, 9.0));
  const auto padded = pad_tokens(a, 231, empty);
  EXPECT_EQ(padded.tokens(), 231);
  EXPECT_TRUE(torch::equal(padded.context.slice(1, 77, 154), empty.context));
  EXPECT_TRUE(torch::equal(padded.vector, a.vector));
  EXPECT_THROW(pad_tokens(a, 100, empty), std::invalid_argument);
  // parts must agree
  EXPECT_THROW(cat_rows({a, Conditioning(torch::ones({1, 77, 8}))}), std::invalid_argument);
  EXPECT_THROW(cat_rows({a, pad_tokens(b, 154, empty)}), std::invalid_argument);
}

// SDXL's UNet: label_emb on the vector y, transformer depth per level ([0, 1, 2], middle 2),
// linear projections, 16-wide heads. The configuration from the shapes agrees with the JSON.
TEST(ConditioningSdxl, UNetWithLabelEmbMatchesReference) {
  torch::NoGradGuard g;
  const auto source = TensorSource::open_file(ref(kSdxl));
  UNetConfig c = infer::unet(source, "model.diffusion_model.", "SDXL");
  EXPECT_EQ(c.transformer_depth, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(c.middle_depth(), 2);
  EXPECT_EQ(c.adm_in_channels, 1560);
  EXPECT_EQ(c.context_dim, 40);
  EXPECT_TRUE(c.use_linear_proj);
  EXPECT_EQ(c.attention_resolutions, (std::vector<int>{2, 4}));
  c.num_head_channels = sdxl_json()["unet"]["num_head_channels"].get<int>();
  UNetModel unet(c);
  LoadReport report;
  load_module(*unet, source, KeyMap::prefixed("model.diffusion_model."), torch::kCPU, torch::kFloat,
              report);
  ASSERT_TRUE(report.ok()) << report.message(kSdxl, "an SDXL UNet");
  const std::string f = "sdxl/unet_io.safetensors";
  for (const std::string k : {"a", "b"}) {
    std::vector<std::pair<std::string, torch::Tensor>> blocks;
    auto eps = unet->forward(rt(f, k + ".x"), rt(f, k + ".timesteps"),
                             Conditioning(rt(f, k + ".context"), rt(f, k + ".y")), &blocks);
    EXPECT_LT(max_abs_diff(eps, rt(f, k + ".eps")), kTol) << k;
    EXPECT_EQ(expect_blocks_match(blocks, f, k, kTol), 13) << k;
    EXPECT_LT(
        max_abs_diff(unet->label_emb->forward(rt(f, k + ".y")), rt(f, k + ".debug.label_emb")),
        kTol);
  }
  // without the vector the model says what it needs
  EXPECT_THROW(unet->forward(rt(f, "b.x"), rt(f, "b.timesteps"), Conditioning(rt(f, "b.context"))),
               std::invalid_argument);
}

// SDXL's encoders through the text-encoder seam: CLIP-L's hidden_states[2] without the final
// norm, bigG's penultimate without ln_final, and bigG's pooled output (ln_final of the last
// block at the end token, times text_projection).
TEST(ConditioningSdxl, TextEncodersGiveLayersWithoutNormAndThePooledOutput) {
  torch::NoGradGuard g;
  const auto source = TensorSource::open_file(ref(kSdxl));
  const auto j = sdxl_json();
  const std::string f = "sdxl/text_io.safetensors";

  const std::string lp = "conditioner.embedders.0.transformer.text_model.";
  auto lc = infer::clip_text(source, lp, "CLIP-L");
  lc.heads = j["clip_l"]["heads"].get<int>();
  ClipTextModel clip_l(lc);
  LoadReport report;
  load_module(*clip_l, source, KeyMap::prefixed(lp), torch::kCPU, torch::kFloat, report, nullptr,
              {"embeddings.position_ids"});
  TextEncodeOptions o;
  o.clip_skip = 2;
  o.final_norm = false;
  o.pooled = true;
  auto l = clip_l->encode(rt(f, "input_ids_clip_l"), o);
  EXPECT_LT(max_abs_diff(l.hidden, rt(f, "clip_l.penultimate")), kTol);
  // CLIP's pooled output: the normed last layer at the end token
  EXPECT_LT(max_abs_diff(l.pooled, gather_end_tokens(rt(f, "clip_l.last_hidden_state"),
                                                     rt(f, "input_ids_clip_l"))),
            kTol);

  const std::string gp = "conditioner.embedders.1.model.";
  auto gc = infer::openclip_text(source, gp, "OpenCLIP bigG");
  EXPECT_EQ(gc.projection_dim, 24);
  gc.heads = j["clip_g"]["heads"].get<int>();
  OpenClipTextModel clip_g(gc);
  load_module(*clip_g, source, KeyMap::prefixed(gp), torch::kCPU, torch::kFloat, report, nullptr,
              {"logit_scale"});
  ASSERT_TRUE(report.ok()) << report.message(kSdxl, "SDXL text encoders");
  o.clip_skip = 1;  // OpenCLIP's 1 is the penultimate block
  auto big = clip_g->encode(rt(f, "input_ids_clip_g"), o);
  EXPECT_LT(max_abs_diff(big.hidden, rt(f, "clip_g.penultimate")), kTol);
  EXPECT_LT(max_abs_diff(big.pooled, rt(f, "clip_g.pooled")), kTol);
  EXPECT_LT(
      max_abs_diff(clip_g->forward_last(rt(f, "input_ids_clip_g")), rt(f, "clip_g.last_ln_final")),
      kTol);
  // the pooled output is only computed when asked for
  o.pooled = false;
  EXPECT_FALSE(clip_g->encode(rt(f, "input_ids_clip_g"), o).pooled.defined());
}

TEST(ModelSampling, EpsAndVOutputsAndLatentScaling) {
  const auto eps = ModelSampling::from_config(ModelConfig{});
  const auto v = eps.with_prediction(Prediction::kV);
  auto x = torch::randn({2, 4, 3, 3}, torch::kDouble);
  auto out = torch::randn({2, 4, 3, 3}, torch::kDouble);
  auto sigma = torch::tensor({0.5, 3.0}, torch::kDouble);
  auto s = sigma.view({-1, 1, 1, 1});
  EXPECT_LT(max_abs_diff(eps.denoised(x, sigma, out), x - s * out), 1e-12);
  EXPECT_LT(max_abs_diff(v.denoised(x, sigma, out), x / (s * s + 1) - out * s / (s * s + 1).sqrt()),
            1e-12);
  EXPECT_LT(max_abs_diff(eps.input_scale(sigma), 1 / (s * s + 1).sqrt()), 1e-12);
  // sigma -> t on the schedule's table: the largest sigma is t = 999
  EXPECT_NEAR(
      eps.sigma_to_t(eps.schedule().sigma_max().reshape({1}).to(torch::kFloat)).item<double>(),
      999.0, 1e-3);
  // latents: SD's scale alone, and a scale with a shift (SD 3 / Flux keep one)
  auto latent = torch::randn({1, 4, 2, 2});
  EXPECT_TRUE(torch::equal(eps.latent_to_vae(latent), latent * (1.0 / 0.18215)));
  const ModelSampling shifted(eps.schedule(), Prediction::kEps, 1.5305, 0.0609, 1024, 1024);
  EXPECT_LT(max_abs_diff(shifted.latent_to_vae(latent), latent / 1.5305 + 0.0609), 1e-6);
  EXPECT_LT(max_abs_diff(shifted.vae_to_latent(shifted.latent_to_vae(latent)), latent), 1e-6);
  EXPECT_EQ(shifted.native_width(), 1024);
}

// The guided denoiser over a network that returns a known output: the batch order
// [uncond, cond], the guidance formula, and at cfg 1 one pass on the conditional rows only.
TEST(GuidedDenoiser, BatchesUncondAndCondAndSkipsUncondAtCfg1) {
  const auto sampling = ModelSampling::from_config(ModelConfig{});
  std::vector<int64_t> rows;
  // "eps" = the context's first value, per row: uncond rows 1, cond rows 3
  ModelCall call = [&](const torch::Tensor& x_in, const torch::Tensor&, const Conditioning& c,
                       int64_t images) {
    rows.push_back(x_in.size(0));
    EXPECT_EQ(c.rows(), x_in.size(0));
    EXPECT_EQ(images, 2);
    return c.context.select(2, 0).select(1, 0).view({-1, 1, 1, 1}).expand_as(x_in).contiguous();
  };
  const Conditioning cond(torch::full({1, 4, 2}, 3.0)), uncond(torch::full({1, 4, 2}, 1.0));
  auto x = torch::zeros({2, 4, 2, 2});
  auto sigma = torch::tensor({2.0f, 2.0f});
  GuidedDenoiser guided(sampling, call, cond, uncond, 7.5);
  // denoised = x - sigma * eps: uncond -2, cond -6; guided -2 + (-6 + 2) * 7.5 = -32
  auto d = guided(x, sigma);
  EXPECT_EQ(rows, (std::vector<int64_t>{4}));
  EXPECT_TRUE(torch::allclose(d, torch::full_like(x, -32.0)));
  rows.clear();
  GuidedDenoiser single(sampling, call, cond, uncond, 1.0);
  EXPECT_TRUE(torch::equal(single(x, sigma), torch::full_like(x, -6.0)));
  EXPECT_EQ(rows, (std::vector<int64_t>{2}));  // the conditional pass alone
  // the CompVis adapter: guidance on the noise prediction, 1 + (3 - 1) * 7.5 = 16
  rows.clear();
  auto e = guided.eps(x, torch::tensor({500.0f, 500.0f}));
  EXPECT_TRUE(torch::allclose(e, torch::full_like(x, 16.0)));
  EXPECT_EQ(rows, (std::vector<int64_t>{4}));
}

// Channels concatenated to the latent follow it into the UNet (inpainting UNets' input).
TEST(ConditioningConcat, ExtraInputChannelsFollowTheLatent) {
  torch::NoGradGuard g;
  const std::string file = "inpaint/tiny-sd1-inpaint.safetensors";
  const auto source = TensorSource::open_file(ref(file));
  UNetConfig c = infer::unet(source, "model.diffusion_model.", "an inpainting UNet");
  EXPECT_EQ(c.in_channels, 9);
  c.num_heads = 2;
  UNetModel unet(c);
  LoadReport report;
  load_module(*unet, source, KeyMap::prefixed("model.diffusion_model."), torch::kCPU, torch::kFloat,
              report);
  ASSERT_TRUE(report.ok());
  auto x = torch::randn({1, 4, 8, 8}), extra = torch::randn({1, 5, 8, 8});
  auto ctx = torch::randn({1, 77, 32});
  auto t = torch::tensor({300.0f});
  auto with_concat = unet->forward(x, t, Conditioning(ctx, {}, extra));
  EXPECT_EQ(with_concat.sizes(), x.sizes());
  EXPECT_TRUE(
      torch::equal(with_concat, unet->forward(torch::cat({x, extra}, 1), t, Conditioning(ctx))));
  // the same UNet's first 4 input channels are tiny-sd1's: with a zero concat the inpainting
  // weights of channels 4-8 contribute nothing
  auto zero_extra = unet->forward(x, t, Conditioning(ctx, {}, torch::zeros({1, 5, 8, 8})));
  EXPECT_LT(max_abs_diff(zero_extra, tiny_sd1().unet->forward(x, t, Conditioning(ctx))), 1e-5);
}

}  // namespace
}  // namespace sdgen::test
