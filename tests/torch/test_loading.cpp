// The loading layer: tensor sources, key maps, the family registry (with the families sdgen
// cannot run yet), strict loads that never expose the file's mapping, and through the binary:
// a family error for SDXL and inpainting files, a repeated flag taking its last value.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "cli_test_util.h"
#include "sdgen/io/png.h"
#include "sdgen/loading/load_module.h"
#include "sdgen/models/layers.h"
#include "sdgen/util/fs.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

namespace fs = std::filesystem;

class LoadingFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("sdgen-loading-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string path(const std::string& name) { return (dir / name).string(); }
  // A file holding `keys`, each a [1, 4, 3, 3] tensor of zeros (the shape detection reads).
  std::string file_with(const std::string& name, const std::vector<std::string>& keys,
                        std::vector<int64_t> shape = {1, 4, 3, 3}) {
    std::map<std::string, torch::Tensor> t;
    for (const auto& k : keys) t[k] = torch::zeros(shape);
    save_tensors(path(name), t);
    return path(name);
  }
  fs::path dir;
};

TEST_F(LoadingFiles, SourcesOfOneFileSeveralFilesAndAFolder) {
  save_tensors(path("a.safetensors"), {{"w", torch::ones({2})}, {"b", torch::zeros({3})}});
  fs::create_directories(dir / "unet");
  save_tensors((dir / "unet" / "x.safetensors").string(), {{"w", torch::full({4}, 2.0)}});
  const auto one = TensorSource::open_file(path("a.safetensors"));
  EXPECT_EQ(one.names(), (std::vector<std::string>{"b", "w"}));
  EXPECT_EQ(one.find("w")->shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(one.find("nothing"), nullptr);

  const auto folder = TensorSource::open_folder(dir.string());
  EXPECT_EQ(folder.names(), (std::vector<std::string>{"b", "unet.w", "w"}));
  EXPECT_EQ(folder.file_of("unet.w")->path(), (dir / "unet" / "x.safetensors").string());
  EXPECT_TRUE(torch::equal(read_tensor(folder, "unet.w", torch::kCPU, torch::kFloat),
                           torch::full({4}, 2.0)));
  EXPECT_TRUE(folder.has_prefix("unet."));
  EXPECT_FALSE(folder.has_prefix("vae."));

  // the same key from two files is an error naming both
  try {
    TensorSource::open_files({{"", path("a.safetensors")}, {"", path("a.safetensors")}}, "pair");
    FAIL() << "opened two files with the same keys";
  } catch (const CheckpointError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'b' is in both"), std::string::npos) << m;
    EXPECT_NE(m.find("a.safetensors"), std::string::npos) << m;
  }
}

TEST(KeyMaps, LongestModulePrefixWins) {
  const KeyMap ldm = KeyMap::prefixed("model.diffusion_model.");
  EXPECT_EQ(ldm.to_source("out.2.weight"), "model.diffusion_model.out.2.weight");
  EXPECT_TRUE(ldm.covers("model.diffusion_model.anything"));
  EXPECT_FALSE(ldm.covers("first_stage_model.decoder.conv_in.weight"));
  // a table as diffusers' names will need: block renames under a component prefix
  const KeyMap table({{"", "unet."},
                      {"input_blocks.1.0.in_layers.0.", "unet.down_blocks.0.resnets.0.norm1."},
                      {"input_blocks.1.0.", "unet.down_blocks.0.resnets.0."}});
  EXPECT_EQ(table.to_source("input_blocks.1.0.in_layers.0.weight"),
            "unet.down_blocks.0.resnets.0.norm1.weight");
  EXPECT_EQ(table.to_source("input_blocks.1.0.skip_connection.bias"),
            "unet.down_blocks.0.resnets.0.skip_connection.bias");
  EXPECT_EQ(table.to_source("time_embed.0.weight"), "unet.time_embed.0.weight");
}

TEST_F(LoadingFiles, FamiliesAreDetectedFromKeysAndShapes) {
  auto family_of = [&](const std::string& name, const std::vector<std::string>& keys,
                       std::vector<int64_t> shape = {1, 4, 3, 3}) {
    const auto source = TensorSource::open_file(file_with(name, keys, shape));
    try {
      return detect_family(source).name;
    } catch (const CheckpointError& e) {
      return std::string(e.what());
    }
  };
  const std::string unet_in = "model.diffusion_model.input_blocks.0.0.weight";
  EXPECT_EQ(family_of("sd1.safetensors", {unet_in}), "sd1");
  EXPECT_EQ(
      family_of("sd2.safetensors", {unet_in, "cond_stage_model.model.token_embedding.weight"}),
      "sd2");
  const auto sd3 = family_of("sd3.safetensors", {"model.diffusion_model.joint_blocks.0.x"});
  EXPECT_NE(sd3.find("an SD 3 checkpoint"), std::string::npos) << sd3;
  const auto flux = family_of("flux.safetensors", {"double_blocks.0.img_attn.qkv.weight"});
  EXPECT_NE(flux.find("a Flux checkpoint"), std::string::npos) << flux;
  const auto refiner =
      family_of("refiner.safetensors", {unet_in, "conditioner.embedders.0.model.ln_final.weight"});
  EXPECT_NE(refiner.find("SDXL refiner"), std::string::npos) << refiner;
  const auto pix2pix = family_of("p2p.safetensors", {unet_in}, {1, 8, 3, 3});
  EXPECT_NE(pix2pix.find("InstructPix2Pix"), std::string::npos) << pix2pix;
  const auto sd2_inpaint = family_of(
      "sd2i.safetensors", {unet_in, "cond_stage_model.model.token_embedding.weight"}, {1, 9, 3, 3});
  EXPECT_NE(sd2_inpaint.find("an SD 2.x inpainting checkpoint"), std::string::npos) << sd2_inpaint;
  // files that are not checkpoints say what they look like
  const auto vae = family_of("vae.safetensors", {"decoder.conv_in.weight"});
  EXPECT_NE(vae.find("only a VAE; give it with --vae"), std::string::npos) << vae;
  const auto lora = family_of("lora.safetensors",
                              {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"});
  EXPECT_NE(lora.find("LoRA"), std::string::npos) << lora;
  const auto diffusers = family_of("d.safetensors", {"down_blocks.0.x", "up_blocks.0.x"});
  EXPECT_NE(diffusers.find("diffusers' names"), std::string::npos) << diffusers;
}

TEST(Loading, ReferenceInpaintingModelIsItsOwnFamily) {
  LoadOptions o;
  o.model_path = ref("inpaint/tiny-sd1-inpaint.safetensors");
  const auto info = inspect_model(o);
  EXPECT_EQ(info.family->name, "sd1-inpaint");
  EXPECT_EQ(info.config.unet.in_channels, 9);
  EXPECT_TRUE(info.limits().inpainting_model);
  o.model_path = ref("tiny-sd1.safetensors");
  EXPECT_FALSE(inspect_model(o).limits().inpainting_model);
  o.model_path = ref("sdxl/tiny-sdxl.safetensors");  // SDXL base: its own, runnable family
  EXPECT_EQ(inspect_model(o).family->name, "sdxl");
}

TEST(Loading, InspectionReadsNoWeightsAndGivesTheLimits) {
  LoadOptions o;
  o.model_path = ref("tiny-sd1.safetensors");
  const auto info = inspect_model(o);
  EXPECT_EQ(info.family->name, "sd1");
  const auto limits = info.limits();
  EXPECT_EQ(limits.size_multiple, 8);  // the VAE's 4 levels
  EXPECT_EQ(limits.max_clip_skip, 2);  // 2 text-encoder layers
  EXPECT_EQ(limits.native_width, 512);
  o.model_path = ref("sd2/tiny-sd2.safetensors");
  const auto sd2 = inspect_model(o).limits();
  EXPECT_EQ(sd2.max_clip_skip, 2);  // 3 resblocks, the last never the context
  EXPECT_EQ(sd2.native_width, 0);   // open until the prediction is settled at load
  EXPECT_FALSE(sd2.clip_skip_warning.empty());
}

TEST(Loading, LoadedTensorsAreCopiesNotTheMapping) {
  const auto& m = tiny_sd1();
  const auto source = TensorSource::open_file(ref("tiny-sd1.safetensors"));
  const auto& file = *source.file_of("model.diffusion_model.out.2.weight");
  const auto* begin = file.data(file.tensors().front());
  const auto* end = file.data(file.tensors().back()) + file.tensors().back().nbytes();
  for (const auto& p : m.unet->parameters()) {
    const auto* data = static_cast<const uint8_t*>(p.data_ptr());
    EXPECT_TRUE(data < begin || data >= end);
  }
  // the SD 2.x text projection is loaded (kept for the pooled output), not skipped
  LoadOptions o;
  o.model_path = ref("sd2/tiny-sd2.safetensors");
  o.prediction = "eps";
  const auto sd2 = load_model(o);
  EXPECT_EQ(sd2.config.text.projection_dim, 32);
  const auto want =
      read_tensor(TensorSource::open_file(o.model_path), "cond_stage_model.model.text_projection",
                  torch::kCPU, torch::kFloat);
  EXPECT_TRUE(torch::equal(sd2.text->module().named_parameters()["text_projection"], want));
}

TEST(Layers, ForwardIsBitIdenticalToTorchNn) {
  torch::NoGradGuard g;
  torch::manual_seed(3);
  torch::nn::Linear tl(16, 8);
  nn::Linear l(16, 8);
  l->weight.copy_(tl->weight);
  l->bias.copy_(tl->bias);
  auto x = torch::randn({2, 5, 16});
  EXPECT_TRUE(torch::equal(l(x), tl(x)));
  EXPECT_TRUE(torch::equal(l(x[0]), tl(x[0])));  // 2-d input: addmm path
  torch::nn::Conv2d tc(torch::nn::Conv2dOptions(4, 6, 3).stride(2).padding(1));
  nn::Conv2d c(4, 6, 3, 2, 1);
  c->weight.copy_(tc->weight);
  c->bias.copy_(tc->bias);
  auto img = torch::randn({1, 4, 9, 7});
  EXPECT_TRUE(torch::equal(c(img), tc(img)));
  torch::nn::GroupNorm tg(torch::nn::GroupNormOptions(2, 4).eps(1e-6));
  nn::GroupNorm gn(2, 4, 1e-6);
  gn->weight.copy_(torch::rand({4}));
  gn->bias.copy_(torch::rand({4}));
  tg->weight.copy_(gn->weight);
  tg->bias.copy_(gn->bias);
  EXPECT_TRUE(torch::equal(gn(img), tg(img)));
}

TEST(Layers, DefaultInitialisationHasTorchNnStatistics) {
  torch::manual_seed(0);
  nn::Linear l(400, 300);
  nn::LayerNorm n(300, 1e-5);
  nn::Embedding e(1000, 64);
  torch::nn::Sequential seq(l, n, e);
  nn::init_default_weights(*seq);
  // kaiming-uniform(a = sqrt(5)): uniform in +-1/sqrt(fan_in), std 1/sqrt(3 fan_in)
  EXPECT_LE(l->weight.abs().max().item<double>(), 1.0 / std::sqrt(400.0));
  EXPECT_NEAR(l->weight.std().item<double>(), 1.0 / std::sqrt(1200.0), 0.02 / std::sqrt(400.0));
  EXPECT_LE(l->bias.abs().max().item<double>(), 1.0 / std::sqrt(400.0));
  EXPECT_EQ(n->weight.min().item<double>(), 1.0);
  EXPECT_EQ(n->bias.abs().max().item<double>(), 0.0);
  EXPECT_NEAR(e->weight.std().item<double>(), 1.0, 0.02);
}

class FamilyBinary : public LoadingFiles {};

TEST_F(FamilyBinary, UnsupportedFamiliesFailNamingTheFamily) {
  const auto sd3 = file_with("sd3.safetensors", {"model.diffusion_model.joint_blocks.0.x"});
  const auto pix2pix =
      file_with("p2p.safetensors", {"model.diffusion_model.input_blocks.0.0.weight"}, {1, 8, 3, 3});
  for (const auto& [file, family] : std::vector<std::pair<std::string, std::string>>{
           {pix2pix, "InstructPix2Pix"}, {sd3, "SD 3"}}) {
    const auto out = path("out.png");
    auto r = run_sdgen({"--model", file, "--prompt", "x", "--device", "cpu", "-o", out}, dir);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find(family + " is not supported yet"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(FamilyBinary, ARepeatedFlagTakesItsLastValue) {
  const auto vocab = ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz");
  const auto once = path("once.png"), twice = path("twice.png");
  auto args = check_args(ref("tiny-sd1.safetensors"), vocab, "a red fox", once);
  args[9] = "3";  // --steps
  ASSERT_EQ(run_sdgen(args, dir).status, 0);
  // a wrapper's options first, the user's after: --steps 30 ... --steps 3, -p twice
  auto again = check_args(ref("tiny-sd1.safetensors"), vocab, "a blue bird", twice);
  again[9] = "30";
  again.insert(again.end(), {"--steps", "3", "-p", "a red fox", "--seed", "1234"});
  auto r = run_sdgen(again, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file_bytes(once), read_file_bytes(twice));
  const auto text = png_text_chunks(read_file_bytes(twice)).at("parameters");
  EXPECT_EQ(text.rfind("a red fox\n", 0), 0u) << text;
  EXPECT_NE(text.find("Steps: 3,"), std::string::npos) << text;
}

}  // namespace
}  // namespace sdgen::test
