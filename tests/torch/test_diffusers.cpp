// diffusers folders: the reference folder (converted from tiny-sd1.safetensors by diffusers'
// convert_ldm_*_checkpoint) loads to the single file's tensors, also as an fp16 variant and as
// shards made here; the name tables for the tiny layout and SD 1.5's; a strict load; errors
// through the binary; the same image as the single file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "sdgen/io/image_read.h"
#include "sdgen/loading/diffusers_names.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Tensors = std::map<std::string, torch::Tensor>;

const char* const kWeights[][2] = {{"unet", "diffusion_pytorch_model"},
                                   {"vae", "diffusion_pytorch_model"},
                                   {"text_encoder", "model"}};

std::string reference_folder() { return ref("diffusers/tiny-sd1"); }

// Every parameter and buffer of a module, by name.
Tensors state(torch::nn::Module& m) {
  Tensors out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value();
  return out;
}

// `a` and `b` hold the same names and, after `cast` of b's tensors, equal tensors.
void expect_same(torch::nn::Module& a, torch::nn::Module& b, const char* what,
                 torch::ScalarType cast = torch::kFloat) {
  const auto sa = state(a), sb = state(b);
  ASSERT_EQ(sa.size(), sb.size()) << what;
  for (const auto& [name, t] : sa) {
    ASSERT_TRUE(sb.count(name)) << what << " " << name;
    EXPECT_TRUE(torch::equal(t, sb.at(name).to(cast).to(t.scalar_type()))) << what << " " << name;
  }
}

void expect_same_model(LoadedModel& a, LoadedModel& b, torch::ScalarType cast = torch::kFloat) {
  expect_same(a.text->module(), b.text->module(), "text encoder", cast);
  expect_same(*a.unet, *b.unet, "unet", cast);
  expect_same(*a.vae, *b.vae, "vae", cast);
}

LoadedModel load(const std::string& model, const std::string& vae = "") {
  LoadOptions o;
  o.model_path = model;
  o.vae_path = vae;
  return load_model(o);
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

class DiffusersFolders : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("sdgen-diffusers-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  // A copy of the reference folder: JSON files copied (to be edited), the rest linked; the
  // components in `skip_weights` get no weights (the test writes its own).
  fs::path copy_reference(const std::string& name, const std::set<std::string>& skip_weights = {}) {
    const fs::path src = reference_folder(), dst = dir / name;
    for (const auto& e : fs::recursive_directory_iterator(src)) {
      const fs::path to = dst / e.path().lexically_relative(src);
      if (e.is_directory()) {
        fs::create_directories(to);
      } else if (e.path().extension() == ".json") {
        fs::create_directories(to.parent_path());
        fs::copy_file(e.path(), to);
      } else if (!(e.path().extension() == ".safetensors" &&
                   skip_weights.count(e.path().parent_path().filename().string()))) {
        fs::create_directories(to.parent_path());
        fs::create_symlink(e.path(), to);
      }
    }
    return dst;
  }
  static json read(const fs::path& p) { return json::parse(std::ifstream(p)); }
  static void write(const fs::path& p, const json& j) { std::ofstream(p) << j.dump(2); }
  // sdgen run on `model` (its own tokenizer unless `tokenizer`), the result and the image path.
  RunResult run(const std::string& model, const std::string& out,
                const std::string& tokenizer = "") {
    auto args = check_args(model, tokenizer, "a red fox in the snow", (dir / out).string());
    if (tokenizer.empty()) args.erase(args.begin() + 2, args.begin() + 4);
    return run_sdgen(args, dir);
  }
  fs::path dir;
};

TEST_F(DiffusersFolders, FolderLoadsTheSingleFilesTensors) {
  auto single = load(ref("tiny-sd1.safetensors"));
  auto folder = load(reference_folder());
  EXPECT_EQ(folder.family->name, "sd1");
  expect_same_model(single, folder);
  // the configs from config.json agree with the reference JSON beside the single file
  const auto &a = single.config, &b = folder.config;
  EXPECT_EQ(b.text.heads, a.text.heads);
  EXPECT_EQ(b.text.activation, "quick_gelu");
  EXPECT_EQ(b.unet.num_heads, a.unet.num_heads);
  EXPECT_EQ(b.unet.num_head_channels, -1);
  EXPECT_EQ(b.unet.channel_mult, a.unet.channel_mult);
  EXPECT_EQ(b.unet.attention_resolutions, (std::vector<int>{1, 2}));
  EXPECT_EQ(b.vae.ch_mult, a.vae.ch_mult);
  EXPECT_EQ(b.vae.num_res_blocks, a.vae.num_res_blocks);
  EXPECT_DOUBLE_EQ(b.vae.scale_factor, 0.18215);
  EXPECT_EQ(b.schedule.type, "scaled_linear");
  EXPECT_DOUBLE_EQ(b.schedule.beta_end, 0.012);
  EXPECT_EQ(b.prediction, "eps");
  EXPECT_EQ(b.native_size, 64);  // sample_size 8 x the VAE's factor 8
}

TEST_F(DiffusersFolders, SchedulerConfigGivesBetasAndPrediction) {
  const auto root = copy_reference("v");
  auto scheduler = read(root / "scheduler/scheduler_config.json");
  scheduler["prediction_type"] = "v_prediction";
  scheduler["beta_schedule"] = "linear";
  scheduler["beta_end"] = 0.02;
  write(root / "scheduler/scheduler_config.json", scheduler);
  LoadOptions o;
  o.model_path = root.string();
  const auto info = inspect_model(o);
  EXPECT_EQ(info.config.prediction, "v");
  EXPECT_EQ(info.config.schedule.type, "linear");
  EXPECT_DOUBLE_EQ(info.config.schedule.beta_end, 0.02);
  EXPECT_EQ(info.hash_file, (root / "unet/diffusion_pytorch_model.safetensors").string());
  scheduler["beta_schedule"] = "squaredcos_cap_v2";
  write(root / "scheduler/scheduler_config.json", scheduler);
  try {
    inspect_model(o);
    FAIL() << "accepted a cosine schedule";
  } catch (const CheckpointError& e) {
    EXPECT_TRUE(
        contains(e.what(), "scheduler_config.json: 'beta_schedule' is \"squaredcos_cap_v2\""))
        << e.what();
  }
}

TEST_F(DiffusersFolders, Fp16VariantLoadsAsTheCastTensors) {
  const auto root = copy_reference("fp16", {"unet", "vae", "text_encoder"});
  for (const auto& [part, base] : kWeights) {
    Tensors half;
    for (const auto& [k, t] :
         load_tensors(reference_folder() + "/" + part + "/" + base + ".safetensors"))
      half[k] = t.to(torch::kHalf);
    save_tensors((root / part / (std::string(base) + ".fp16.safetensors")).string(), half);
  }
  auto single = load(ref("tiny-sd1.safetensors"));
  auto folder = load(root.string());
  expect_same_model(folder, single, torch::kHalf);
  EXPECT_TRUE(contains(folder.notes.front(), "unet/diffusion_pytorch_model.fp16.safetensors"))
      << folder.notes.front();
}

// The weights of `part` as two shards and their index; `drop` is left out of the second shard
// (but still listed there).
void shard(const fs::path& root, const std::string& part, const std::string& base,
           const std::string& drop = "") {
  Tensors shards[2];
  json map = json::object();
  int i = 0;
  for (const auto& [k, t] :
       load_tensors(reference_folder() + "/" + part + "/" + base + ".safetensors")) {
    const int s = k == drop ? 1 : i++ % 2;
    map[k] = base + "-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
    if (k != drop) shards[s][k] = t;
  }
  for (int s = 0; s < 2; ++s)
    save_tensors(
        (root / part / (base + "-0000" + std::to_string(s + 1) + "-of-00002.safetensors")).string(),
        shards[s]);
  std::ofstream(root / part / (base + ".safetensors.index.json"))
      << json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump(2);
}

TEST_F(DiffusersFolders, ShardedFolderLoadsIdentically) {
  const auto root = copy_reference("sharded", {"unet", "text_encoder"});
  shard(root, "unet", "diffusion_pytorch_model");
  shard(root, "text_encoder", "model");
  auto single = load(ref("tiny-sd1.safetensors"));
  auto folder = load(root.string());
  expect_same_model(single, folder);
  EXPECT_TRUE(contains(folder.notes.front(), "unet/diffusion_pytorch_model.safetensors.index.json"))
      << folder.notes.front();
}

TEST_F(DiffusersFolders, VaeFolderReplacesTheCheckpointsVae) {
  auto single = load(ref("tiny-sd1.safetensors"));
  for (const std::string& vae : {reference_folder() + "/vae", reference_folder()}) {
    auto m = load(ref("tiny-sd1.safetensors"), vae);
    expect_same(*single.vae, *m.vae, "vae");
  }
  // diffusers < 0.14's attention names (query, key, value, proj_attn) load the same
  const auto root = copy_reference("legacy", {"vae"});
  Tensors renamed;
  for (const auto& kv :
       load_tensors(reference_folder() + "/vae/diffusion_pytorch_model.safetensors")) {
    std::string k = kv.first;
    for (const auto& [from, to] : {std::pair<std::string, std::string>{".to_q.", ".query."},
                                   {".to_k.", ".key."},
                                   {".to_v.", ".value."},
                                   {".to_out.0.", ".proj_attn."}})
      if (auto at = k.find(from); at != std::string::npos) k.replace(at, from.size(), to);
    renamed[k] = kv.second;
  }
  save_tensors((root / "vae/diffusion_pytorch_model.safetensors").string(), renamed);
  auto legacy = load(root.string());
  expect_same(*single.vae, *legacy.vae, "legacy vae");
}

TEST_F(DiffusersFolders, StrictLoadReportsEveryProblemTogether) {
  const auto root = copy_reference("broken", {"unet", "vae"});
  auto unet = load_tensors(reference_folder() + "/unet/diffusion_pytorch_model.safetensors");
  unet.erase("conv_in.bias");
  unet["extra.weight"] = torch::zeros({2});
  save_tensors((root / "unet/diffusion_pytorch_model.safetensors").string(), unet);
  auto vae = load_tensors(reference_folder() + "/vae/diffusion_pytorch_model.safetensors");
  // a 1x1 convolution's shape where diffusers stores a Linear weight: refused, not reshaped
  auto& q = vae["encoder.mid_block.attentions.0.to_q.weight"];
  q = q.reshape({q.size(0), q.size(1), 1, 1});
  save_tensors((root / "vae/diffusion_pytorch_model.safetensors").string(), vae);
  try {
    load(root.string());
    FAIL() << "loaded";
  } catch (const CheckpointError& e) {
    const std::string m = e.what();
    EXPECT_TRUE(contains(m, "1 missing, 1 unexpected, 1 mis-shaped")) << m;
    EXPECT_TRUE(contains(m, "unet/conv_in.bias")) << m;
    EXPECT_TRUE(contains(m, "unet/extra.weight")) << m;
    EXPECT_TRUE(contains(m,
                         "vae/encoder.mid_block.attentions.0.to_q.weight: file [64, 64, 1, 1], "
                         "model [64, 64, 1, 1] (stored as a Linear weight [64, 64])"))
        << m;
    EXPECT_TRUE(contains(m, "SD 1.x diffusers folder")) << m;
  }
}

TEST(DiffusersNames, TinyLayoutCoversEveryTensorOfTheFolder) {
  const auto& c = tiny_sd1().config;
  const auto& single = ref_tensors("tiny-sd1.safetensors");
  struct Part {
    std::string file, ldm_prefix;
    DiffusersNameTable table;
  };
  const Part parts[] = {
      {"unet/diffusion_pytorch_model.safetensors", "model.diffusion_model.",
       unet_diffusers_to_ldm(c.unet)},
      {"vae/diffusion_pytorch_model.safetensors", "first_stage_model.",
       vae_diffusers_to_ldm(c.vae)},
      {"text_encoder/model.safetensors", "cond_stage_model.transformer.text_model.",
       clip_diffusers_to_ldm(c.text)}};
  for (const auto& p : parts) {
    for (const auto& [key, t] : load_tensors(reference_folder() + "/" + p.file)) {
      const std::string ldm = diffusers_to_ldm(p.table, key);
      ASSERT_FALSE(ldm.empty()) << key;
      const auto it = single.find(p.ldm_prefix + ldm);
      ASSERT_NE(it, single.end()) << key << " -> " << ldm;
      EXPECT_TRUE(torch::equal(t, it->second.reshape(t.sizes()))) << key;
      EXPECT_EQ(ldm_to_diffusers(p.table, ldm), key);
    }
  }
  // the tiny layout: 2 levels, both with attention, 2 resnets each
  const auto unet = unet_diffusers_to_ldm(c.unet);
  EXPECT_EQ(diffusers_to_ldm(unet, "down_blocks.0.attentions.1."), "input_blocks.2.1.");
  EXPECT_EQ(diffusers_to_ldm(unet, "down_blocks.0.downsamplers.0.conv"), "input_blocks.3.0.op");
  EXPECT_EQ(diffusers_to_ldm(unet, "up_blocks.0.upsamplers.0.conv."), "output_blocks.2.2.conv.");
  EXPECT_EQ(diffusers_to_ldm(unet, "up_blocks.1.upsamplers.0.conv."), "");
  const auto clip = clip_diffusers_to_ldm(c.text);
  EXPECT_EQ(diffusers_to_ldm(clip, "text_model.encoder.layers.1.mlp.fc1"),
            "encoder.layers.1.mlp.fc1");
  EXPECT_EQ(diffusers_to_ldm(clip, "text_model.encoder.layers.2.mlp.fc1"), "");  // 2 layers
}

TEST(DiffusersNames, Sd15StandardLayout) {
  const UNetConfig sd15;  // the defaults: channel_mult {1, 2, 4, 4}, 2 res blocks, attention 4 2 1
  const auto t = unet_diffusers_to_ldm(sd15);
  const std::pair<const char*, const char*> known[] = {
      {"conv_in.", "input_blocks.0.0."},
      {"time_embedding.linear_2.", "time_embed.2."},
      {"down_blocks.0.resnets.0.conv1.", "input_blocks.1.0.in_layers.2."},
      {"down_blocks.0.attentions.1.", "input_blocks.2.1."},
      {"down_blocks.0.downsamplers.0.conv.", "input_blocks.3.0.op."},
      {"down_blocks.1.attentions.0.", "input_blocks.4.1."},
      {"down_blocks.1.resnets.0.conv_shortcut.", "input_blocks.4.0.skip_connection."},
      {"down_blocks.3.resnets.1.time_emb_proj.", "input_blocks.11.0.emb_layers.1."},
      {"mid_block.resnets.0.norm1.", "middle_block.0.in_layers.0."},
      {"mid_block.attentions.0.", "middle_block.1."},
      {"mid_block.resnets.1.conv2.", "middle_block.2.out_layers.3."},
      {"up_blocks.0.resnets.2.", "output_blocks.2.0."},
      {"up_blocks.0.upsamplers.0.conv.", "output_blocks.2.1.conv."},  // no attention there
      {"up_blocks.1.attentions.2.", "output_blocks.5.1."},
      {"up_blocks.1.upsamplers.0.conv.", "output_blocks.5.2.conv."},  // behind the attention
      {"up_blocks.3.resnets.2.", "output_blocks.11.0."},
      {"up_blocks.3.resnets.2.norm2.", "output_blocks.11.0.out_layers.0."},
      {"conv_norm_out.", "out.0."},
      {"conv_out.", "out.2."}};
  for (const auto& [d, l] : known) {
    EXPECT_EQ(diffusers_to_ldm(t, d), l) << d;
    EXPECT_EQ(ldm_to_diffusers(t, l), d) << l;
  }
  // kohya LoRA names are these paths: a module name of the model and its diffusers path
  EXPECT_EQ(ldm_to_diffusers(t, "input_blocks.4.1.transformer_blocks.0.attn1.to_q"),
            "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q");
  EXPECT_EQ(diffusers_to_ldm(t, "down_blocks.3.attentions.0."), "");  // level 3: no attention
  EXPECT_EQ(diffusers_to_ldm(t, "up_blocks.3.upsamplers.0.conv."), "");
  EXPECT_EQ(diffusers_to_ldm(t, "add_embedding.linear_1."), "");  // no label_emb in SD 1.5
  const auto clip = clip_diffusers_to_ldm(ClipTextConfig{});
  EXPECT_EQ(diffusers_to_ldm(clip, "text_model.encoder.layers.11.self_attn.q_proj.weight"),
            "encoder.layers.11.self_attn.q_proj.weight");
  EXPECT_EQ(ldm_to_diffusers(clip, "final_layer_norm.bias"), "text_model.final_layer_norm.bias");
  // the VAE: the decoder counts its levels from the deepest
  const auto vae = vae_diffusers_to_ldm(VaeConfig{});
  EXPECT_EQ(diffusers_to_ldm(vae, "decoder.up_blocks.0.resnets.2.conv1."),
            "decoder.up.3.block.2.conv1.");
  EXPECT_EQ(diffusers_to_ldm(vae, "decoder.up_blocks.0.upsamplers.0.conv."),
            "decoder.up.3.upsample.conv.");
  EXPECT_EQ(diffusers_to_ldm(vae, "encoder.down_blocks.1.resnets.0.conv_shortcut."),
            "encoder.down.1.block.0.nin_shortcut.");
  EXPECT_EQ(diffusers_to_ldm(vae, "decoder.mid_block.attentions.0.to_out.0."),
            "decoder.mid.attn_1.proj_out.");
  EXPECT_TRUE(vae_attention_is_linear("decoder.mid.attn_1.proj_out."));
  EXPECT_FALSE(vae_attention_is_linear("decoder.mid.attn_1.norm."));
}

TEST_F(DiffusersFolders, BinaryGivesTheSingleFilesImage) {
  // the folder's own tokenizer/ (vocab.json, merges.txt) against the CLIP vocabulary file
  auto r = run(reference_folder(), "folder.png");
  ASSERT_EQ(r.status, 0) << r.err;
  r = run(ref("tiny-sd1.safetensors"), "single.png",
          ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto a = read_image_rgb((dir / "folder.png").string());
  const auto b = read_image_rgb((dir / "single.png").string());
  EXPECT_EQ(a.pixels, b.pixels);
}

TEST_F(DiffusersFolders, BrokenFoldersNameTheFileThroughTheBinary) {
  auto expect_error = [&](const fs::path& model, const std::string& message) {
    const auto r = run(model.string(), "x.png");
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_TRUE(contains(r.err, message)) << r.err;
  };
  auto root = copy_reference("no-unet");
  fs::remove_all(root / "unet");
  expect_error(root, (root / "unet").string() + ": missing; model_index.json lists the unet");

  root = copy_reference("no-config");
  fs::remove(root / "unet/config.json");
  expect_error(root, (root / "unet/config.json").string() + ": missing");

  root = copy_reference("no-scheduler-config");
  fs::remove(root / "scheduler/scheduler_config.json");
  expect_error(root, (root / "scheduler/scheduler_config.json").string() + ": missing");

  for (const auto& [cls, says] : {std::pair<std::string, std::string>{"FluxPipeline", "Flux"},
                                  {"StableDiffusionXLPipeline", "SDXL"}}) {
    root = copy_reference("class-" + cls);
    auto index = read(root / "model_index.json");
    index["_class_name"] = cls;
    write(root / "model_index.json", index);
    expect_error(root, (root / "model_index.json").string() + ": _class_name \"" + cls + "\"");
    expect_error(root, says);
  }

  root = copy_reference("sd2-text", {});
  auto text = read(root / "text_encoder/config.json");
  text["hidden_act"] = "gelu";
  write(root / "text_encoder/config.json", text);
  expect_error(root, (root / "text_encoder/config.json").string() + ": hidden_act \"gelu\"");

  root = copy_reference("bad-heads");
  auto unet = read(root / "unet/config.json");
  unet["attention_head_dim"] = 3;
  write(root / "unet/config.json", unet);
  expect_error(root, (root / "unet/config.json").string() + ": 'attention_head_dim' gives 3 heads");

  root = copy_reference("shard-lacks-a-tensor", {"unet"});
  shard(root, "unet", "diffusion_pytorch_model", "conv_out.weight");
  expect_error(root, (root / "unet/diffusion_pytorch_model-00002-of-00002.safetensors").string() +
                         ": no tensor 'conv_out.weight', which the index places there");

  root = copy_reference("pickle", {"unet"});
  std::ofstream(root / "unet/diffusion_pytorch_model.bin") << "pickle";
  expect_error(root, "unet/diffusion_pytorch_model.bin: PyTorch pickle weights");

  fs::create_directories(dir / "plain");
  expect_error(dir / "plain", "is a folder without model_index.json");
}

}  // namespace
}  // namespace sdgen::test
