// The same code on a CUDA device: fp32 within the reference tolerances, fp16/bf16 within 1e-2
// relative on the UNet output and a few levels per channel on the final image. Skipped where
// no CUDA device is present (the Debian build machines); run on the GPU machine (docs/gpu.md).
#include <gtest/gtest.h>

#include "sdgen/pipeline/pipeline.h"
#include "sdgen/text/clip_tokenizer.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

LoadedModel load_on(torch::Device device, torch::ScalarType dtype) {
  LoadOptions o;
  o.model_path = ref("tiny-sd1.safetensors");
  o.device = device;
  o.dtype = dtype;
  return load_model(o);
}

class Cuda : public ::testing::TestWithParam<torch::ScalarType> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(Cuda, UNetMatchesReference) {
  torch::NoGradGuard g;
  const auto dtype = GetParam();
  auto m = load_on(torch::kCUDA, dtype);
  const std::string f = "unet_io.safetensors";
  for (const std::string c : {"a", "b"}) {
    auto eps = m.unet->forward(rt(f, c + ".x").to(torch::kCUDA, dtype),
                               rt(f, c + ".timesteps").to(torch::kCUDA),
                               Conditioning(rt(f, c + ".context").to(torch::kCUDA, dtype)));
    const auto& want = rt(f, c + ".eps");
    const double err = max_abs_diff(eps.to(torch::kFloat), want);
    if (dtype == torch::kFloat) {
      EXPECT_LT(err, 1e-4) << c;
    } else {
      EXPECT_LT(err, 1e-2 * want.abs().max().item<double>()) << c;
    }
  }
}

TEST_P(Cuda, EndToEndImageMatchesReference) {
  const auto dtype = GetParam();
  Pipeline p(load_on(torch::kCUDA, dtype),
             ClipTokenizer::from_path(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz")), torch::kCUDA,
             dtype);
  GenerationParams params;
  params.prompt = "a red fox sitting in a snowy forest, digital art";
  params.steps = 6;
  params.cfg_scale = 7.5;
  params.seed = 1234;
  params.width = params.height = 64;
  auto image = p.generate(params);
  const auto& want = rt("e2e_euler.safetensors", "image_uint8");
  int max_diff = 0;
  for (size_t i = 0; i < image.rgb.size(); ++i)
    max_diff = std::max(max_diff, std::abs(int(image.rgb[i]) - int(want.data_ptr<uint8_t>()[i])));
  // fp32: +-1 as on the CPU; half precision: a few levels (random weights amplify rounding).
  EXPECT_LE(max_diff, dtype == torch::kFloat ? 1 : 8);
}

// A real fp16 overflow of the VAE's activations (the failure of SDXL's original VAE): the output
// conv's channel 0 gets the largest fp16 bias and weights a hundred times larger, so some pixels
// pass 65504 in fp16 and none comes near the float32 limit. The decode is redone in float32.
TEST(CudaVae, Fp16OverflowIsDecodedAgainInFloat32) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard g;
  auto m = load_on(torch::kCUDA, torch::kHalf);
  {
    auto conv = m.vae->decoder->conv_out;
    conv->to(torch::kFloat);
    conv->bias[0] = 65504.0f;
    conv->weight[0].mul_(100);
    m.vae->to(torch::kHalf);
  }
  Pipeline p(std::move(m), ClipTokenizer::from_path(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz")),
             torch::kCUDA, torch::kHalf);
  std::vector<std::string> warnings;
  PipelineEvents ev;
  ev.warn = [&](const std::string& w) { warnings.push_back(w); };
  auto image = p.decode_latent(rt("e2e_euler.safetensors", "latent"), ev);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(p.vae_dtype(), torch::kFloat);
  EXPECT_EQ(image.select(3, 0).max().item<int>(), 255);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, Cuda,
                         ::testing::Values(torch::kFloat, torch::kHalf, torch::kBFloat16),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

}  // namespace
}  // namespace sdgen::test
