// The networks against the reference implementations' inputs and outputs (CPU, float32).
#include <gtest/gtest.h>

#include "torch_test_util.h"

namespace sdgen::test {
namespace {

constexpr double kTol = 1e-4;  // README: suggested max abs difference for clip_io/unet_io/vae_io

TEST(ModelsTiny, ConfigFromShapes) {
  const auto& c = tiny_sd1().config;
  EXPECT_EQ(c.text.width, 32);
  EXPECT_EQ(c.text.layers, 2);
  EXPECT_EQ(c.text.heads, 2);
  EXPECT_EQ(c.text.intermediate, 128);
  EXPECT_EQ(c.unet.model_channels, 64);
  EXPECT_EQ(c.unet.channel_mult, (std::vector<int>{1, 1}));
  EXPECT_EQ(c.unet.num_res_blocks, 2);
  EXPECT_EQ(c.unet.attention_resolutions, (std::vector<int>{1, 2}));
  EXPECT_EQ(c.unet.heads_for(64), 2);
  EXPECT_EQ(c.unet.context_dim, 32);
  EXPECT_FALSE(c.unet.use_linear_proj);
  EXPECT_EQ(c.vae.ch, 32);
  EXPECT_EQ(c.vae.ch_mult, (std::vector<int>{1, 2, 2, 2}));
  EXPECT_EQ(c.vae.num_res_blocks, 1);
  EXPECT_EQ(c.vae.downsample_factor(), 8);
}

TEST(ModelsTiny, ClipTextEncoderMatchesReference) {
  torch::NoGradGuard g;
  auto& m = tiny_sd1();
  const std::string f = "clip_io.safetensors";
  auto ids = rt(f, "input_ids");
  EXPECT_LT(max_abs_diff(m.text->forward(ids, 1), rt(f, "last_hidden_state")), kTol);
  EXPECT_LT(max_abs_diff(m.text->forward(ids, 2), rt(f, "clip_skip_2")), kTol);
  auto hs = m.text->hidden_states(ids);
  ASSERT_EQ(hs.size(), 3u);
  for (size_t i = 0; i < hs.size(); ++i)
    EXPECT_LT(max_abs_diff(hs[i], rt(f, "hidden_states." + std::to_string(i))), kTol) << i;
}

void check_unet_case(const std::string& c) {
  torch::NoGradGuard g;
  auto& m = tiny_sd1();
  const std::string f = "unet_io.safetensors";
  std::vector<std::pair<std::string, torch::Tensor>> blocks;
  auto eps = m.unet->forward(rt(f, c + ".x"), rt(f, c + ".timesteps"),
                             Conditioning(rt(f, c + ".context")), &blocks);
  EXPECT_LT(max_abs_diff(eps, rt(f, c + ".eps")), kTol);
  EXPECT_EQ(expect_blocks_match(blocks, f, c, kTol),
            13);  // 6 input blocks, the middle block, 6 output blocks
  auto temb = timestep_embedding(rt(f, c + ".timesteps"), 64);
  EXPECT_LT(max_abs_diff(temb, rt(f, c + ".debug.t_emb_sinusoidal")), 1e-5);
}

TEST(ModelsTiny, UNetSquareMatchesReference) { check_unet_case("a"); }
TEST(ModelsTiny, UNetNonSquareFractionalTimestepMatchesReference) { check_unet_case("b"); }

TEST(ModelsTiny, UNetHandlesLatentSidesNotDivisibleByDownsampling) {
  // 9x13 latents (72x104 pixels): the upsampler resizes to the skip connection's size.
  torch::NoGradGuard g;
  auto& m = tiny_sd1();
  auto x = torch::randn({1, 4, 9, 13});
  auto eps = m.unet->forward(x, torch::tensor({500.f}), Conditioning(torch::randn({1, 77, 32})));
  EXPECT_EQ(eps.sizes(), x.sizes());
  EXPECT_TRUE(torch::isfinite(eps).all().item<bool>());
}

TEST(ModelsTiny, VaeDecoderMatchesReference) {
  torch::NoGradGuard g;
  auto& m = tiny_sd1();
  const std::string f = "vae_io.safetensors";
  for (const std::string c : {"dec_a", "dec_b"}) {
    auto image = m.vae->decode(rt(f, c + ".z"));
    EXPECT_LT(max_abs_diff(image, rt(f, c + ".image")), kTol) << c;
  }
}

TEST(ModelsTiny, VaeEncoderMatchesReference) {
  torch::NoGradGuard g;
  auto& m = tiny_sd1();
  const std::string f = "vae_io.safetensors";
  for (const std::string c : {"enc_a", "enc_b"}) {
    auto d = m.vae->encode(rt(f, c + ".image"));
    EXPECT_LT(max_abs_diff(d.mean, rt(f, c + ".mean")), kTol) << c;
    EXPECT_LT(max_abs_diff(d.logvar, rt(f, c + ".logvar")), kTol) << c;
    EXPECT_LT(max_abs_diff(d.std, rt(f, c + ".std")), kTol) << c;
  }
}

}  // namespace
}  // namespace sdgen::test
