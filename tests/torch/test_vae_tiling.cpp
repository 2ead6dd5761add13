// Tiled VAE decode / encode (pipeline/vae_tiling.h) against the untiled VAE, on the tiny
// reference VAE (CPU, float32), and the tiled memory estimate (models/memory.h).
//
// The bounds: tiles compute exactly what the untiled network computes (whole-image GroupNorm
// statistics, context of at least the receptive field around every kept pixel), so the only
// differences are float32 summation order (measured: max 5e-6 on [-1, 1] images, 2e-5 on the
// latent mean). In uint8 levels that can flip a value lying within ~1e-5 of a rounding boundary
// by one level and nothing more: max 1 level, and such flips are rare (mean < 0.001 levels).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include <gtest/gtest.h>

#include "sdgen/models/memory.h"
#include "sdgen/pipeline/vae_tiling.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

constexpr double kExact = 1e-4;  // max abs difference, float32 summation order only

AutoencoderKLImpl& vae() { return *tiny_sd1().vae; }

// [-1, 1] -> uint8 levels as the PNG writer rounds them, in float64
torch::Tensor levels(const torch::Tensor& x) {
  return ((x.to(torch::kDouble) + 1) / 2 * 255).clamp(0, 255).round();
}

// A smooth latent: per channel a product of low-frequency sinusoids (periods of 23 to 37 latent
// pixels) of amplitude `amp`, phase-shifted by `phase`. [b, 4, h, w]
torch::Tensor smooth_latent(int64_t b, int64_t h, int64_t w, double amp, double phase = 0) {
  auto y = torch::arange(h, torch::kDouble).view({h, 1});
  auto x = torch::arange(w, torch::kDouble).view({1, w});
  std::vector<torch::Tensor> planes;
  for (int64_t i = 0; i < b * 4; ++i) {
    const double p = 0.7 * i + 0.3 + phase;
    planes.push_back(amp * torch::sin(2 * M_PI * (x / (23.0 + 3 * i) + y / (31.0 - 2 * i)) + p) *
                     torch::cos(2 * M_PI * y / (27.0 + i) - p));
  }
  return torch::stack(planes).view({b, 4, h, w}).to(torch::kFloat);
}

// A smooth RGB image in [-1, 1]: gradients plus a slow wave. [1, 3, h, w]
torch::Tensor smooth_image(int64_t h, int64_t w) {
  auto y = torch::linspace(0, 1, h, torch::kDouble).view({h, 1});
  auto x = torch::linspace(0, 1, w, torch::kDouble).view({1, w});
  auto wave = 0.3 * torch::sin(2 * M_PI * (1.5 * x + 0.7 * y));
  return torch::stack({(x - 0.5) * 1.4 + wave, (y - 0.5) * 1.4 - wave, (x - y) * 0.6 + wave})
      .unsqueeze(0)
      .to(torch::kFloat);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The mean absolute difference of neighbouring columns, per column: [W - 1]
torch::Tensor column_steps(const torch::Tensor& image) {
  return levels(image).diff(1, 3).abs().mean({0, 1, 2});
}

// The 48 x 40 smooth latent decoded untiled and in 16-pixel tiles with an 8-pixel overlap
// (384 x 320 pixels), shared by the tests that compare them.
struct SmoothDecode {
  torch::Tensor z, untiled, tiled;
  double untiled_s = 0, tiled_s = 0;
};
const SmoothDecode& smooth_decode() {
  static const SmoothDecode d = [] {
    torch::NoGradGuard g;
    SmoothDecode r;
    r.z = smooth_latent(1, 48, 40, 3.0);
    auto t0 = std::chrono::steady_clock::now();
    r.untiled = vae().decode(r.z);
    r.untiled_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    r.tiled = decode_tiled(vae(), r.z, VaeTiling{16, 8});
    r.tiled_s = seconds_since(t0);
    return r;
  }();
  return d;
}

TEST(VaeTiling, DecodeMatchesUntiledOnSmoothLatent) {
  const auto& d = smooth_decode();
  ASSERT_EQ(d.tiled.sizes(), d.untiled.sizes());
  EXPECT_EQ(d.tiled.scalar_type(), d.untiled.scalar_type());
  auto diff = (levels(d.tiled) - levels(d.untiled)).abs();
  const double max_levels = diff.max().item<double>(), mean_levels = diff.mean().item<double>();
  std::printf(
      "[ vae tiling ] decode 48x40 latent, tile 16 / overlap 8: max %.0f levels, mean "
      "%.5f levels, max abs %.2g; untiled %.2f s, tiled %.2f s\n",
      max_levels, mean_levels, max_abs_diff(d.tiled, d.untiled), d.untiled_s, d.tiled_s);
  EXPECT_LE(max_levels, 1.0);
  EXPECT_LT(mean_levels, 1e-3);
  EXPECT_LT(max_abs_diff(d.tiled, d.untiled), kExact);
}

TEST(VaeTiling, NoSeamAtTileBoundaries) {
  const auto& d = smooth_decode();
  // Every stage's tiles start and end on latent pixels, so seams could only lie between image
  // columns 8k - 1 and 8k.
  auto steps_tiled = column_steps(d.tiled), steps_untiled = column_steps(d.untiled);
  const int64_t n = steps_tiled.size(0);
  auto boundary = torch::zeros({n}, torch::kBool);
  for (int64_t x = 7; x < n; x += 8) boundary[x] = true;
  const double excess = (steps_tiled - steps_untiled).index({boundary}).max().item<double>();
  const double at_boundaries = steps_tiled.index({boundary}).max().item<double>();
  const double elsewhere = steps_tiled.index({~boundary}).max().item<double>();
  EXPECT_LT(excess, 0.01) << "columns at tile boundaries change more than untiled";
  EXPECT_LE(at_boundaries, elsewhere + 0.01);
  // The same measure catches the seams of tiles decoded on their own (each with its own
  // GroupNorm statistics), so it is not blind to them.
  torch::NoGradGuard g;
  auto naive = d.untiled.clone();
  for (int64_t x0 = 0; x0 < 40; x0 += 8) {
    auto strip = vae().decode(d.z.narrow(3, x0, 8));  // [1, 3, 384, 64]
    naive.narrow(3, x0 * 8, 64).copy_(strip);
  }
  const double naive_excess =
      (column_steps(naive) - steps_untiled).index({boundary}).max().item<double>();
  std::printf(
      "[ vae tiling ] largest extra step at tile boundaries: tiled %.4f levels, tiles "
      "decoded on their own %.2f levels\n",
      excess, naive_excess);
  EXPECT_GT(naive_excess, 1.0);
}

TEST(VaeTiling, SingleTileIsBitIdentical) {
  torch::NoGradGuard g;
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{16, 16}, {12, 16}}) {
    auto z = smooth_latent(1, h, w, 3.0);
    EXPECT_FALSE(vae_tiles_needed(h, w, VaeTiling{16, 8}));
    EXPECT_TRUE(torch::equal(decode_tiled(vae(), z, VaeTiling{16, 8}), vae().decode(z)));
    auto image = smooth_image(h * 8, w * 8);
    auto tiled = encode_tiled(vae(), image, VaeTiling{16, 8});
    auto untiled = vae().encode(image);
    EXPECT_TRUE(torch::equal(tiled.mean, untiled.mean));
    EXPECT_TRUE(torch::equal(tiled.logvar, untiled.logvar));
    EXPECT_TRUE(torch::equal(tiled.std, untiled.std));
  }
  EXPECT_TRUE(vae_tiles_needed(17, 16, VaeTiling{16, 8}));
}

TEST(VaeTiling, EncodeMatchesUntiledOnSmoothImage) {
  torch::NoGradGuard g;
  auto image = smooth_image(384, 320);
  auto t0 = std::chrono::steady_clock::now();
  auto untiled = vae().encode(image);
  const double untiled_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  auto tiled = encode_tiled(vae(), image, VaeTiling{16, 8});
  const double tiled_s = seconds_since(t0);
  ASSERT_EQ(tiled.mean.sizes(), (std::vector<int64_t>{1, 4, 48, 40}));
  std::printf(
      "[ vae tiling ] encode 384x320, tile 16 / overlap 8: mean max abs %.2g "
      "(latent std %.3f), mean abs %.2g, logvar max abs %.2g; untiled %.2f s, tiled "
      "%.2f s\n",
      max_abs_diff(tiled.mean, untiled.mean), untiled.mean.std().item<double>(),
      (tiled.mean - untiled.mean).abs().mean().item<double>(),
      max_abs_diff(tiled.logvar, untiled.logvar), untiled_s, tiled_s);
  EXPECT_LT(max_abs_diff(tiled.mean, untiled.mean), kExact);
  EXPECT_LT((tiled.mean - untiled.mean).abs().mean().item<double>(), kExact / 10);
  EXPECT_LT(max_abs_diff(tiled.logvar, untiled.logvar), kExact);
  EXPECT_LT(max_abs_diff(tiled.std, untiled.std), kExact);
}

TEST(VaeTiling, SidesNotMultiplesOfTheTile) {
  torch::NoGradGuard g;
  auto z = smooth_latent(1, 37, 29, 3.0, 1.0);
  auto image = decode_tiled(vae(), z, VaeTiling{16, 8});
  ASSERT_EQ(image.sizes(), (std::vector<int64_t>{1, 3, 296, 232}));
  EXPECT_LT(max_abs_diff(image, vae().decode(z)), kExact);
  auto input = image.clamp(-1, 1);
  auto tiled = encode_tiled(vae(), input, VaeTiling{16, 8});
  ASSERT_EQ(tiled.mean.sizes(), (std::vector<int64_t>{1, 4, 37, 29}));
  EXPECT_LT(max_abs_diff(tiled.mean, vae().encode(input).mean), kExact);
}

TEST(VaeTiling, BatchNormalisesEachImageOnItsOwn) {
  torch::NoGradGuard g;
  // two different images: GroupNorm statistics are per image, as in the untiled VAE
  auto z = torch::cat({smooth_latent(1, 24, 20, 3.0), smooth_latent(1, 24, 20, 1.5, 2.0)});
  auto tiled = decode_tiled(vae(), z, VaeTiling{12, 6});
  ASSERT_EQ(tiled.sizes(), (std::vector<int64_t>{2, 3, 192, 160}));
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_LT(max_abs_diff(tiled[i], vae().decode(z.narrow(0, i, 1))[0]), kExact) << i;
  }
  auto enc = encode_tiled(vae(), tiled.clamp(-1, 1), VaeTiling{12, 6});
  ASSERT_EQ(enc.mean.sizes(), z.sizes());
  EXPECT_LT(max_abs_diff(enc.mean, vae().encode(tiled.clamp(-1, 1)).mean), kExact);
}

TEST(VaeTiling, RejectsBadArguments) {
  torch::NoGradGuard g;
  auto z = torch::zeros({1, 4, 8, 8});
  EXPECT_THROW(decode_tiled(vae(), z, VaeTiling{0, 0}), std::invalid_argument);
  EXPECT_THROW(decode_tiled(vae(), z, VaeTiling{16, 16}), std::invalid_argument);
  EXPECT_THROW(decode_tiled(vae(), z, VaeTiling{16, -1}), std::invalid_argument);
  EXPECT_THROW(vae_tiles_needed(8, 8, VaeTiling{4, 4}), std::invalid_argument);
  EXPECT_THROW(decode_tiled(vae(), torch::zeros({4, 8, 8}), VaeTiling{}), std::invalid_argument);
  EXPECT_THROW(encode_tiled(vae(), torch::zeros({1, 3, 60, 64}), VaeTiling{4, 2}),
               std::invalid_argument);
}

TEST(VaeTilingMemory, TiledEstimateIsBoundedByTheLevelsNotTheAttention) {
  const ModelConfig sd;  // SD 1.5 defaults
  const auto& v = sd.vae;
  for (const bool quadratic : {true, false}) {
    for (const auto pass : {VaePass::decode, VaePass::encode}) {
      // one tile: the untiled peak
      EXPECT_EQ(estimate_vae_memory(v, pass, 512, 512, 4, quadratic, kVaeTile),
                estimate_vae_memory(v, pass, 512, 512, 4, quadratic));
      const double untiled = estimate_vae_memory(v, pass, 4096, 4096, 4, quadratic);
      const double tiled = estimate_vae_memory(v, pass, 4096, 4096, 4, quadratic, kVaeTile);
      EXPECT_LT(tiled, untiled / 5) << quadratic;
      // SD at 4096 x 4096, float32, held whole: decode, the 4x level's input (512 channels at
      // 2x) and output (256 at 4x), 6.4 GB; encode, the 4x level's input (128 at 4x) and output
      // (256 at 2x) or the mid block, 3.2 GB; plus a tile's working set
      const bool decode = pass == VaePass::decode;
      EXPECT_GT(tiled, decode ? 6.4e9 : 3.2e9);
      EXPECT_LT(tiled, decode ? 9.0e9 : 5.0e9);
    }
  }
  // growing with the image's lower-resolution levels, not with the square of its pixels
  const double t2k = estimate_vae_memory(v, VaePass::decode, 2048, 2048, 2, true, kVaeTile);
  const double t4k = estimate_vae_memory(v, VaePass::decode, 4096, 4096, 2, true, kVaeTile);
  EXPECT_LT(t4k, 4.5 * t2k);
}

TEST(VaeTilingMemory, EstimateMemoryKeepsTheUntiledFieldsAndAddsTheTiled) {
  const ModelConfig sd;
  const auto m = estimate_memory(sd, 2048, 2048, 2, 4, 2e9, true);
  // the untiled VAE decode as before: six tensors of the widest full-resolution level plus the
  // mid block's 65536 x 65536 scores, stored twice
  const double n = 256.0 * 256.0;
  EXPECT_DOUBLE_EQ(m.vae, 6.0 * 128 * (2048.0 * 2048.0) * 4 + 2 * n * n * 4);
  EXPECT_EQ(m.vae_tiled,
            estimate_vae_memory(sd.vae, VaePass::decode, 2048, 2048, 4, true, kVaeTile));
  EXPECT_LT(m.vae_tiled, m.vae / 10);
  EXPECT_EQ(m.total(), m.weights + std::max(m.unet, m.vae));
  EXPECT_EQ(m.total_tiled(), m.weights + std::max(m.unet, m.vae_tiled));
  EXPECT_TRUE(vae_tiling_needed(m, m.weights + m.vae / 2));
  EXPECT_FALSE(vae_tiling_needed(m, m.weights + m.vae));
}

}  // namespace
}  // namespace sdgen::test
