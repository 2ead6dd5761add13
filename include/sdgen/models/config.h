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
  // Width of the text projection applied to the pooled output (OpenCLIP's `text_projection`,
  // [width, projection_dim]); 0 when the checkpoint has none.
  int projection_dim = 0;
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
  // Transformer blocks per SpatialTransformer at each level: one entry for every level
  // (CompVis' int), or one per channel_mult entry (sgm's list; SDXL: {0, 2, 10}). Levels not
  // in attention_resolutions have no transformer whatever it says.
  std::vector<int> transformer_depth = {1};
  int transformer_depth_middle = -1;  // -1: the last level's depth, as sgm defaults it
  int context_dim = 768;
  bool use_linear_proj = false;  // SD2: Linear proj_in/proj_out, SD1: 1x1 convolutions
  // Width of the conditioning vector y into label_emb (SDXL: 2816 = pooled 1280 + 6 x 256);
  // 0: no label_emb.
  int adm_in_channels = 0;
  int time_embed_dim() const { return model_channels * 4; }
  int depth_at(size_t level) const {
    return transformer_depth.size() == 1 ? transformer_depth[0] : transformer_depth.at(level);
  }
  int middle_depth() const {
    return transformer_depth_middle >= 0 ? transformer_depth_middle
                                         : depth_at(channel_mult.size() - 1);
  }
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

// The training noise schedule (DDPM betas). SD 1.x, 2.x and SDXL: "scaled_linear" from
// 0.00085 to 0.012 over 1000 steps (CompVis linear_start / linear_end).
struct ScheduleConfig {
  std::string type = "scaled_linear";  // or "linear"
  double beta_start = 0.00085;
  double beta_end = 0.012;
  int timesteps = 1000;
};

struct ModelConfig {
  std::string family = "sd1";  // a name of the family registry (loading/family.h)
  ClipTextConfig text;
  // The second text encoder of two-encoder families (SDXL: OpenCLIP ViT-bigG); absent (0
  // layers) otherwise.
  ClipTextConfig text_2;
  UNetConfig unet;
  VaeConfig vae;
  ScheduleConfig schedule;
  int native_size = 512;
  // What the UNet predicts: "eps" (noise; SD 1.x, SD 2.x 512 base) or "v" (SD 2.x 768-v).
  std::string prediction = "eps";
  ModelConfig() { text_2.layers = 0; }
  bool has_text_2() const { return text_2.layers > 0; }
};

void to_json(nlohmann::json& j, const ClipTextConfig& c);
void to_json(nlohmann::json& j, const UNetConfig& c);
void to_json(nlohmann::json& j, const VaeConfig& c);
void to_json(nlohmann::json& j, const ScheduleConfig& c);
void to_json(nlohmann::json& j, const ModelConfig& c);
// Reads the keys present in `j` over the values already in `c` (so shape-derived values stay
// when JSON is silent): the model config JSON beside a checkpoint overrides what the loader
// inferred from tensor shapes. Accepts sdgen's own names and those of the reference JSON files
// ({"unet": {"num_heads": ...}, "text_encoder": {"heads": ...}, "vae": {"ddconfig": ...}}) and
// diffusers' scheduler keys ({"scheduler": {"prediction_type", "beta_start", ...}}).
// Throws std::invalid_argument naming the key when `j` is not an object, or a key holds a
// value of the wrong type (text is taken as a description and skipped).
void apply_json(const nlohmann::json& j, ModelConfig& c);

// Throws std::invalid_argument naming the field, what it must be and what it is, when `c` is
// not a working model: sizes below 1, head counts that do not divide the widths, a
// non-positive layer_norm_eps, an unknown activation or schedule.
void validate_config(const ModelConfig& c);

}  // namespace sdgen
