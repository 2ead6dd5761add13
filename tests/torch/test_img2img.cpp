// img2img, inpainting and the hires fix through Pipeline, with the UNet replaced by one that
// predicts zero noise: every sampler then keeps its starting point where it is not blended,
// so the start (init latent, noise, sigma slice), the blends, the fill modes, the inpainting
// UNet's extra channels and the hires arithmetic are pinned exactly. (The real UNet's results
// are the conformance cases of ../shared/conformance/img2img.)
#include <gtest/gtest.h>

#include "sdgen/io/image_ops.h"
#include "sdgen/io/resample.h"
#include "sdgen/sampling/sampler_registry.h"
#include "sdgen/sampling/schedule.h"
#include "sdgen/text/clip_tokenizer.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

namespace F = torch::nn::functional;

std::string conformance(const std::string& name) {
  return std::string(SDGEN_REFERENCE_DIR) + "/../conformance/img2img/" + name;
}

std::shared_ptr<const Tokenizer> vocab() {
  static std::shared_ptr<const Tokenizer> t =
      ClipTokenizer::from_path(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"));
  return t;
}

struct Call {
  torch::Tensor x, t;
  Conditioning c;
};

// A pipeline whose UNet predicts zeros and records its calls.
struct ZeroUNet {
  explicit ZeroUNet(LoadedModel model)
      : pipeline(std::move(model), vocab(), torch::kCPU, torch::kFloat) {
    pipeline.set_unet_runner(
        [this](const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c) {
          calls.push_back({x.clone(), t.clone(), c});
          return torch::zeros_like(x);
        });
  }
  Pipeline pipeline;
  std::vector<Call> calls;
};

torch::Tensor randn_of(uint64_t seed, int64_t h, int64_t w) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn({1, 4, h, w}, gen, torch::TensorOptions().dtype(torch::kFloat));
}

torch::Tensor image_tensor(const Image8& rgb) {
  auto t = torch::from_blob(const_cast<uint8_t*>(rgb.pixels.data()), {rgb.height, rgb.width, 3},
                            torch::kUInt8)
               .to(torch::kFloat);
  return (t / 255.0f * 2 - 1).permute({2, 0, 1}).unsqueeze(0).contiguous();
}

std::vector<uint8_t> pixels_of(Pipeline& p, const torch::Tensor& latent) {
  auto px = p.decode_latent(latent)[0].contiguous();
  return {px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel()};
}

GenerationParams base(int w = 64, int h = 64) {
  GenerationParams g;
  g.prompt = "a ginger cat";
  g.negative_prompt = "blur";
  g.width = w;
  g.height = h;
  g.steps = 10;
  g.cfg_scale = 7;
  g.seed = 31337;
  return g;
}

TEST(Img2Img, StartsFromTheEncodedImagePartWayDownTheSchedule) {
  ZeroUNet z(tiny_sd1());
  auto g = base();
  g.init_image = conformance("init_cat.png");
  g.strength = 0.6;  // t_enc = 6: sigmas[3:], 7 steps
  const auto image = z.pipeline.generate(g);
  ASSERT_EQ(z.calls.size(), 7u);
  const auto init = z.pipeline.encode_image(image_tensor(read_image_rgb(g.init_image)));
  const auto sigmas = make_sigmas("discrete", z.pipeline.schedule(), 10);
  const double s0 = sigmas[3].item<double>();
  const auto start = init + randn_of(g.seed, 8, 8) * s0;
  // the UNet sees the latent scaled by c_in = 1 / sqrt(sigma^2 + 1), both CFG rows alike
  EXPECT_LT(max_abs_diff(z.calls[0].x[1], (start / std::sqrt(s0 * s0 + 1))[0]), 1e-5);
  // zero noise predicted: Euler keeps its start
  EXPECT_EQ(image.rgb, pixels_of(z.pipeline, start));
  EXPECT_EQ(image.width, 64);
}

TEST(Img2Img, CompVisDdimRunsTheFirstTEncTimesteps) {
  ZeroUNet z(tiny_sd1());
  auto g = base();
  g.sampler = "ddim";
  g.init_image = conformance("init_boat.png");
  g.strength = 0.5;  // t_enc 5 of 10
  z.pipeline.generate(g);
  ASSERT_EQ(z.calls.size(), 5u);
  const auto timesteps = compvis_timesteps(10);
  EXPECT_EQ(z.calls[0].t[0].item<int64_t>(), timesteps[4]);
  EXPECT_EQ(z.calls[4].t[0].item<int64_t>(), timesteps[0]);
  const double a = z.pipeline.schedule().alphas_cumprod()[timesteps[5]].item<double>();
  const auto init = z.pipeline.encode_image(image_tensor(read_image_rgb(g.init_image)));
  const auto start = init * std::sqrt(a) + randn_of(g.seed, 8, 8) * std::sqrt(1 - a);
  EXPECT_LT(max_abs_diff(z.calls[0].x[0], start[0]), 1e-5);
}

TEST(Inpaint, FillModesAndBlendsWithAZeroNoiseUNet) {
  ZeroUNet z(tiny_sd1());
  auto g = base();
  g.init_image = conformance("init_cat.png");
  g.mask = conformance("mask_rect_aligned.png");
  g.mask_blur = 0;
  g.strength = 0.85;  // t_enc 8: sigmas[1:]
  const Image8 init_rgb = read_image_rgb(g.init_image);
  const Image8 mask = read_mask(g.mask);
  const auto init = z.pipeline.encode_image(image_tensor(init_rgb));
  const auto noise = randn_of(g.seed, 8, 8);
  const double s0 = make_sigmas("discrete", z.pipeline.schedule(), 10)[1].item<double>();
  // the mask's rectangle x 24..55, y 16..39 covers latent pixels x 3..6, y 2..4
  auto m = torch::zeros({1, 1, 8, 8});
  m.index_put_({0, 0, torch::indexing::Slice(2, 5), torch::indexing::Slice(3, 7)}, 1.0);
  for (const std::string fill : {"original", "latent-nothing", "latent-noise"}) {
    g.inpaint_fill = fill;
    const auto image = z.pipeline.generate(g);
    // where repainted the start stays (zero noise); elsewhere the init latent is restored
    const auto start_init = fill == "original"         ? init
                            : fill == "latent-nothing" ? init * (1 - m)
                                                       : init * (1 - m) + noise * m;
    const auto expected_latent = (start_init + noise * s0) * m + init * (1 - m);
    auto px = pixels_of(z.pipeline, expected_latent);
    Image8 expected{64, 64, 3, px};
    paste_back(expected, init_rgb, mask);
    EXPECT_EQ(image.rgb, expected.pixels) << fill;
    for (size_t i = 0; i < mask.pixels.size(); ++i) {
      if (mask.pixels[i] == 0) {
        ASSERT_EQ(image.rgb[i * 3], init_rgb.pixels[i * 3]) << fill;
      }
    }
  }
}

TEST(Inpaint, NineChannelModelGetsTheMaskAndTheMaskedImageLatent) {
  LoadOptions o;
  o.model_path = ref("inpaint/tiny-sd1-inpaint.safetensors");
  ZeroUNet z(load_model(o));
  auto g = base();
  g.steps = 2;
  z.pipeline.generate(g);  // txt2img: ones and the latent of the gray image
  auto concat = z.calls.at(0).c.concat;
  ASSERT_TRUE(concat.defined());
  ASSERT_EQ(concat.sizes(), (std::vector<int64_t>{2, 5, 8, 8}));  // uncond and cond rows
  EXPECT_EQ(concat.narrow(1, 0, 1).min().item<float>(), 1.0f);
  const auto gray = z.pipeline.encode_image(torch::zeros({1, 3, 64, 64}));
  EXPECT_LT(max_abs_diff(concat[1].narrow(0, 1, 4), gray[0]), 1e-6);

  z.calls.clear();
  g.init_image = conformance("init_boat.png");
  g.mask = conformance("mask_rect_unaligned.png");  // x 12..43, y 19..51
  g.mask_blur = 0;
  g.strength = 0.9;
  z.pipeline.generate(g);
  concat = z.calls.at(0).c.concat;
  // the mask downsampled by torch nearest: each 8x8 block's top-left pixel
  auto cm = torch::zeros({8, 8});
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x)
      cm[y][x] = (x * 8 >= 12 && x * 8 <= 43 && y * 8 >= 19 && y * 8 <= 51) ? 1.0 : 0.0;
  EXPECT_TRUE(torch::equal(concat[0][0], cm));
  auto full = torch::zeros({1, 1, 64, 64});
  full.index_put_({0, 0, torch::indexing::Slice(19, 52), torch::indexing::Slice(12, 44)}, 1.0);
  const auto masked = image_tensor(read_image_rgb(g.init_image)) * (1 - full);
  EXPECT_LT(max_abs_diff(concat[0].narrow(0, 1, 4), z.pipeline.encode_image(masked)[0]), 1e-6);
}

TEST(Hires, SecondPassOverTheUpscaledLatentWithAFreshGenerator) {
  ZeroUNet z(tiny_sd1());
  auto g = base(32, 64);
  g.steps = 8;
  g.seed = 97531;
  g.hires = true;
  g.hires_scale = 1.5;
  g.hires_steps = 4;
  g.hires_strength = 0.6;
  for (const std::string upscaler :
       {"latent-nearest-exact", "latent-bicubic-antialiased", "lanczos"}) {
    z.calls.clear();
    g.hires_upscaler = upscaler;
    const auto image = z.pipeline.generate(g);
    EXPECT_EQ(z.calls.size(), 8u + 4u) << upscaler;
    ASSERT_EQ(std::make_pair(image.width, image.height), std::make_pair(48, 96));
    EXPECT_EQ(image.params.width, 32) << "the infotext keeps the first pass's size";
    // first pass: zero noise keeps noise * sigmas[0]
    const auto first =
        randn_of(g.seed, 8, 4) * make_sigmas("discrete", z.pipeline.schedule(), 8)[0];
    torch::Tensor up;
    if (upscaler == "lanczos") {
      // decode, truncate to 8 bits, Pillow LANCZOS to 48x96, encode
      auto decoded = ((tiny_sd1().vae->decode(first / 0.18215) + 1) / 2)
                         .clamp(0, 1)
                         .mul(255)
                         .floor()
                         .to(torch::kUInt8)
                         .permute({0, 2, 3, 1})
                         .contiguous();
      Image8 rgb{32, 64, 3, {}};
      rgb.pixels.assign(decoded.data_ptr<uint8_t>(), decoded.data_ptr<uint8_t>() + decoded.numel());
      up = z.pipeline.encode_image(image_tensor(resize(rgb, 48, 96, ResampleFilter::kLanczos)));
    } else {
      auto o = F::InterpolateFuncOptions().size(std::vector<int64_t>{12, 6});
      if (upscaler == "latent-nearest-exact")
        o.mode(torch::kNearestExact);
      else
        o.mode(torch::kBicubic).align_corners(false).antialias(true);
      up = F::interpolate(first, o);
    }
    // second pass: total int(4 / 0.6) = 6 steps, t_enc 3: sigmas(6)[2:], a NEW generator
    const double s0 = make_sigmas("discrete", z.pipeline.schedule(), 6)[2].item<double>();
    const auto expected = up + randn_of(g.seed, 12, 6) * s0;
    EXPECT_EQ(image.rgb, pixels_of(z.pipeline, expected)) << upscaler;
  }
}

}  // namespace
}  // namespace sdgen::test
