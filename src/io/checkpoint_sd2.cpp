// SD 2.x single-file checkpoints: detection, configuration from shapes, prediction type.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "checkpoint_keys.h"
#include "sdgen/io/checkpoint.h"

namespace sdgen {
namespace {

using keys::count_indexed;
using keys::starts_with;

const TensorInfo& require(const SafetensorsFile& f, const std::string& name) {
  return keys::require(f, name,
                       "an SD 2.x checkpoint (OpenCLIP text encoder under "
                       "'cond_stage_model.model.')");
}

// Channel counts of the UNet levels that carry attention.
std::vector<int> attention_channels(const UNetConfig& u) {
  std::vector<int> out;
  int ds = 1;
  for (int mult : u.channel_mult) {
    if (std::find(u.attention_resolutions.begin(), u.attention_resolutions.end(), ds) !=
        u.attention_resolutions.end())
      out.push_back(mult * u.model_channels);
    ds *= 2;
  }
  out.push_back(u.channel_mult.back() * u.model_channels);  // the middle block always has one
  return out;
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

std::string beside(const std::string& model_path, const std::string& extension) {
  const auto dot = model_path.rfind('.');
  const auto slash = model_path.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return model_path.substr(0, dot) + extension;
}

}  // namespace

bool is_sd2_checkpoint(const SafetensorsFile& f) {
  return std::any_of(f.tensors().begin(), f.tensors().end(),
                     [](const TensorInfo& t) { return starts_with(t.name, kOpenClipPrefix); });
}

ModelConfig infer_sd2_config(const SafetensorsFile& f, const nlohmann::json* overrides,
                             std::vector<std::string>* notes) {
  ModelConfig c;
  c.family = "sd2";
  // Text encoder: open_clip's text tower (transformer.resblocks.N, packed in_proj).
  const std::string tp = kOpenClipPrefix;
  const auto& tok = require(f, tp + "token_embedding.weight");
  c.text.vocab_size = static_cast<int>(tok.shape[0]);
  c.text.width = static_cast<int>(tok.shape[1]);
  c.text.max_positions = static_cast<int>(require(f, tp + "positional_embedding").shape[0]);
  c.text.layers = count_indexed(f, tp + "transformer.resblocks.");
  c.text.intermediate =
      static_cast<int>(require(f, tp + "transformer.resblocks.0.mlp.c_fc.weight").shape[0]);
  c.text.activation = "gelu";  // open_clip's nn.GELU (erf); quick_gelu is OpenAI CLIP's
  c.text.heads = keys::guess_text_heads(c.text.width);

  // UNet: as SD 1.x, but with a fixed head width (num_head_channels) instead of a head count.
  c.unet = infer_unet_config(f);
  c.unet.num_head_channels = 64;
  c.vae = infer_vae_config(f, kVaePrefix);
  // Unknown until settle_prediction, unless the JSON says.
  c.prediction.clear();
  c.native_size = 0;

  const bool standard = c.unet.model_channels == 320 && c.unet.context_dim == 1024;
  if (overrides) {
    apply_json(*overrides, c);
  } else if (!standard) {
    // A smaller model without a config: SD 2.x's 64-wide heads when every attention level
    // splits into them and the model is SD-sized, else 16-wide heads (the width of the
    // reference's tiny SD 2.x model), else 8.
    const auto channels = attention_channels(c.unet);
    auto fits = [&](int width) {
      return std::all_of(channels.begin(), channels.end(), [&](int ch) { return ch % width == 0; });
    };
    c.unet.num_head_channels = c.unet.model_channels >= 320 && fits(64) ? 64 : fits(16) ? 16 : 8;
    if (notes)
      notes->push_back("no config JSON for this non-standard SD 2.x model: assumed " +
                       std::to_string(c.text.heads) + " text-encoder heads and UNet heads " +
                       std::to_string(c.unet.num_head_channels) +
                       " channels wide; give --model-config if it was trained otherwise");
  }
  if (c.text.layers < 2)
    throw CheckpointError(f.path() + ": the OpenCLIP text encoder has " +
                          std::to_string(c.text.layers) +
                          " resblocks; SD 2.x uses the penultimate one, so it needs at least 2");
  return c;
}

double v_prediction_score(UNetModel& unet, torch::Device device, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const auto& u = unet->config();
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  auto x = torch::full({1, u.in_channels, 8, 8}, 0.5, opts);
  auto context = torch::full({1, 2, u.context_dim}, 0.5, opts);
  auto t = torch::full({1}, 999.0, torch::TensorOptions().device(device).dtype(torch::kFloat));
  auto out = unet->forward(x, t, context).to(torch::kDouble);
  return (out - x.narrow(1, 0, out.size(1)).to(torch::kDouble)).mean().item<double>();
}

void settle_prediction(LoadedModel& m, const std::string& requested, torch::Device device,
                       torch::ScalarType dtype) {
  auto& c = m.config;
  const bool sd2 = c.family == "sd2";
  std::string why;
  if (!requested.empty()) {
    if (requested != "eps" && requested != "v")
      throw std::invalid_argument("prediction must be eps or v, not '" + requested + "'");
    c.prediction = requested;
    why = "as requested";
  } else if (!c.prediction.empty()) {
    why = "from the model config";
  } else if (const auto yaml = beside(m.path, ".yaml");
             !yaml.empty() && std::ifstream(yaml).good()) {
    c.prediction = prediction_from_yaml(yaml);
    why = "from " + yaml;
  } else if (sd2 && c.unet.in_channels == 4) {
    // AUTOMATIC1111 (and stable-diffusion.cpp) decide so for SD 2.x checkpoints without a
    // config; it tells the 768-v releases from the 512 base ones.
    const double score = v_prediction_score(m.unet, device, dtype);
    c.prediction = score < -1 ? "v" : "eps";
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.3f", score);
    why = std::string("A1111's test: mean(UNet(0.5, t=999) - 0.5) = ") + buf +
          (score < -1 ? " < -1" : " >= -1") + "; --prediction eps|v overrides";
  } else {
    c.prediction = "eps";  // SD 1.x and inpainting UNets predict noise
  }
  if (c.native_size <= 0) c.native_size = sd2 && c.prediction == "v" ? 768 : 512;
  if (sd2 || c.prediction != "eps")
    m.notes.push_back("prediction " + c.prediction + " (" + why + "), native size " +
                      std::to_string(c.native_size));
}

}  // namespace sdgen
