// LoRAs as A1111 applies them: the public LoRA files read (kohya keys, fp16 widened, the addnet
// hash), every layer name resolved by the model's real block layout, the weights patched in
// float32 exactly as network_lora computes them, only what changes rewritten, and the pristine
// model back bit for bit. Images through the binary: ../shared/conformance/lora (scripts/test.sh)
// and the batch tests below.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "sdgen/io/png.h"
#include "sdgen/pipeline/lora_patch.h"
#include "sdgen/util/fs.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

namespace fs = std::filesystem;

std::string lora_file(const std::string& name) {
  return std::string(SDGEN_REFERENCE_DIR) + "/../conformance/lora/loras/" + name + ".safetensors";
}

std::map<std::string, torch::Tensor> snapshot(LoadedModel& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.unet->named_parameters()) out["unet." + p.key()] = p.value().clone();
  auto text = std::dynamic_pointer_cast<torch::nn::Module>(m.text);
  for (const auto& p : text->named_parameters()) out["text." + p.key()] = p.value().clone();
  return out;
}

TEST(Lora, PublicFilesReadWithTheirHashes) {
  const auto pastel = read_lora(lora_file("pastelwave"));
  EXPECT_EQ(pastel->layers.size(), 120u);
  EXPECT_EQ(pastel->hash, "6a6e4d668f92");
  EXPECT_TRUE(pastel->unsupported.empty());
  const auto grain = read_lora(lora_file("grainfilm"));  // fp16, LoCon 3x3 convs
  EXPECT_EQ(grain->hash, "883b66c607c0");
  for (const auto& l : grain->layers) {
    EXPECT_EQ(l.down.scalar_type(), torch::kFloat);
    EXPECT_EQ(l.scale(), 3.0 / 2.0) << l.name;  // alpha 3, rank 2
  }
  EXPECT_THROW(read_lora(ref("tiny-sd1.safetensors")), std::runtime_error) << "not a LoRA";
}

TEST(Lora, NamesFollowTheRealBlockLayout) {
  // SD 1.5's layout: 4 levels, 2 resnets, attention on the first three
  UNetConfig c;
  std::vector<std::string> paths = {
      "input_blocks.4.1.proj_in",         "output_blocks.11.0.in_layers.2",
      "middle_block.1.proj_out",          "output_blocks.2.1.conv",
      "output_blocks.5.2.conv",           "input_blocks.3.0.op",
      "input_blocks.1.0.skip_connection", "output_blocks.3.1.transformer_blocks.0.attn1.to_out.0"};
  const auto names = lora_unet_names(c, paths);
  const std::map<std::string, std::string> expected = {
      {"lora_unet_down_blocks_1_attentions_0_proj_in", "input_blocks.4.1.proj_in"},
      {"lora_unet_up_blocks_3_resnets_2_conv1", "output_blocks.11.0.in_layers.2"},
      {"lora_unet_mid_block_attentions_0_proj_out", "middle_block.1.proj_out"},
      {"lora_unet_up_blocks_0_upsamplers_0_conv", "output_blocks.2.1.conv"},
      {"lora_unet_up_blocks_1_upsamplers_0_conv", "output_blocks.5.2.conv"},
      {"lora_unet_down_blocks_0_downsamplers_0_conv", "input_blocks.3.0.op"},
      {"lora_unet_down_blocks_0_resnets_0_conv_shortcut", "input_blocks.1.0.skip_connection"},
      {"lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0",
       "output_blocks.3.1.transformer_blocks.0.attn1.to_out.0"},
      // LDM-named keys resolve too (A1111's second lookup)
      {"lora_unet_input_blocks_4_1_proj_in", "input_blocks.4.1.proj_in"}};
  for (const auto& [kohya, path] : expected) {
    ASSERT_TRUE(names.count(kohya)) << kohya;
    EXPECT_EQ(names.at(kohya), path) << kohya;
  }
}

TEST(Lora, PatchesAsNetworkLoraAndRestoresThePristineModel) {
  torch::NoGradGuard no_grad;
  LoadOptions o;
  o.model_path = ref("tiny-sd1.safetensors");
  LoadedModel model = load_model(o);
  const auto before = snapshot(model);
  LoraPatcher patcher(model);
  const auto pastel = read_lora(lora_file("pastelwave"));
  const auto grain = read_lora(lora_file("grainfilm"));
  std::vector<std::string> warnings;
  auto warn = [&](const std::string& w) { warnings.push_back(w); };
  EXPECT_TRUE(patcher.apply({{"pastelwave", pastel, 0.4, 0.9}}, warn));
  EXPECT_TRUE(warnings.empty()) << "every public LoRA key names a layer: " << warnings.at(0);
  EXPECT_EQ(patcher.last_rewritten(), 120u);
  // a UNet layer: W0 + (up @ down) * (alpha / rank) * unet multiplier, in float32
  auto params = model.unet->named_parameters();
  for (const auto& l : pastel->layers) {
    if (l.name != "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q") continue;
    auto expected = before.at("unet.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight") +
                    l.up.matmul(l.down).mul(l.scale()).mul(0.9);
    EXPECT_TRUE(
        torch::equal(params["input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"], expected));
  }
  auto text = std::dynamic_pointer_cast<torch::nn::Module>(model.text)->named_parameters();
  for (const auto& l : pastel->layers) {
    if (l.name != "lora_te_text_model_encoder_layers_1_mlp_fc2") continue;
    auto expected = before.at("text.encoder.layers.1.mlp.fc2.weight") +
                    l.up.matmul(l.down).mul(l.scale()).mul(0.4);
    EXPECT_TRUE(torch::equal(text["encoder.layers.1.mlp.fc2.weight"], expected));
  }
  // the same set again: nothing to do; another set: only the layers of either rewritten
  EXPECT_FALSE(patcher.apply({{"pastelwave", pastel, 0.4, 0.9}}, warn));
  EXPECT_EQ(patcher.last_rewritten(), 0u);
  patcher.apply({{"pastelwave", pastel, 0.4, 0.9}, {"grainfilm", grain, -0.8, -0.8}}, warn);
  // grainfilm names some layers in LDM style (lora_unet_input_blocks_5_1_...) that pastelwave
  // names in diffusers style: one model layer each
  std::set<std::string> either;
  const auto names = lora_unet_names(model.config.unet, [&] {
    std::vector<std::string> paths;
    for (const auto& p : model.unet->named_parameters())
      if (p.value().dim() >= 2) paths.push_back(p.key().substr(0, p.key().size() - 7));
    return paths;
  }());
  for (const auto* f : {pastel.get(), grain.get()})
    for (const auto& l : f->layers) either.insert(names.count(l.name) ? names.at(l.name) : l.name);
  EXPECT_EQ(patcher.last_rewritten(), either.size());
  patcher.apply({{"grainfilm", grain, -0.8, -0.8}}, warn);
  EXPECT_EQ(patcher.last_rewritten(), either.size()) << "pastelwave's layers restored";
  EXPECT_TRUE(patcher.apply({}, warn)) << "text weights restored";
  const auto after = snapshot(model);
  for (const auto& [name, t] : before)
    ASSERT_TRUE(torch::equal(t, after.at(name))) << name << " is not the pristine weight";
}

TEST(Lora, DiffusersAndPeftKeyStylesReadAsKohyas) {
  // pastelwave rewritten with diffusers / PEFT names: unet.<dotted path>.lora_A / lora_B and
  // text_encoder.<path>.lora.down / .lora.up (alpha kept as <path>.alpha)
  const auto kohya = read_lora(lora_file("pastelwave"));
  std::map<std::string, torch::Tensor> peft;
  for (const auto& l : kohya->layers) {
    std::string prefix, rest;
    if (l.name.rfind("lora_unet_", 0) == 0) {
      prefix = "unet.";
      rest = l.name.substr(10);
    } else {
      prefix = "text_encoder.";
      rest = l.name.substr(8);
    }
    // the layer's dotted path: known words keep their underscores
    std::string path = rest;
    std::replace(path.begin(), path.end(), '_', '.');
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"down.blocks", "down_blocks"},
             {"up.blocks", "up_blocks"},
             {"mid.block", "mid_block"},
             {"transformer.blocks", "transformer_blocks"},
             {"proj.in", "proj_in"},
             {"proj.out", "proj_out"},
             {"to.q", "to_q"},
             {"to.k", "to_k"},
             {"to.v", "to_v"},
             {"to.out", "to_out"},
             {"ff.net", "ff_net"},
             {"text.model", "text_model"},
             {"self.attn", "self_attn"},
             {"q.proj", "q_proj"},
             {"k.proj", "k_proj"},
             {"v.proj", "v_proj"},
             {"out.proj", "out_proj"}})
      for (size_t at; (at = path.find(from)) != std::string::npos;)
        path.replace(at, from.size(), to);
    const bool text = prefix == "text_encoder.";
    peft[prefix + path + (text ? ".lora.down.weight" : ".lora_A.weight")] = l.down;
    peft[prefix + path + (text ? ".lora.up.weight" : ".lora_B.weight")] = l.up;
    peft[prefix + path + ".alpha"] = torch::tensor(static_cast<float>(l.alpha));
  }
  const auto dir = fs::temp_directory_path() / ("sdgen-peft-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  save_tensors((dir / "peft.safetensors").string(), peft);
  const auto read = read_lora((dir / "peft.safetensors").string());
  fs::remove_all(dir);
  ASSERT_EQ(read->layers.size(), kohya->layers.size());
  EXPECT_TRUE(read->unsupported.empty());
  std::map<std::string, const LoraLayer*> by_name;
  for (const auto& l : read->layers) by_name[l.name] = &l;
  for (const auto& l : kohya->layers) {
    ASSERT_TRUE(by_name.count(l.name)) << l.name;
    EXPECT_TRUE(torch::equal(by_name[l.name]->up, l.up)) << l.name;
    EXPECT_EQ(by_name[l.name]->alpha, l.alpha);
  }
}

class LoraCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("sdgen-lora-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string path(const std::string& name) { return (dir / name).string(); }
  std::vector<std::string> args(const std::string& prompt, const std::string& out) {
    auto a = check_args(ref("tiny-sd1.safetensors"), ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"),
                        prompt, out);
    a[9] = "3";  // --steps
    a.insert(a.end(), {"--lora-dir", fs::path(lora_file("x")).parent_path().string()});
    return a;
  }
  fs::path dir;
};

TEST_F(LoraCli, UnknownNamesFailBeforeLoadingNamingTheLineAndFolders) {
  std::ofstream(path("p.txt")) << "a cat\na dog <lora:nosuch:0.5>\n";
  auto a = args("", path("o/{index}.png"));
  a[4] = "--prompt-file";
  a[5] = path("p.txt");
  const auto r = run_sdgen(a, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("p.txt:2: LoRA 'nosuch': no nosuch.safetensors in "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("conformance/lora/loras"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("o")));
}

TEST_F(LoraCli, MixedLinesGiveTheImagesOfSeparateRuns) {
  const std::vector<std::string> prompts = {"a cat <lora:pastelwave:0.8>", "a cat",
                                            "a cat, <lora:grainfilm:1.2:0>",
                                            "a cat <lora:pastelwave:0.8>"};
  std::ofstream file(path("p.jsonl"));
  for (const auto& p : prompts) file << nlohmann::json{{"prompt", p}}.dump() << "\n";
  file << nlohmann::json{{"prompt", "a cat"}, {"loras", {{"pastelwave", 0.8}}}}.dump() << "\n";
  file.close();
  auto a = args("", path("batch/{index}.png"));
  a[4] = "--prompt-file";
  a[5] = path("p.jsonl");
  a.push_back("--json");
  const auto r = run_sdgen(a, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<nlohmann::json> records;
  while (std::getline(lines, line)) records.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[0]["loras"], (nlohmann::json{{"pastelwave", "6a6e4d668f92"}}));
  EXPECT_TRUE(records[1]["loras"].empty());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto single = path("single" + std::to_string(i) + ".png");
    ASSERT_EQ(run_sdgen(args(prompts[i], single), dir).status, 0);
    EXPECT_EQ(read_file_bytes(single), read_file_bytes(path("batch/" + std::to_string(i) + ".png")))
        << prompts[i];
  }
  // the jsonl "loras" key works as the tag: its infotext carries the tag and the hash
  const auto text = png_text_chunks(read_file_bytes(path("batch/4.png"))).at("parameters");
  EXPECT_EQ(text.rfind("a cat <lora:pastelwave:0.8>\n", 0), 0u) << text;
  EXPECT_NE(text.find("Lora hashes: \"pastelwave: 6a6e4d668f92\""), std::string::npos) << text;
  const auto line0 = png_text_chunks(read_file_bytes(path("batch/0.png"))).at("parameters");
  EXPECT_NE(line0.find("Lora hashes: \"pastelwave: 6a6e4d668f92\""), std::string::npos) << line0;
}

}  // namespace
}  // namespace sdgen::test
