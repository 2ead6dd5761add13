// diffusers folders: model_index.json, the components' weights (one file, the fp16 variant or
// shards with their index), the KeyMaps that name them for the LDM module trees.
#include "diffusers_folder.h"

#include <algorithm>
#include <map>
#include <set>

#include "sdgen/loading/diffusers_names.h"

namespace sdgen::diffusers {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// One component's weights: a file, or the shards an index names.
struct Weights {
  std::vector<std::string> files;
  std::string index;                              // "" for one file
  std::map<std::string, std::string> weight_map;  // tensor -> shard path (sharded only)
};

Weights read_index(const fs::path& index) {
  const json j = read_config(index, "the index of sharded weights ({\"weight_map\": {...}})");
  Weights w;
  w.index = index.string();
  auto map = j.find("weight_map");
  if (map == j.end() || !map->is_object() || map->empty())
    throw CheckpointError(w.index +
                          ": no \"weight_map\" {tensor name: shard file}; an index of sharded "
                          "weights names the shard of every tensor");
  std::set<std::string> shards;
  for (const auto& [key, value] : map->items()) {
    const std::string name = value.is_string() ? value.get<std::string>() : "";
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      throw CheckpointError(w.index + ": weight_map places '" + key + "' in " + value.dump() +
                            "; shards are file names beside the index");
    const std::string shard = (index.parent_path() / name).string();
    w.weight_map[key] = shard;
    shards.insert(shard);
  }
  for (const auto& shard : shards)
    if (!is_file(shard))
      throw CheckpointError(shard + ": missing; " + w.index + " places tensors in this shard");
  w.files.assign(shards.begin(), shards.end());
  return w;
}

// The weights `base` in `folder`: base.safetensors, its shards, then the fp16 variant (file or
// shards). diffusers loads the plain files unless asked for a variant; the fp16 files are what
// a folder may ship alone.
Weights find_weights(const fs::path& folder, const std::string& base, const std::string& pickle,
                     const std::string& what) {
  for (const std::string variant : {"", ".fp16"}) {
    const fs::path file = folder / (base + variant + ".safetensors");
    if (is_file(file)) return {{file.string()}, "", {}};
    const fs::path index = folder / (base + variant + ".safetensors.index.json");
    if (is_file(index)) return read_index(index);
  }
  for (const std::string& name : {pickle + ".bin", pickle + ".fp16.bin"})
    if (is_file(folder / name))
      throw CheckpointError((folder / name).string() +
                            ": PyTorch pickle weights; sdgen reads .safetensors weights only (" +
                            base +
                            ".safetensors), which cannot run code when loaded: convert the "
                            "folder's weights to safetensors");
  throw CheckpointError((folder / (base + ".safetensors")).string() + ": missing (nor " + base +
                        ".fp16.safetensors, nor a sharded " + base + ".safetensors.index.json); " +
                        what);
}

// Every tensor where its index says, and nothing the index does not list; all problems at once.
void check_shards(const TensorSource& s, const std::string& prefix, const Weights& w) {
  if (w.index.empty()) return;
  std::vector<std::string> problems;
  for (const auto& [key, shard] : w.weight_map) {
    const std::string k = prefix + key;
    if (!s.find(k))
      problems.push_back(shard + ": no tensor '" + key + "', which the index places there");
    else if (s.file_of(k)->path() != shard)
      problems.push_back("'" + key + "' is in " + s.file_of(k)->path() +
                         ", but the index places it in " + shard);
  }
  const std::set<std::string> shards(w.files.begin(), w.files.end());
  for (const auto& k : s.names())
    if (k.compare(0, prefix.size(), prefix) == 0 && shards.count(s.file_of(k)->path()) &&
        !w.weight_map.count(k.substr(prefix.size())))
      problems.push_back(s.file_of(k)->path() + ": holds '" + k.substr(prefix.size()) +
                         "', which the index does not list");
  if (problems.empty()) return;
  std::string msg = w.index + ": the shards do not match the index (" +
                    std::to_string(problems.size()) + " problems)";
  for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  " + problems[i];
  if (problems.size() > 20) msg += "\n  ... and " + std::to_string(problems.size() - 20) + " more";
  throw CheckpointError(msg);
}

// Rules from a name table: each LDM prefix to its diffusers key under `prefix`, and everything
// else under `prefix` as named (so that the component's unknown keys are "unexpected").
KeyMap key_map(const DiffusersNameTable& table, const std::string& prefix, bool vae) {
  std::vector<KeyMap::Rule> rules{{"", prefix}};
  for (const auto& [diffusers, ldm] : table)
    rules.push_back({ldm, prefix + diffusers, vae && vae_attention_is_linear(ldm)});
  return KeyMap(std::move(rules));
}

// diffusers < 0.14 named the VAE attention query / key / value / proj_attn.
bool legacy_vae_attention(const TensorSource& s, const std::string& prefix) {
  return s.find(prefix + "encoder.mid_block.attentions.0.query.weight") != nullptr;
}

std::string relative(const std::string& file, const fs::path& root) {
  return fs::path(file).lexically_relative(root).string();
}

const char* const kPipelines[] = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                                  "StableDiffusionInpaintPipeline"};

// What an unsupported pipeline class is, for the error.
std::string pipeline_hint(const std::string& cls) {
  if (cls.rfind("StableDiffusionXL", 0) == 0)
    return "an SDXL pipeline (two text encoders); sdgen runs SDXL from single-file checkpoints "
           "(sd_xl_base_1.0.safetensors), not from diffusers folders yet";
  if (cls.rfind("Flux", 0) == 0) return "a Flux pipeline, which sdgen does not run";
  if (cls.rfind("StableDiffusion3", 0) == 0) return "an SD 3 pipeline, which sdgen does not run";
  return "a pipeline sdgen does not read";
}

}  // namespace

bool is_pipeline_folder(const std::string& path) {
  return is_dir(path) && is_file(fs::path(path) / "model_index.json");
}

void inspect_pipeline(const std::string& dir, const json* overrides, ModelInfo& info) {
  const fs::path root(dir);
  const std::string index_file = (root / "model_index.json").string();
  const json index = read_config(index_file, "a diffusers pipeline folder's description");
  const auto cls_it = index.find("_class_name");
  const std::string cls =
      cls_it != index.end() && cls_it->is_string() ? cls_it->get<std::string>() : "(none)";
  if (std::find(std::begin(kPipelines), std::end(kPipelines), cls) == std::end(kPipelines))
    throw CheckpointError(index_file + ": _class_name \"" + cls + "\" is " + pipeline_hint(cls) +
                          "; sdgen reads diffusers folders of StableDiffusionPipeline (SD 1.x, "
                          "and its img2img and inpainting variants)");
  struct Part {
    const char* name;
    const char* library;
    const char* cls;
  };
  for (const Part& p : {Part{"unet", "diffusers", "UNet2DConditionModel"},
                        Part{"vae", "diffusers", "AutoencoderKL"},
                        Part{"text_encoder", "transformers", "CLIPTextModel"},
                        Part{"scheduler", "diffusers", ""}}) {
    auto it = index.find(p.name);
    const bool listed = it != index.end() && it->is_array() && it->size() == 2 &&
                        (*it)[0].is_string() && (*it)[1].is_string();
    const std::string what = std::string(p.name) + (*p.cls ? std::string(" (") + p.cls + ")" : "");
    if (!listed)
      throw CheckpointError(index_file + ": no \"" + p.name + "\" component [\"" + p.library +
                            "\", \"" + (*p.cls ? p.cls : "...Scheduler") +
                            "\"]; a StableDiffusionPipeline has unet (UNet2DConditionModel), vae "
                            "(AutoencoderKL), text_encoder (CLIPTextModel), tokenizer and "
                            "scheduler");
    if (*p.cls && (*it)[1] != p.cls)
      throw CheckpointError(index_file + ": the " + p.name + " component is " + it->dump() +
                            "; sdgen reads [\"" + p.library + "\", \"" + p.cls + "\"]");
    if (!is_dir(root / p.name))
      throw CheckpointError((root / p.name).string() + ": missing; model_index.json lists the " +
                            what + " component, whose files belong in this folder");
  }

  ModelConfig& c = info.config;
  const std::string unet_json = (root / "unet" / "config.json").string();
  const std::string vae_json = (root / "vae" / "config.json").string();
  const std::string text_json = (root / "text_encoder" / "config.json").string();
  const std::string scheduler_json = (root / "scheduler" / "scheduler_config.json").string();
  int sample_size = 0;
  c.unet = unet_config(read_config(unet_json, "the UNet2DConditionModel config"), unet_json,
                       &sample_size);
  c.vae = vae_config(read_config(vae_json, "the AutoencoderKL config"), vae_json);
  c.text = clip_text_config(read_config(text_json, "the CLIPTextModel config"), text_json);
  read_scheduler(read_config(scheduler_json,
                             "the noise schedule (beta_start, beta_end, "
                             "beta_schedule) and prediction_type"),
                 scheduler_json, c);
  if (c.text.activation != "quick_gelu")
    throw CheckpointError(text_json + ": hidden_act \"" + c.text.activation +
                          "\": an SD 2.x folder (OpenCLIP ViT-H under CLIPTextModel names); sdgen "
                          "runs SD 2.x from single-file checkpoints so far, not from diffusers "
                          "folders (their text encoder would need the OpenCLIP layout)");
  if (c.unet.in_channels != 4 && c.unet.in_channels != 9)
    throw CheckpointError(unet_json + ": 'in_channels' is " + std::to_string(c.unet.in_channels) +
                          (c.unet.in_channels == 8 ? " (InstructPix2Pix)" : "") +
                          "; sdgen runs SD 1.x UNets with 4 (text-to-image) or 9 (inpainting) "
                          "input channels");
  info.family = &model_family(c.unet.in_channels == 9 ? "sd1-inpaint" : "sd1");
  c.family = info.family->name;
  c.native_size = sample_size > 0 ? sample_size * c.vae.downsample_factor() : 512;
  if (overrides) apply_json(*overrides, c);

  const Weights unet = find_weights(root / "unet", "diffusion_pytorch_model",
                                    "diffusion_pytorch_model", "the UNet2DConditionModel weights");
  const Weights vae = find_weights(root / "vae", "diffusion_pytorch_model",
                                   "diffusion_pytorch_model", "the AutoencoderKL weights");
  const Weights text =
      find_weights(root / "text_encoder", "model", "pytorch_model", "the CLIPTextModel weights");
  std::vector<std::pair<std::string, std::string>> files;
  std::string used;
  for (const auto& [prefix, w] : {std::pair<std::string, const Weights*>{"unet/", &unet},
                                  {"vae/", &vae},
                                  {"text_encoder/", &text}}) {
    for (const auto& f : w->files) files.emplace_back(prefix, f);
    used += (used.empty() ? "" : ", ") + relative(w->index.empty() ? w->files[0] : w->index, root);
  }
  info.source = TensorSource::open_files(files, dir);
  check_shards(info.source, "unet/", unet);
  check_shards(info.source, "vae/", vae);
  check_shards(info.source, "text_encoder/", text);
  info.unet_keys = key_map(unet_diffusers_to_ldm(c.unet), "unet/", false);
  info.vae_keys =
      key_map(vae_diffusers_to_ldm(c.vae, legacy_vae_attention(info.source, "vae/")), "vae/", true);
  info.text_keys = key_map(clip_diffusers_to_ldm(c.text), "text_encoder/", false);
  info.text_2_keys = KeyMap();
  info.hash_file = unet.files.front();
  info.notes.push_back("diffusers " + cls + " folder: " + used +
                       "; schedule and prediction from scheduler/scheduler_config.json");
}

VaeFile inspect_vae_folder(const std::string& dir) {
  fs::path folder(dir);
  if (is_file(folder / "model_index.json") && is_dir(folder / "vae")) folder /= "vae";
  const fs::path config = folder / "config.json";
  if (!is_file(config))
    throw CheckpointError(dir +
                          ": a folder without config.json; --vae takes a VAE .safetensors file "
                          "or a diffusers AutoencoderKL folder (config.json and "
                          "diffusion_pytorch_model.safetensors)");
  VaeFile v;
  v.config = vae_config(read_config(config, "the AutoencoderKL config"), config.string());
  const Weights w = find_weights(folder, "diffusion_pytorch_model", "diffusion_pytorch_model",
                                 "the AutoencoderKL weights");
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& f : w.files) files.emplace_back("", f);
  v.source = TensorSource::open_files(files, folder.string());
  check_shards(v.source, "", w);
  v.keys = key_map(vae_diffusers_to_ldm(v.config, legacy_vae_attention(v.source, "")), "", true);
  v.what = "a diffusers AutoencoderKL";
  v.config_complete = true;
  return v;
}

}  // namespace sdgen::diffusers
