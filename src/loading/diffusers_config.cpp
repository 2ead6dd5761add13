// diffusers and transformers config.json files -> sdgen's config structs. What the shapes
// show is checked again by the strict load; what they do not (heads, activations, norm groups,
// the schedule) is read here, and settings sdgen's LDM networks do not implement are refused by
// name rather than run wrong.
#include <algorithm>
#include <fstream>
#include <limits>
#include <tuple>

#include "diffusers_folder.h"

namespace sdgen::diffusers {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& file, const std::string& key, const std::string& what) {
  throw CheckpointError(file + ": '" + key + "' " + what);
}

// A value of `j`, `fallback` when absent or null (the class' __init__ default).
int64_t get_int(const json& j, const char* key, int64_t fallback, const std::string& file,
                int64_t lo = 1, int64_t hi = std::numeric_limits<int32_t>::max()) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) bad(file, key, "must be an integer, not " + it->dump());
  const auto v = it->get<int64_t>();
  if (v < lo || v > hi)
    bad(file, key,
        "must be from " + std::to_string(lo) + " to " + std::to_string(hi) + ", not " + it->dump());
  return v;
}

double get_double(const json& j, const char* key, double fallback, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) bad(file, key, "must be a number, not " + it->dump());
  return it->get<double>();
}

std::string get_string(const json& j, const char* key, const std::string& fallback,
                       const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) bad(file, key, "must be a string, not " + it->dump());
  return it->get<std::string>();
}

// An int or a list of ints; an int stands for every one of `count` entries (count 0: as given).
std::vector<int> get_ints(const json& j, const char* key, const std::vector<int>& fallback,
                          size_t count, const std::string& file) {
  auto it = j.find(key);
  std::vector<int> v = fallback;
  if (it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      v.assign(count ? count : 1, static_cast<int>(get_int(j, key, 1, file)));
    } else if (it->is_array() && !it->empty()) {
      v.clear();
      for (const auto& e : *it) {
        if (!e.is_number_integer() || e.get<int64_t>() < 1 || e.get<int64_t>() > (1 << 20))
          bad(file, key, "must hold positive integers, not " + it->dump());
        v.push_back(e.get<int>());
      }
    } else {
      bad(file, key, "must be a positive integer or a list of them, not " + it->dump());
    }
  }
  if (count && v.size() == 1) v.assign(count, v[0]);
  if (count && v.size() != count)
    bad(file, key,
        "has " + std::to_string(v.size()) + " entries for " + std::to_string(count) + " blocks");
  return v;
}

std::vector<std::string> get_strings(const json& j, const char* key,
                                     const std::vector<std::string>& fallback,
                                     const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  std::vector<std::string> v;
  if (it->is_array())
    for (const auto& e : *it)
      if (e.is_string()) v.push_back(e.get<std::string>());
  if (!it->is_array() || v.size() != it->size() || v.empty())
    bad(file, key, "must be a list of block type names, not " + it->dump());
  return v;
}

// Settings the LDM networks hard-wire: each key may be absent or hold one of its values.
struct Fixed {
  const char* key;
  std::vector<json> allowed;  // the first is what sdgen implements
};
void check_fixed(const json& j, const std::vector<Fixed>& fixed, const std::string& file,
                 const std::string& network) {
  for (const auto& f : fixed) {
    auto it = j.find(f.key);
    if (it == j.end()) continue;
    bool ok = false;
    for (const auto& a : f.allowed) ok |= *it == a;
    if (!ok)
      bad(file, f.key,
          "is " + it->dump() + "; " + network + " implements only " + f.allowed.front().dump());
  }
}

void check_class(const json& j, const std::string& want, const std::string& file) {
  const std::string got = get_string(j, "_class_name", want, file);
  if (got != want) bad(file, "_class_name", "is \"" + got + "\"; expected \"" + want + "\"");
}

// block_out_channels as LDM's base width and multipliers.
std::pair<int, std::vector<int>> widths(const json& j, const std::vector<int>& fallback,
                                        const std::string& file) {
  const auto boc = get_ints(j, "block_out_channels", fallback, 0, file);
  std::vector<int> mult;
  for (int c : boc) {
    if (c % boc[0] != 0)
      bad(file, "block_out_channels",
          json(boc).dump() + ": sdgen's networks need multiples of the first width");
    mult.push_back(c / boc[0]);
  }
  return {boc[0], mult};
}

}  // namespace

json read_config(const std::filesystem::path& file, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw CheckpointError(file.string() + ": missing; " + what);
  std::ifstream in(file);
  if (!in) throw CheckpointError(file.string() + ": cannot open it; " + what);
  json j;
  try {
    j = json::parse(in);
  } catch (const std::exception& e) {
    std::string msg = e.what();  // without nlohmann's "[json.exception.parse_error.101] "
    if (msg.rfind("[json.exception.", 0) == 0 && msg.find("] ") != std::string::npos)
      msg = msg.substr(msg.find("] ") + 2);
    throw CheckpointError(file.string() + ": not valid JSON (" + msg + "); " + what);
  }
  if (!j.is_object()) throw CheckpointError(file.string() + ": not a JSON object {...}; " + what);
  return j;
}

UNetConfig unet_config(const json& j, const std::string& file, int* sample_size) {
  check_class(j, "UNet2DConditionModel", file);
  check_fixed(j,
              {{"act_fn", {"silu"}},
               {"norm_num_groups", {32}},
               {"norm_eps", {1e-5}},
               {"flip_sin_to_cos", {true}},
               {"freq_shift", {0}},
               {"time_embedding_type", {"positional"}},
               {"resnet_time_scale_shift", {"default"}},
               {"center_input_sample", {false}},
               {"downsample_padding", {1}},
               {"mid_block_scale_factor", {1}},
               {"resnet_out_scale_factor", {1.0}},
               {"resnet_skip_time_act", {false}},
               {"conv_in_kernel", {3}},
               {"conv_out_kernel", {3}},
               {"only_cross_attention", {false}},
               {"dual_cross_attention", {false}},
               {"attention_type", {"default"}},
               {"mid_block_type", {"UNetMidBlock2DCrossAttn"}},
               {"mid_block_only_cross_attention", {nullptr, false}},
               {"cross_attention_norm", {nullptr}},
               {"addition_embed_type", {nullptr}},
               {"class_embed_type", {nullptr}},
               {"num_class_embeds", {nullptr}},
               {"encoder_hid_dim_type", {nullptr}},
               {"time_cond_proj_dim", {nullptr}},
               {"timestep_post_act", {nullptr}},
               {"time_embedding_act_fn", {nullptr}},
               {"time_embedding_dim", {nullptr}},
               {"reverse_transformer_layers_per_block", {nullptr}}},
              file, "sdgen's UNet (LDM's UNetModel)");
  UNetConfig u;
  u.in_channels = static_cast<int>(get_int(j, "in_channels", 4, file, 1, 1 << 16));
  u.out_channels = static_cast<int>(get_int(j, "out_channels", 4, file, 1, 1 << 16));
  std::tie(u.model_channels, u.channel_mult) = widths(j, {320, 640, 1280, 1280}, file);
  const size_t levels = u.channel_mult.size();
  if (j.contains("layers_per_block") && j["layers_per_block"].is_array())
    bad(file, "layers_per_block", "differs per block; sdgen's UNet has one count for every level");
  u.num_res_blocks = static_cast<int>(get_int(j, "layers_per_block", 2, file, 1, 1024));
  const auto down = get_strings(
      j, "down_block_types",
      {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
      file);
  const auto up = get_strings(
      j, "up_block_types",
      {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}, file);
  if (down.size() != levels || up.size() != levels)
    bad(file, "down_block_types",
        "and up_block_types need one entry per block_out_channels entry (" +
            std::to_string(levels) + ")");
  u.attention_resolutions.clear();
  for (size_t level = 0; level < levels; ++level) {
    const bool attention = down[level] == "CrossAttnDownBlock2D";
    if (!attention && down[level] != "DownBlock2D")
      bad(file, "down_block_types",
          "holds \"" + down[level] +
              "\"; sdgen's UNet has CrossAttnDownBlock2D and DownBlock2D levels");
    if (up[levels - 1 - level] != (attention ? "CrossAttnUpBlock2D" : "UpBlock2D"))
      bad(file, "up_block_types",
          "holds \"" + up[levels - 1 - level] + "\" where down_block_types has \"" + down[level] +
              "\"; sdgen's UNet mirrors the down blocks");
    if (attention) u.attention_resolutions.push_back(1 << level);
  }
  if (j.contains("cross_attention_dim") && j["cross_attention_dim"].is_array())
    bad(file, "cross_attention_dim", "differs per block; sdgen's UNet has one context width");
  u.context_dim = static_cast<int>(get_int(j, "cross_attention_dim", 1280, file, 1, 1 << 20));
  auto linear = j.find("use_linear_projection");
  if (linear != j.end() && !linear->is_null() && !linear->is_boolean())
    bad(file, "use_linear_projection", "must be true or false, not " + linear->dump());
  u.use_linear_proj = linear != j.end() && linear->is_boolean() && linear->get<bool>();
  u.transformer_depth = get_ints(j, "transformer_layers_per_block", {1}, levels, file);
  u.transformer_depth_middle = -1;  // diffusers' mid block: the last entry, as sgm's default
  // Heads: diffusers' num_attention_heads, which SD 1.x / 2.x configs write as
  // attention_head_dim (a count, not a width: the naming diffusers keeps for compatibility).
  const char* heads_key = j.contains("num_attention_heads") && !j["num_attention_heads"].is_null()
                              ? "num_attention_heads"
                              : "attention_head_dim";
  const auto heads = get_ints(j, heads_key, {8}, levels, file);
  // sdgen's UNet has one head count, or one head width, for every attention (the middle one
  // takes the last level's heads, as in diffusers)
  bool same_count = true, same_width = true;
  int width = 0;
  for (size_t level = 0; level < levels; ++level) {
    const bool attention_level =
        level + 1 == levels ||
        std::count(u.attention_resolutions.begin(), u.attention_resolutions.end(), 1 << level) > 0;
    if (!attention_level) continue;
    const int channels = u.channel_mult[level] * u.model_channels;
    if (channels % heads[level] != 0)
      bad(file, heads_key,
          "gives " + std::to_string(heads[level]) + " heads to " + std::to_string(channels) +
              " channels");
    const int w = channels / heads[level];
    same_count &= heads[level] == heads.back();
    same_width &= width == 0 || w == width;
    width = w;
  }
  if (same_count) {
    u.num_heads = heads.back();
    u.num_head_channels = -1;
  } else if (same_width) {
    u.num_head_channels = width;
  } else {
    bad(file, heads_key,
        json(heads).dump() +
            ": sdgen's UNet needs one head count or one head width for every attention level");
  }
  if (sample_size) *sample_size = static_cast<int>(get_int(j, "sample_size", 0, file, 0, 1 << 16));
  return u;
}

VaeConfig vae_config(const json& j, const std::string& file) {
  check_class(j, "AutoencoderKL", file);
  check_fixed(j,
              {{"act_fn", {"silu"}},
               {"shift_factor", {nullptr}},
               {"latents_mean", {nullptr}},
               {"latents_std", {nullptr}},
               {"use_quant_conv", {true}},
               {"use_post_quant_conv", {true}},
               {"mid_block_add_attention", {true}}},
              file, "sdgen's VAE (LDM's AutoencoderKL)");
  VaeConfig c;
  std::tie(c.ch, c.ch_mult) = widths(j, {64}, file);
  const size_t levels = c.ch_mult.size();
  for (const auto& [key, type] :
       {std::pair<const char*, const char*>{"down_block_types", "DownEncoderBlock2D"},
        {"up_block_types", "UpDecoderBlock2D"}}) {
    const auto types = get_strings(j, key, std::vector<std::string>(levels, type), file);
    if (types != std::vector<std::string>(levels, type))
      bad(file, key,
          "is " + json(types).dump() + "; sdgen's VAE has " + std::to_string(levels) + " " + type +
              " blocks (one per block_out_channels entry)");
  }
  c.num_res_blocks = static_cast<int>(get_int(j, "layers_per_block", 1, file, 1, 1024));
  c.in_channels = static_cast<int>(get_int(j, "in_channels", 3, file, 1, 1 << 16));
  c.out_channels = static_cast<int>(get_int(j, "out_channels", 3, file, 1, 1 << 16));
  c.z_channels = c.embed_dim = static_cast<int>(get_int(j, "latent_channels", 4, file, 1, 1 << 16));
  c.norm_groups = static_cast<int>(get_int(j, "norm_num_groups", 32, file, 1, 1 << 16));
  c.scale_factor = get_double(j, "scaling_factor", 0.18215, file);
  return c;
}

ClipTextConfig clip_text_config(const json& j, const std::string& file) {
  // transformers writes only the values that differ from CLIPTextConfig's defaults
  const auto archs = j.find("architectures");
  if (archs != j.end() && archs->is_array() && *archs != json::array({"CLIPTextModel"}))
    bad(file, "architectures", "is " + archs->dump() + "; expected [\"CLIPTextModel\"]");
  const std::string type = get_string(j, "model_type", "clip_text_model", file);
  if (type != "clip_text_model")
    bad(file, "model_type", "is \"" + type + "\"; expected \"clip_text_model\"");
  ClipTextConfig c;
  c.vocab_size = static_cast<int>(get_int(j, "vocab_size", 49408, file));
  c.width = static_cast<int>(get_int(j, "hidden_size", 512, file));
  c.intermediate = static_cast<int>(get_int(j, "intermediate_size", 2048, file));
  c.layers = static_cast<int>(get_int(j, "num_hidden_layers", 12, file, 1, 1024));
  c.heads = static_cast<int>(get_int(j, "num_attention_heads", 8, file));
  c.max_positions = static_cast<int>(get_int(j, "max_position_embeddings", 77, file, 2, 1 << 16));
  c.layer_norm_eps = get_double(j, "layer_norm_eps", 1e-5, file);
  c.activation = get_string(j, "hidden_act", "quick_gelu", file);
  c.projection_dim = 0;  // CLIPTextModel has no projection
  return c;
}

void read_scheduler(const json& j, const std::string& file, ModelConfig& c) {
  if (auto t = j.find("trained_betas"); t != j.end() && !t->is_null())
    bad(file, "trained_betas", "is set; sdgen computes the betas from beta_schedule");
  // PNDMScheduler's defaults (every diffusers scheduler config writes them all)
  c.schedule.beta_start = get_double(j, "beta_start", 0.0001, file);
  c.schedule.beta_end = get_double(j, "beta_end", 0.02, file);
  c.schedule.timesteps =
      static_cast<int>(get_int(j, "num_train_timesteps", 1000, file, 2, 1 << 20));
  const std::string schedule = get_string(j, "beta_schedule", "linear", file);
  if (schedule != "linear" && schedule != "scaled_linear")
    bad(file, "beta_schedule",
        "is \"" + schedule + "\"; sdgen computes \"scaled_linear\" and \"linear\" betas");
  c.schedule.type = schedule;
  const std::string prediction = get_string(j, "prediction_type", "epsilon", file);
  if (prediction == "epsilon") {
    c.prediction = "eps";
  } else if (prediction == "v_prediction") {
    c.prediction = "v";
  } else {
    bad(file, "prediction_type",
        "is \"" + prediction + "\"; sdgen runs \"epsilon\" and \"v_prediction\" models");
  }
}

}  // namespace sdgen::diffusers
