#include "sdgen/loading/model_loader.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "diffusers_folder.h"
#include "infer_config.h"
#include "sdgen/loading/load_module.h"

namespace sdgen {
namespace {

namespace fs = std::filesystem;

// Keys of published checkpoints that inference does not use: the DDPM schedule buffers
// (sdgen computes the schedule itself) and EMA bookkeeping.
bool is_known_extra(const std::string& key) {
  static const std::set<std::string> buffers = {"alphas_cumprod",
                                                "alphas_cumprod_prev",
                                                "betas",
                                                "log_one_minus_alphas_cumprod",
                                                "posterior_log_variance_clipped",
                                                "posterior_mean_coef1",
                                                "posterior_mean_coef2",
                                                "posterior_variance",
                                                "sqrt_alphas_cumprod",
                                                "sqrt_one_minus_alphas_cumprod",
                                                "sqrt_recip_alphas_cumprod",
                                                "sqrt_recipm1_alphas_cumprod",
                                                "logvar"};
  return buffers.count(key) || key.rfind("model_ema.", 0) == 0;
}

// v when an A1111-style config YAML (the file it would load beside the checkpoint) sets
// `parameterization: "v"`; eps for one that does not (v2-inference.yaml has no such line).
std::string prediction_from_yaml(const std::string& path) {
  std::ifstream in(path);
  static const std::regex line(R"(^\s*parameterization\s*:\s*["']?(\w+)["']?\s*(#.*)?$)");
  std::string s;
  std::smatch m;
  while (std::getline(in, s))
    if (std::regex_match(s, m, line)) return m[1] == "v" ? "v" : "eps";
  return "eps";
}

TensorSource open_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw CheckpointError(path +
                          ": a folder without model_index.json; sdgen reads single-file "
                          ".safetensors checkpoints and diffusers StableDiffusionPipeline folders "
                          "(model_index.json with unet/, vae/, text_encoder/, tokenizer/ and "
                          "scheduler/)");
  return TensorSource::open_file(path);
}

ModelLimits limits_of(const ModelFamily& family, const ModelConfig& c) {
  ModelLimits l;
  l.size_multiple = c.vae.downsample_factor();
  l.native_width = l.native_height = c.native_size;
  l.max_clip_skip = c.text.layers - family.clip_skip_reserved_layers;
  l.clip_skip_warning = family.clip_skip_warning;
  l.size_conditioning = family.size_conditioning;
  l.inpainting_model = family.inpainting;
  return l;
}

}  // namespace

std::string sibling_path(const std::string& path, const std::string& extension) {
  const fs::path p(path);
  if (!p.has_extension() || !p.has_stem() || p.stem() == p.filename()) return "";
  return fs::path(p).replace_extension(extension).string();
}

std::string model_config_path(const std::string& model_path, const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  const std::string candidate = sibling_path(model_path, ".json");
  std::error_code ec;
  return !candidate.empty() && fs::is_regular_file(candidate, ec) ? candidate : "";
}

VaeFile inspect_vae(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return diffusers::inspect_vae_folder(path);
  VaeFile v;
  v.source = TensorSource::open_file(path);
  if (v.source.has_prefix("decoder.up_blocks.") || v.source.has_prefix("vae.decoder.up_blocks."))
    throw CheckpointError(path +
                          ": a VAE with diffusers' names (decoder.up_blocks.*); give its folder "
                          "(config.json beside diffusion_pytorch_model.safetensors) as --vae");
  for (const char* p : {"first_stage_model.", "vae.", ""}) {
    if (!v.source.find(std::string(p) + "decoder.conv_in.weight")) continue;
    v.keys = KeyMap::prefixed(p);
    v.config = infer::vae(v.source, p, "a VAE in the LDM layout");
    return v;
  }
  throw CheckpointError(path +
                        ": no VAE decoder found (looked for 'decoder.conv_in.weight' with the "
                        "prefixes 'first_stage_model.', 'vae.' and none). Is this a VAE file in "
                        "the LDM layout?");
}

ModelLimits ModelInfo::limits() const { return limits_of(*family, config); }

ModelLimits LoadedModel::limits() const {
  ModelLimits l = limits_of(*family, config);
  l.max_clip_skip = text ? text->max_clip_skip() : l.max_clip_skip;
  return l;
}

ModelInfo inspect_model(const LoadOptions& o) {
  ModelInfo info;
  const bool folder = diffusers::is_pipeline_folder(o.model_path);
  if (!folder) info.source = open_checkpoint(o.model_path);
  nlohmann::json overrides;
  const std::string config_path = model_config_path(o.model_path, o.config_path);
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    if (!in) throw CheckpointError(config_path + ": cannot open the model config JSON");
    try {
      overrides = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      std::string what = e.what();  // without nlohmann's "[json.exception.parse_error.101] "
      if (what.rfind("[json.exception.", 0) == 0 && what.find("] ") != std::string::npos)
        what = what.substr(what.find("] ") + 2);
      throw CheckpointError(config_path + ": not valid JSON (" + what + ")");
    }
    info.notes.push_back("model config from " + config_path);
  }
  try {
    if (folder) {
      diffusers::inspect_pipeline(o.model_path, config_path.empty() ? nullptr : &overrides, info);
    } else {
      info.family = &detect_family(info.source);
      info.config = info.family->infer_config(
          info.source, config_path.empty() ? nullptr : &overrides, &info.notes);
      info.text_keys = info.family->text_keys;
      info.text_2_keys = info.family->text_2_keys;
      info.unet_keys = info.family->unet_keys;
      info.vae_keys = info.family->vae_keys;
      info.hash_file = o.model_path;
    }
    validate_config(info.config);
  } catch (const std::invalid_argument& e) {
    if (config_path.empty()) throw CheckpointError(o.model_path + ": " + e.what());
    throw CheckpointError(config_path + ": " + e.what() + " (the model config JSON of " +
                          o.model_path + "; fix the value or remove the key)");
  }
  if (!o.vae_path.empty()) {
    info.vae = inspect_vae(o.vae_path);
    // the shapes of the file; the scale factor of the model (its config JSON), and its norm
    // groups unless the VAE's own config.json gives them
    VaeConfig vae = info.vae->config;
    vae.scale_factor = info.config.vae.scale_factor;
    if (!info.vae->config_complete) vae.norm_groups = info.config.vae.norm_groups;
    info.config.vae = vae;
  }
  return info;
}

LoadedModel load_model(const LoadOptions& o) { return load_model(o, inspect_model(o)); }

LoadedModel load_model(const LoadOptions& o, ModelInfo info) {
  const ModelFamily& family = *info.family;
  LoadedModel m;
  m.family = &family;
  m.config = info.config;
  m.path = o.model_path;
  m.notes = std::move(info.notes);
  const TensorSource& source = info.source;

  LoadReport report;
  std::set<std::string> consumed;
  m.text = family.make_text_encoder(m.config.text);
  load_module(m.text->module(), source, info.text_keys, o.device, o.dtype, report, &consumed,
              family.text_ignored_suffixes);
  if (family.make_text_encoder_2) {
    m.text_2 = family.make_text_encoder_2(m.config.text_2);
    load_module(m.text_2->module(), source, info.text_2_keys, o.device, o.dtype, report, &consumed,
                family.text_2_ignored_suffixes);
  }
  m.unet = UNetModel(m.config.unet);
  load_module(*m.unet, source, info.unet_keys, o.device, o.dtype, report, &consumed);

  m.vae = AutoencoderKL(m.config.vae);
  const auto vae_dtype = o.vae_dtype.value_or(
      family.vae_upcast_in_fp16 && o.dtype == torch::kHalf ? torch::kFloat : o.dtype);
  if (!info.vae) {
    load_module(*m.vae, source, info.vae_keys, o.device, vae_dtype, report, &consumed);
  } else {
    LoadReport vae_report;
    load_module(*m.vae, info.vae->source, info.vae->keys, o.device, vae_dtype, vae_report);
    // A VAE file may carry the training loss' modules; they are not part of the VAE. (The
    // prefix is that of the rule for every other name: module prefix "".)
    std::string prefix;
    for (const auto& r : info.vae->keys.rules())
      if (r.module_prefix.empty()) prefix = r.source_prefix;
    auto& u = vae_report.unexpected;
    u.erase(std::remove_if(u.begin(), u.end(),
                           [&](const std::string& k) {
                             return k.rfind(prefix + "loss.", 0) == 0 ||
                                    k.rfind(prefix + "model_ema.", 0) == 0;
                           }),
            u.end());
    if (!vae_report.ok())
      throw CheckpointError(vae_report.message(info.vae->source.path(), info.vae->what));
    m.vae_path = info.vae->source.path();
  }
  // Keys of the model file outside the three components (with --vae, the file's own VAE
  // weights are knowingly replaced).
  for (const auto& key : source.names()) {
    if (consumed.count(key) || info.text_keys.covers(key) || info.unet_keys.covers(key) ||
        info.vae_keys.covers(key) || info.text_2_keys.covers(key))
      continue;
    if (!is_known_extra(key)) report.unexpected.push_back(key);
  }
  if (!report.ok())
    throw CheckpointError(report.message(
        o.model_path,
        "an " + family.label +
            (diffusers::is_pipeline_folder(o.model_path) ? " diffusers folder" : " checkpoint")));
  m.text->module().eval();
  if (m.text_2) m.text_2->module().eval();
  m.unet->eval();
  m.vae->eval();
  settle_prediction(m, o.prediction);
  return m;
}

double v_prediction_score(UNetModel& unet, torch::Device device, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const auto& u = unet->config();
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  auto x = torch::full({1, u.in_channels, 8, 8}, 0.5, opts);
  auto context = torch::full({1, 2, u.context_dim}, 0.5, opts);
  auto t = torch::full({1}, 999.0, torch::TensorOptions().device(device).dtype(torch::kFloat));
  auto out = unet->forward(x, t, Conditioning(context)).to(torch::kDouble);
  return (out - x.narrow(1, 0, out.size(1)).to(torch::kDouble)).mean().item<double>();
}

void settle_prediction(LoadedModel& m, const std::string& requested) {
  auto& c = m.config;
  const bool open = m.family->prediction_open;
  std::string why;
  if (!requested.empty()) {
    parse_prediction(requested);  // validates
    c.prediction = requested;
    why = "as requested";
  } else if (!c.prediction.empty()) {
    why = "from the model config";
  } else if (const auto yaml = sibling_path(m.path, ".yaml");
             !yaml.empty() && std::ifstream(yaml).good()) {
    c.prediction = prediction_from_yaml(yaml);
    why = "from " + yaml;
  } else if (open && c.unet.in_channels == 4) {
    // AUTOMATIC1111 (and stable-diffusion.cpp) decide so for SD 2.x checkpoints without a
    // config; it tells the 768-v releases from the 512 base ones.
    const auto& w = m.unet->out_conv->weight;
    const double score = v_prediction_score(m.unet, w.device(), w.scalar_type());
    c.prediction = score < -1 ? "v" : "eps";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.3f", score);
    why = std::string("A1111's test: mean(UNet(0.5, t=999) - 0.5) = ") + buf +
          (score < -1 ? " < -1" : " >= -1") + "; --prediction eps|v overrides";
  } else {
    c.prediction = "eps";  // SD 1.x and inpainting UNets predict noise
  }
  if (c.native_size <= 0) c.native_size = open && c.prediction == "v" ? 768 : 512;
  if (open || c.prediction != "eps")
    m.notes.push_back("prediction " + c.prediction + " (" + why + "), native size " +
                      std::to_string(c.native_size));
  m.sampling = ModelSampling::from_config(c);
}

}  // namespace sdgen
