// Architecture hyperparameters. Defaults are SD 1.5 (CompVis v1-inference.yaml); loaders fill
// them from tensor shapes where the shapes show them, and from JSON where they do not.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sdgen {

struct ClipTextConfig {
  int vocab_size = 49408;
  int max_positions = 77;
  int width = 768;
  int layers = 12;
  int heads = 12;
  int intermediate = 3072;
  double layer_norm_eps = 1e-5;
  // "quick_gelu" (OpenAI CLIP, SD1) or "gelu" (OpenCLIP, SD2).
  std::string activation = "quick_gelu";
};

struct UNetConfig {
  int in_channels = 4;
  int out_channels = 4;
  int model_channels = 320;
  std::vector<int> channel_mult = {1, 2, 4, 4};
  int num_res_blocks = 2;
  // Downsampling factors (1, 2, 4 ...) at which blocks carry a SpatialTransformer.
  std::vector<int> attention_resolutions = {4, 2, 1};
  int num_heads = 8;           // used when num_head_channels == -1
  int num_head_channels = -1;  // SD2: 64 (heads = channels / 64)
  int transformer_depth = 1;
  int context_dim = 768;
  bool use_linear_proj = false;  // SD2: Linear proj_in/proj_out, SD1: 1x1 convolutions
  int time_embed_dim() const { return model_channels * 4; }
  // Heads and width of each head for a transformer of `channels` channels.
  int heads_for(int channels) const {
    return num_head_channels == -1 ? num_heads : channels / num_head_channels;
  }
};

struct VaeConfig {
  int in_channels = 3;
  int out_channels = 3;
  int ch = 128;
  std::vector<int> ch_mult = {1, 2, 4, 4};
  int num_res_blocks = 2;
  int z_channels = 4;
  int embed_dim = 4;
  double scale_factor = 0.18215;
  // GroupNorm groups of every VAE norm layer (CompVis: 32). Not visible in the shapes: small
  // VAEs (sdgen-train's) use fewer, so each group keeps several channels; from the config JSON.
  int norm_groups = 32;
  int downsample_factor() const { return 1 << (static_cast<int>(ch_mult.size()) - 1); }
};

struct ModelConfig {
  std::string family = "sd1";  // "sd1" or "sd2" (OpenCLIP text encoder)
  ClipTextConfig text;
  UNetConfig unet;
  VaeConfig vae;
  int native_size = 512;
  // What the UNet predicts: "eps" (noise; SD 1.x, SD 2.x 512 base) or "v" (SD 2.x 768-v).
  std::string prediction = "eps";
  // Parts read from JSON override shape inference (see load_config_overrides).
};

void to_json(nlohmann::json& j, const ClipTextConfig& c);
void to_json(nlohmann::json& j, const UNetConfig& c);
void to_json(nlohmann::json& j, const VaeConfig& c);
void to_json(nlohmann::json& j, const ModelConfig& c);
// Reads the keys present in `j` over the values already in `c` (so shape-derived values stay
// when JSON is silent). Accepts sdgen's own names and those of the reference JSON files
// ({"unet": {"num_heads": ...}, "text_encoder": {"heads": ...}, "vae": {"ddconfig": ...}}).
void apply_json(const nlohmann::json& j, ModelConfig& c);

}  // namespace sdgen
