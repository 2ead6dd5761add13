#include "sdgen/io/checkpoint.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "checkpoint_keys.h"
#include "sdgen/io/tensor_io.h"
#include "sdgen/models/openclip.h"

namespace sdgen {
namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  return o.str() + "]";
}

using keys::count_indexed;
using keys::ends_with;
using keys::has_prefix;
using keys::starts_with;

const TensorInfo& require(const SafetensorsFile& f, const std::string& name) {
  return keys::require(f, name, "an SD 1.x/2.x checkpoint (LDM key names)");
}

// Keys of published SD1 checkpoints that inference does not use: the DDPM schedule buffers
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
  return buffers.count(key) || starts_with(key, "model_ema.");
}

}  // namespace

std::string LoadReport::message(const std::string& file) const {
  std::ostringstream o;
  o << file << ": the checkpoint does not fit the model (" << missing.size() << " missing, "
    << unexpected.size() << " unexpected, " << mismatched.size() << " mis-shaped tensors)";
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    o << "\n  " << what << ":";
    const size_t shown = std::min<size_t>(v.size(), 40);
    for (size_t i = 0; i < shown; ++i) o << "\n    " << v[i];
    if (v.size() > shown) o << "\n    ... and " << v.size() - shown << " more";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("mis-shaped (file vs model)", mismatched);
  o << "\n  Is this an SD 1.x/2.x checkpoint? A config JSON (--model-config) can describe other "
       "hyperparameters.";
  return o.str();
}

void load_module(torch::nn::Module& module, const std::shared_ptr<SafetensorsFile>& file,
                 const std::string& prefix, torch::Device device, torch::ScalarType dtype,
                 LoadReport& report, std::vector<std::string>* consumed,
                 const std::vector<std::string>& ignored_suffixes) {
  torch::NoGradGuard no_grad;
  std::set<std::string> expected;
  auto load_one = [&](const std::string& name, torch::Tensor& target) {
    expected.insert(prefix + name);
    const TensorInfo* info = file->find(prefix + name);
    if (!info) {
      report.missing.push_back(prefix + name);
      return;
    }
    if (info->shape != target.sizes().vec()) {
      report.mismatched.push_back(prefix + name + ": file " + shape_str(info->shape) + ", model " +
                                  shape_str(target.sizes()));
      return;
    }
    auto src = tensor_view(file, *info);
    // Floating weights take the compute dtype; integer buffers keep theirs.
    const auto want = target.is_floating_point() ? dtype : target.scalar_type();
    auto dst = torch::empty(target.sizes(), torch::TensorOptions().dtype(want).device(device));
    dst.copy_(src);
    target.set_data(dst);
  };
  for (auto& p : module.named_parameters(/*recurse=*/true)) load_one(p.key(), p.value());
  for (auto& b : module.named_buffers(/*recurse=*/true)) load_one(b.key(), b.value());

  for (const auto& t : file->tensors()) {
    if (!starts_with(t.name, prefix)) continue;
    if (expected.count(t.name)) {
      if (consumed) consumed->push_back(t.name);
      continue;
    }
    const bool ignored = std::any_of(ignored_suffixes.begin(), ignored_suffixes.end(),
                                     [&](const std::string& s) { return ends_with(t.name, s); });
    if (ignored) {
      if (consumed) consumed->push_back(t.name);
    } else {
      report.unexpected.push_back(t.name);
    }
  }
}

VaeConfig infer_vae_config(const SafetensorsFile& f, const std::string& p) {
  VaeConfig c;
  const auto& conv_in = require(f, p + "encoder.conv_in.weight");
  c.ch = static_cast<int>(conv_in.shape[0]);
  c.in_channels = static_cast<int>(conv_in.shape[1]);
  c.out_channels = static_cast<int>(require(f, p + "decoder.conv_out.weight").shape[0]);
  c.z_channels = static_cast<int>(require(f, p + "decoder.conv_in.weight").shape[1]);
  c.embed_dim = static_cast<int>(require(f, p + "post_quant_conv.weight").shape[0]);
  const int levels = count_indexed(f, p + "encoder.down.");
  c.ch_mult.clear();
  for (int i = 0; i < levels; ++i) {
    const auto& w = require(f, p + "encoder.down." + std::to_string(i) + ".block.0.conv1.weight");
    c.ch_mult.push_back(static_cast<int>(w.shape[0] / c.ch));
  }
  c.num_res_blocks = count_indexed(f, p + "encoder.down.0.block.");
  return c;
}

std::string detect_vae_prefix(const SafetensorsFile& f) {
  for (const char* p : {"first_stage_model.", "vae.", ""})
    if (f.find(std::string(p) + "decoder.conv_in.weight")) return p;
  throw CheckpointError(f.path() +
                        ": no VAE decoder found (looked for 'decoder.conv_in.weight' with the "
                        "prefixes 'first_stage_model.', 'vae.' and none). Is this a VAE file in "
                        "the LDM layout?");
}

ModelConfig infer_sd1_config(const SafetensorsFile& f, const nlohmann::json* overrides,
                             std::vector<std::string>* notes) {
  ModelConfig c;
  c.family = "sd1";
  // Text encoder
  const std::string tp = kClipPrefix;
  const auto& tok = require(f, tp + "embeddings.token_embedding.weight");
  c.text.vocab_size = static_cast<int>(tok.shape[0]);
  c.text.width = static_cast<int>(tok.shape[1]);
  c.text.max_positions =
      static_cast<int>(require(f, tp + "embeddings.position_embedding.weight").shape[0]);
  c.text.layers = count_indexed(f, tp + "encoder.layers.");
  c.text.intermediate =
      static_cast<int>(require(f, tp + "encoder.layers.0.mlp.fc1.weight").shape[0]);
  c.text.heads = keys::guess_text_heads(c.text.width);

  c.unet = infer_unet_config(f);
  // Heads do not show either: SD 1.x uses 8 heads at every level.
  c.unet.num_heads = 8;
  c.unet.num_head_channels = -1;

  c.vae = infer_vae_config(f, kVaePrefix);
  const bool standard = c.unet.model_channels == 320 && c.text.width == 768;
  if (overrides) {
    apply_json(*overrides, c);
  } else if (!standard) {
    // A smaller model without a config: assume 32-wide UNet heads, the width the small SD1
    // derivatives (and the reference's tiny model) use.
    c.unet.num_heads = std::max(1, c.unet.model_channels / 32);
    if (notes)
      notes->push_back("no config JSON for this non-standard model: assumed " +
                       std::to_string(c.text.heads) + " text-encoder heads and " +
                       std::to_string(c.unet.num_heads) +
                       " UNet heads; give --model-config if it was trained otherwise");
  }
  return c;
}

UNetConfig infer_unet_config(const SafetensorsFile& f) {
  UNetConfig u;
  const std::string up = kUNetPrefix;
  const auto& conv_in = require(f, up + "input_blocks.0.0.weight");
  u.model_channels = static_cast<int>(conv_in.shape[0]);
  u.in_channels = static_cast<int>(conv_in.shape[1]);
  u.out_channels = static_cast<int>(require(f, up + "out.2.weight").shape[0]);
  const int n_input = count_indexed(f, up + "input_blocks.");
  int downsamples = 0;
  for (int i = 0; i < n_input; ++i)
    if (f.find(up + "input_blocks." + std::to_string(i) + ".0.op.weight")) ++downsamples;
  const int levels = downsamples + 1;
  u.num_res_blocks = (n_input - 1 - downsamples) / levels;
  u.channel_mult.clear();
  u.attention_resolutions.clear();
  int block = 1, ds = 1;
  for (int level = 0; level < levels; ++level) {
    const std::string b = up + "input_blocks." + std::to_string(block) + ".";
    const auto& w = require(f, b + "0.out_layers.3.weight");
    u.channel_mult.push_back(static_cast<int>(w.shape[0] / u.model_channels));
    if (f.find(b + "1.proj_in.weight")) u.attention_resolutions.push_back(ds);
    block += u.num_res_blocks + 1;
    ds *= 2;
  }
  const std::string mid_attn = up + "middle_block.1.";
  u.transformer_depth = count_indexed(f, mid_attn + "transformer_blocks.");
  u.context_dim =
      static_cast<int>(require(f, mid_attn + "transformer_blocks.0.attn2.to_k.weight").shape[1]);
  u.use_linear_proj = require(f, mid_attn + "proj_in.weight").shape.size() == 2;
  return u;
}

LoadedModel load_checkpoint(const LoadOptions& o) {
  auto file = SafetensorsFile::open(o.model_path);
  LoadedModel m;
  m.path = o.model_path;

  nlohmann::json overrides;
  bool have_overrides = false;
  std::string config_path = o.config_path;
  if (config_path.empty()) {
    const auto dot = o.model_path.rfind('.');
    const auto slash = o.model_path.rfind('/');
    if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) {
      const auto candidate = o.model_path.substr(0, dot) + ".json";
      if (std::ifstream(candidate).good()) config_path = candidate;
    }
  }
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    if (!in) throw CheckpointError(config_path + ": cannot open the model config JSON");
    try {
      overrides = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw CheckpointError(config_path + ": not valid JSON (" + e.what() + ")");
    }
    have_overrides = true;
    m.notes.push_back("model config from " + config_path);
  }

  if (!has_prefix(*file, kUNetPrefix))
    throw CheckpointError(o.model_path +
                          ": no 'model.diffusion_model.*' tensors; sdgen reads SD 1.x/2.x "
                          "single-file checkpoints with LDM key names");
  const bool sd2 = is_sd2_checkpoint(*file);
  const nlohmann::json* json = have_overrides ? &overrides : nullptr;
  m.config =
      sd2 ? infer_sd2_config(*file, json, &m.notes) : infer_sd1_config(*file, json, &m.notes);

  LoadReport report;
  std::vector<std::string> consumed;
  const std::string text_prefix = sd2 ? kOpenClipPrefix : kClipPrefix;
  if (sd2) {
    OpenClipTextModel text(m.config.text);
    // SD 2.x never reaches the CLIP-space projection and the logit scale (they serve image-text
    // matching); they are accounted for and not loaded, as is a stored causal mask.
    load_module(*text, file, text_prefix, o.device, o.dtype, report, &consumed,
                {"text_projection", "logit_scale", "attn_mask"});
    m.text = text.ptr();
  } else {
    ClipTextModel text(m.config.text);
    load_module(*text, file, text_prefix, o.device, o.dtype, report, &consumed,
                {"embeddings.position_ids"});
    m.text = text.ptr();
  }
  m.unet = UNetModel(m.config.unet);
  load_module(*m.unet, file, kUNetPrefix, o.device, o.dtype, report, &consumed);

  std::shared_ptr<SafetensorsFile> vae_file = file;
  std::string vae_prefix = kVaePrefix;
  if (!o.vae_path.empty()) {
    vae_file = SafetensorsFile::open(o.vae_path);
    vae_prefix = detect_vae_prefix(*vae_file);
    m.config.vae = infer_vae_config(*vae_file, vae_prefix);
    if (have_overrides && overrides.contains("vae")) {
      // keep the scale factor and norm groups of the JSON, the shapes of the file
      ModelConfig from_json = m.config;
      apply_json(overrides, from_json);
      m.config.vae.scale_factor = from_json.vae.scale_factor;
      m.config.vae.norm_groups = from_json.vae.norm_groups;
    }
    m.vae_path = o.vae_path;
  }
  m.vae = AutoencoderKL(m.config.vae);
  LoadReport vae_report;
  load_module(*m.vae, vae_file, vae_prefix, o.device, o.dtype,
              o.vae_path.empty() ? report : vae_report, &consumed, {});
  if (!o.vae_path.empty()) {
    // A VAE file may carry the training loss' modules; they are not part of the VAE.
    auto& u = vae_report.unexpected;
    u.erase(std::remove_if(u.begin(), u.end(),
                           [&](const std::string& k) {
                             return starts_with(k, vae_prefix + "loss.") ||
                                    starts_with(k, vae_prefix + "model_ema.");
                           }),
            u.end());
    if (!vae_report.ok()) throw CheckpointError(vae_report.message(o.vae_path));
  }
  // Keys of the model file outside the three components. With --vae, the file's own VAE
  // weights are knowingly replaced.
  std::set<std::string> used(consumed.begin(), consumed.end());
  for (const auto& t : file->tensors()) {
    if (used.count(t.name) || starts_with(t.name, text_prefix) ||
        starts_with(t.name, kUNetPrefix) || starts_with(t.name, kVaePrefix))
      continue;
    if (!is_known_extra(t.name)) report.unexpected.push_back(t.name);
  }
  if (!report.ok()) throw CheckpointError(report.message(o.model_path));
  m.text->module().eval();
  m.unet->eval();
  m.vae->eval();
  settle_prediction(m, o.prediction, o.device, o.dtype);
  return m;
}

}  // namespace sdgen
