// Work counts against the published figure for SD 1.5 and a direct count on the tiny model.
#include <gtest/gtest.h>

#include "sdgen/models/flops.h"

namespace sdgen {
namespace {

TEST(Flops, Sd15UNetStepIs1607Gflop) {
  // sd-facts.md: one SD 1.5 UNet step at 512x512 with CFG (batch 2) is 1.607 TFLOP.
  const double f = unet_flops(UNetConfig{}, 2, 64, 64);
  EXPECT_NEAR(f / 1e12, 1.607, 0.001);
}

TEST(Flops, ScalesWithBatchAndArea) {
  const UNetConfig c;
  EXPECT_DOUBLE_EQ(unet_flops(c, 4, 64, 64), 2 * unet_flops(c, 2, 64, 64));
  // Attention grows with the square of the pixel count, convolutions linearly: a 768x512
  // image costs more than 1.5x a 512x512 one.
  EXPECT_GT(unet_flops(c, 2, 96, 64), 1.5 * unet_flops(c, 2, 64, 64));
}

TEST(Flops, TextEncoderAndDecoderCounts) {
  // CLIP ViT-L/14 text: 12 layers x (4 * 2*768^2*77 + 2 * 2*77^2*768 + 2 * 2*768*3072*77)
  const double layer =
      4 * 2.0 * 768 * 768 * 77 + 2 * 2.0 * 77 * 77 * 768 + 2 * 2.0 * 768 * 3072 * 77;
  EXPECT_DOUBLE_EQ(text_encoder_flops(ClipTextConfig{}, 1), 12 * layer);
  // The SD VAE decoder at 512x512: 1.257 T multiply-adds (2.5145 TFLOP), counted layer by layer
  // by hand from v1-inference.yaml's ddconfig; the full-resolution 128/256-channel convolutions
  // dominate.
  EXPECT_NEAR(vae_decoder_flops(VaeConfig{}, 1, 64, 64) / 1e12, 2.5145, 0.0001);
}

}  // namespace
}  // namespace sdgen
