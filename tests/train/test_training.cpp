// sdgen-train's training on a tiny configuration: losses fall, the checkpoint loads through
// load_model and the pipeline renders an image of the right size with it.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numeric>

#include "sdgen/loading/model_loader.h"
#include "sdgen/pipeline/pipeline.h"
#include "train/train.h"
#include "train_test_util.h"

namespace sdgen {
namespace {

constexpr const char* kTinyConfig = R"({
  "family": "sd1", "native_size": 32, "prediction": "eps",
  "text_encoder": {"vocab_size": 128, "max_positions": 24, "width": 32, "layers": 1,
                   "heads": 2, "intermediate": 64},
  "unet": {"model_channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1,
           "attention_resolutions": [1, 2], "num_head_channels": 32, "transformer_depth": 1,
           "context_dim": 32},
  "vae": {"ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 4,
          "embed_dim": 4, "norm_groups": 8}
})";

double mean(const std::vector<double>& v, size_t from, size_t n) {
  return std::accumulate(v.begin() + from, v.begin() + from + n, 0.0) / n;
}

data::DatasetOptions tiny_data() {
  data::DatasetOptions d;
  d.image_size = 32;
  d.seed = 11;
  return d;
}

ModelConfig tiny_config(const std::string& dir) {
  std::ofstream(dir + "/tiny.json") << kTinyConfig;
  return train::read_model_config(dir + "/tiny.json");
}

TEST(Training, LearningRateWarmsUpThenFollowsTheCosine) {
  train::TrainOptions o;
  o.lr = 1e-3;
  o.warmup = 10;
  o.steps = 111;                                       // decay over steps 10 .. 110
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 0), 1e-4);  // (step + 1) / warmup
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 9), 1e-3);
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 50), 1e-3);  // constant without final_lr
  o.final_lr = 1e-4;
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 10), 1e-3);      // the cosine starts at lr
  EXPECT_NEAR(train::learning_rate(o, 60), 5.5e-4, 1e-15);  // halfway: the mean
  EXPECT_NEAR(train::learning_rate(o, 35), 5.5e-4 + 4.5e-4 * std::cos(M_PI / 4), 1e-15);
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 110), 1e-4);  // the last step
}

TEST(Training, MinSnrWeightsTheNoiseLoss) {
  // two samples with squared errors 1 and 4 per element; acp 0.9 (SNR 9) and 0.2 (SNR 0.25)
  auto noise = torch::zeros({2, 1, 2, 2});
  auto pred = torch::cat({torch::ones({1, 1, 2, 2}), torch::full({1, 1, 2, 2}, 2.0)});
  auto acp = torch::tensor({0.9, 0.2}, torch::kFloat);
  EXPECT_NEAR(train::eps_loss(pred, noise, acp, 0).item<double>(), 2.5, 1e-6);
  // gamma 5: weights 5/9 and 1 (SNR below gamma keeps its full weight)
  EXPECT_NEAR(train::eps_loss(pred, noise, acp, 5).item<double>(), (5.0 / 9 + 4.0) / 2, 1e-6);
}

TEST(Training, BatchImagesAreScaled) {
  const auto b = train::make_batch(tiny_data(), data::Split::kTrain, 0, 3);
  EXPECT_EQ(b.images.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  EXPECT_EQ(b.captions.size(), 3u);
  EXPECT_GE(b.images.min().item<float>(), -1.0f);
  EXPECT_LE(b.images.max().item<float>(), 1.0f);
}

// L1 reconstruction error of the VAE (latent means, no sampling) on fixed images.
double reconstruction_error(AutoencoderKL& vae, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  return (vae->decode(vae->encode(images).mean) - images).abs().mean().item<double>();
}

TEST(Training, VaeReconstructionImproves) {
  const auto dir = testing::temp_dir("vae");
  auto config = tiny_config(dir);
  torch::manual_seed(0);
  AutoencoderKL vae(config.vae);
  train::init_vae_for_training(vae);
  const auto images = train::make_batch(tiny_data(), data::Split::kTrain, 0, 16).images;
  const double before = reconstruction_error(vae, images);
  train::TrainOptions o;
  o.steps = 60;
  o.batch = 4;
  o.lr = 5e-4;
  o.warmup = 10;
  o.pool = 16;
  const auto r = train::train_vae(vae, tiny_data(), o);
  ASSERT_EQ(r.losses.size(), 60u);
  const double after = reconstruction_error(vae, images);
  EXPECT_LT(after, 0.7 * before) << "L1 before " << before << ", after " << after;
  EXPECT_LT(mean(r.losses, 50, 10), mean(r.losses, 0, 10));
  // the same seed gives the same run
  torch::manual_seed(0);
  AutoencoderKL again(config.vae);
  train::init_vae_for_training(again);
  o.steps = 3;
  const auto r2 = train::train_vae(again, tiny_data(), o);
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(r2.losses[i], r.losses[i]);
}

// A continued run that widens the text encoder (sdgen-train unet --init with more positions in
// the config): every saved tensor comes back exactly, the saved position rows into the first
// rows, the new rows as initialised; fewer positions than saved is an error naming both.
TEST(Training, TextEncoderLoadsIntoMorePositions) {
  const auto dir = testing::temp_dir("widen");
  const auto config = tiny_config(dir);
  const int64_t n = config.text.max_positions;
  torch::manual_seed(0);
  ClipTextModel saved(config.text);
  train::init_for_training(*saved);
  const std::string path = dir + "/text.safetensors";
  train::save_checkpoint(path, &saved, nullptr, nullptr, torch::kFloat);

  auto wide_config = config.text;
  wide_config.max_positions = static_cast<int>(2 * n);
  ClipTextModel wide(wide_config);
  train::init_for_training(*wide);
  const std::string pos = "embeddings.position_embedding.weight";
  const auto fresh = wide->named_parameters()[pos].clone();
  train::load_text_encoder(wide, path);
  auto loaded = wide->named_parameters();
  for (const auto& kv : saved->named_parameters()) {
    const auto& t = loaded[kv.key()];
    if (kv.key() == pos) {
      ASSERT_EQ(t.size(0), 2 * n);
      EXPECT_TRUE(torch::equal(t.narrow(0, 0, n), kv.value()));
      EXPECT_TRUE(torch::equal(t.narrow(0, n, n), fresh.narrow(0, n, n)));
    } else {
      EXPECT_TRUE(torch::equal(t, kv.value())) << kv.key();
    }
  }

  auto short_config = config.text;
  short_config.max_positions = static_cast<int>(n / 2);
  ClipTextModel short_text(short_config);
  try {
    train::load_text_encoder(short_text, path);
    FAIL() << "loaded " << n << " positions into " << n / 2;
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(n) + " positions"), std::string::npos) << m;
    EXPECT_NE(m.find("max_positions"), std::string::npos) << m;
  }
}

TEST(Training, UNetLossFallsAndTheCheckpointRendersThroughThePipeline) {
  const auto dir = testing::temp_dir("unet");
  SDGEN_REQUIRE_SPM();
  auto config = tiny_config(dir);
  auto tok = testing::small_tokenizer();
  config.text.vocab_size = static_cast<int>(tok->vocab_size());
  torch::manual_seed(0);
  AutoencoderKL vae(config.vae);
  ClipTextModel text(config.text);
  UNetModel unet(config.unet);
  for (torch::nn::Module* m :
       {static_cast<torch::nn::Module*>(vae.get()), static_cast<torch::nn::Module*>(text.get()),
        static_cast<torch::nn::Module*>(unet.get())})
    train::init_for_training(*m);
  train::TrainOptions o;
  o.steps = 40;
  o.batch = 8;
  o.lr = 2e-3;
  o.warmup = 5;
  o.pool = 64;
  const auto r = train::train_unet(text, unet, vae, *tok, tiny_data(), o);
  ASSERT_EQ(r.losses.size(), 40u);
  EXPECT_LT(mean(r.losses, 30, 10), 0.8 * mean(r.losses, 0, 10));
  EXPECT_GT(r.scale_factor, 0);
  // captions that do not fit the text encoder's positions are counted (and cut)
  int cut = 0;
  for (int i = 0; i < o.pool; ++i) {
    const auto caption = data::make_sample(tiny_data(), data::Split::kTrain, i).caption;
    if (tok->encode(caption).size() + 2 > static_cast<size_t>(config.text.max_positions)) ++cut;
  }
  EXPECT_GT(cut, 0);  // 24 positions: about half the captions of the small tokenizer
  EXPECT_EQ(r.cut_captions, cut);
  config.vae.scale_factor = r.scale_factor;

  // a checkpoint in the LDM layout with its config beside it
  const std::string path = dir + "/tiny.safetensors";
  train::save_checkpoint(path, &text, &unet, &vae, torch::kHalf);
  train::save_config(dir + "/tiny.json", config, {{"tokenizer", "tokenizer.model"}});
  {
    auto file = SafetensorsFile::open(path);
    EXPECT_TRUE(
        file->find("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"));
    EXPECT_TRUE(file->find("model.diffusion_model.input_blocks.0.0.weight"));
    EXPECT_TRUE(file->find("first_stage_model.decoder.conv_in.weight"));
    EXPECT_EQ(file->find("model.diffusion_model.out.2.weight")->dtype, DType::F16);
  }
  LoadOptions lo;
  lo.model_path = path;
  auto model = load_model(lo);
  EXPECT_EQ(model.config.native_size, 32);
  EXPECT_EQ(model.config.text.heads, 2);
  EXPECT_NEAR(model.config.vae.scale_factor, r.scale_factor, 1e-9);
  Pipeline pipeline(std::move(model), tok, torch::kCPU, torch::kFloat);
  GenerationParams p;
  p.prompt = "a small red circle in the top left corner on a white background";
  p.steps = 3;
  p.seed = 1;
  const auto image = pipeline.generate(pipeline.resolve(p));
  EXPECT_EQ(image.width, 32);
  EXPECT_EQ(image.height, 32);
  EXPECT_EQ(image.rgb.size(), 32u * 32u * 3u);
}

}  // namespace
}  // namespace sdgen
