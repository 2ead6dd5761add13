#include "sdgen/models/config.h"

#include <nlohmann/json.hpp>

namespace sdgen {

using nlohmann::json;

void to_json(json& j, const ClipTextConfig& c) {
  j = json{{"vocab_size", c.vocab_size},
           {"max_positions", c.max_positions},
           {"width", c.width},
           {"layers", c.layers},
           {"heads", c.heads},
           {"intermediate", c.intermediate},
           {"layer_norm_eps", c.layer_norm_eps},
           {"activation", c.activation},
           {"projection_dim", c.projection_dim}};
}

void to_json(json& j, const UNetConfig& c) {
  j = json{{"in_channels", c.in_channels},
           {"out_channels", c.out_channels},
           {"model_channels", c.model_channels},
           {"channel_mult", c.channel_mult},
           {"num_res_blocks", c.num_res_blocks},
           {"attention_resolutions", c.attention_resolutions},
           {"num_heads", c.num_heads},
           {"num_head_channels", c.num_head_channels},
           // CompVis' int when one depth serves every level, sgm's list otherwise
           {"transformer_depth", c.transformer_depth.size() == 1 ? json(c.transformer_depth[0])
                                                                 : json(c.transformer_depth)},
           {"transformer_depth_middle", c.middle_depth()},
           {"context_dim", c.context_dim},
           {"use_linear_proj", c.use_linear_proj},
           {"adm_in_channels", c.adm_in_channels}};
}

void to_json(json& j, const VaeConfig& c) {
  j = json{{"in_channels", c.in_channels},
           {"out_channels", c.out_channels},
           {"ch", c.ch},
           {"ch_mult", c.ch_mult},
           {"num_res_blocks", c.num_res_blocks},
           {"z_channels", c.z_channels},
           {"embed_dim", c.embed_dim},
           {"scale_factor", c.scale_factor},
           {"norm_groups", c.norm_groups}};
}

void to_json(json& j, const ScheduleConfig& c) {
  j = json{{"type", c.type},
           {"beta_start", c.beta_start},
           {"beta_end", c.beta_end},
           {"timesteps", c.timesteps}};
}

void to_json(json& j, const ModelConfig& c) {
  j = json{{"family", c.family},
           {"native_size", c.native_size},
           {"prediction", c.prediction},
           {"text_encoder", c.text},
           {"unet", c.unet},
           {"vae", c.vae},
           {"schedule", c.schedule}};
}

namespace {

// Reads j[key] into out when present and of a usable type; values of other types (the
// reference files describe some fields in words) are left alone.
template <typename T>
void read(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end()) return;
  if constexpr (std::is_same_v<T, bool>) {
    if (it->is_boolean()) out = it->get<bool>();
  } else if constexpr (std::is_arithmetic_v<T>) {
    if (it->is_number()) out = it->get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (it->is_string()) out = it->get<std::string>();
  } else {
    if (it->is_array()) out = it->get<T>();
  }
}

void read_text(const json& t, ClipTextConfig& c) {
  read(t, "vocab_size", c.vocab_size);
  read(t, "max_positions", c.max_positions);
  read(t, "max_position_embeddings", c.max_positions);
  read(t, "context_length", c.max_positions);
  read(t, "width", c.width);
  read(t, "layers", c.layers);
  read(t, "heads", c.heads);
  read(t, "intermediate", c.intermediate);
  read(t, "intermediate_size", c.intermediate);
  read(t, "mlp_width", c.intermediate);
  read(t, "layer_norm_eps", c.layer_norm_eps);
  read(t, "projection_dim", c.projection_dim);
  read(t, "embed_dim", c.projection_dim);  // open_clip's name
  for (const char* key : {"activation", "hidden_act", "act"}) {
    auto a = t.find(key);
    if (a == t.end() || !a->is_string()) continue;
    const auto s = a->get<std::string>();
    // the reference files write e.g. "quick_gelu: x * sigmoid(1.702 * x)", "gelu (exact erf)"
    c.activation = s.rfind("quick_gelu", 0) == 0 ? "quick_gelu"
                   : s.rfind("gelu", 0) == 0     ? "gelu"
                                                 : s;
  }
}

}  // namespace

void apply_json(const json& j, ModelConfig& c) {
  read(j, "family", c.family);
  read(j, "native_size", c.native_size);
  // "eps" / "v", or diffusers' scheduler_config names ("epsilon", "v_prediction")
  auto prediction = [&](const json& o, const char* key) {
    auto it = o.find(key);
    if (it == o.end() || !it->is_string()) return;
    const auto s = it->get<std::string>();
    if (s == "eps" || s == "epsilon") c.prediction = "eps";
    if (s == "v" || s == "v_prediction") c.prediction = "v";
  };
  // the noise schedule: sdgen's "schedule" {type, beta_start, beta_end, timesteps} or
  // diffusers' scheduler_config names (beta_schedule, num_train_timesteps), under either key
  auto schedule = [&](const json& o) {
    prediction(o, "prediction_type");
    read(o, "beta_start", c.schedule.beta_start);
    read(o, "beta_end", c.schedule.beta_end);
    read(o, "timesteps", c.schedule.timesteps);
    read(o, "num_train_timesteps", c.schedule.timesteps);
    for (const char* key : {"type", "beta_schedule"}) {
      auto it = o.find(key);
      if (it == o.end() || !it->is_string()) continue;
      // the reference files describe it in words: "scaled_linear (LDM 'linear')"
      const auto v = it->get<std::string>();
      c.schedule.type = v.rfind("scaled_linear", 0) == 0 ? "scaled_linear"
                        : v.rfind("linear", 0) == 0      ? "linear"
                                                         : v;
    }
  };
  for (const char* key : {"scheduler", "schedule"})
    if (auto s = j.find(key); s != j.end() && s->is_object()) schedule(*s);
  prediction(j, "prediction");
  // the text encoders: sdgen's and diffusers' "text_encoder" / "text_encoder_2", or the
  // reference files' "clip_l" / "clip_g" (SDXL)
  for (const char* key : {"text_encoder", "clip_l"})
    if (auto t = j.find(key); t != j.end() && t->is_object()) read_text(*t, c.text);
  for (const char* key : {"text_encoder_2", "clip_g"})
    if (auto t = j.find(key); t != j.end() && t->is_object()) read_text(*t, c.text_2);
  if (auto u = j.find("unet"); u != j.end() && u->is_object()) {
    read(*u, "in_channels", c.unet.in_channels);
    read(*u, "out_channels", c.unet.out_channels);
    read(*u, "model_channels", c.unet.model_channels);
    read(*u, "channel_mult", c.unet.channel_mult);
    read(*u, "num_res_blocks", c.unet.num_res_blocks);
    read(*u, "attention_resolutions", c.unet.attention_resolutions);
    read(*u, "num_heads", c.unet.num_heads);
    read(*u, "num_head_channels", c.unet.num_head_channels);
    // one depth for every level (CompVis' int) or one per level (sgm's list)
    if (auto d = u->find("transformer_depth"); d != u->end()) {
      if (d->is_number_integer())
        c.unet.transformer_depth = {d->get<int>()};
      else if (d->is_array())
        c.unet.transformer_depth = d->get<std::vector<int>>();
    }
    read(*u, "transformer_depth_middle", c.unet.transformer_depth_middle);
    read(*u, "adm_in_channels", c.unet.adm_in_channels);
    read(*u, "context_dim", c.unet.context_dim);
    read(*u, "use_linear_proj", c.unet.use_linear_proj);
    read(*u, "use_linear_in_transformer", c.unet.use_linear_proj);
    // A file that gives a head width means the head count follows from it, and vice versa.
    if (auto h = u->find("num_head_channels");
        h != u->end() && h->is_number_integer() && h->get<int>() > 0) {
      c.unet.num_head_channels = h->get<int>();
    } else if (auto n = u->find("num_heads"); n != u->end() && n->is_number_integer()) {
      c.unet.num_head_channels = -1;
    }
  }
  if (auto v = j.find("vae"); v != j.end() && v->is_object()) {
    const json& dd =
        v->contains("ddconfig") && (*v)["ddconfig"].is_object() ? (*v)["ddconfig"] : *v;
    read(dd, "in_channels", c.vae.in_channels);
    read(dd, "out_ch", c.vae.out_channels);
    read(dd, "out_channels", c.vae.out_channels);
    read(dd, "ch", c.vae.ch);
    read(dd, "ch_mult", c.vae.ch_mult);
    read(dd, "num_res_blocks", c.vae.num_res_blocks);
    read(dd, "z_channels", c.vae.z_channels);
    read(*v, "embed_dim", c.vae.embed_dim);
    read(*v, "scale_factor", c.vae.scale_factor);
    read(dd, "norm_groups", c.vae.norm_groups);
  }
}

}  // namespace sdgen
