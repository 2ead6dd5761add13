#include "sdgen/models/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>

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

[[noreturn]] void wrong(const std::string& key, const char* want, const json& v) {
  std::string text = v.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  throw std::invalid_argument("'" + key + "' must be " + want + ", got " + text);
}

// Reads j[key] into out when present. Text where a number or list belongs is a description
// (the reference files describe some fields in words: "num_heads": "channels // 64 ...") and
// is left alone; any other type, a fraction for an integer or an integer beyond int is an
// error naming the key.
template <typename T>
void read(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_string()) return;
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) wrong(key, "true or false", *it);
    out = it->get<bool>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number()) wrong(key, "a number", *it);
    out = it->get<T>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) wrong(key, "a whole number", *it);
    // (nlohmann keeps every non-negative integer as unsigned)
    const int64_t v = it->is_number_unsigned()
                          ? static_cast<int64_t>(std::min<uint64_t>(it->get<uint64_t>(), INT64_MAX))
                          : it->get<int64_t>();
    if (v < INT32_MIN || v > INT32_MAX) wrong(key, "a whole number that fits 32 bits", *it);
    out = static_cast<T>(v);
  } else {
    if (!it->is_array()) wrong(key, "a list of whole numbers", *it);
    T list;
    for (const auto& e : *it) {
      if (!e.is_number_integer() || (!e.is_number_unsigned() && e.get<int64_t>() < 0) ||
          (e.is_number_unsigned() && e.get<uint64_t>() > 1 << 20))
        wrong(key, "a list of whole numbers from 0 to 1048576", *it);
      list.push_back(static_cast<int>(e.get<int64_t>()));
    }
    out = std::move(list);
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
  if (!j.is_object())
    throw std::invalid_argument(std::string("must hold a JSON object {...} at the top, not ") +
                                j.type_name());
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
      if (d->is_array()) {
        read(*u, "transformer_depth", c.unet.transformer_depth);
      } else {
        int depth = 0;
        read(*u, "transformer_depth", depth);
        if (!d->is_string()) c.unet.transformer_depth = {depth};
      }
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

namespace {

void check(bool ok, const std::string& field, const std::string& want, const std::string& got) {
  if (!ok) throw std::invalid_argument("'" + field + "' must be " + want + ", got " + got);
}
std::string text_of(const std::vector<int>& v) { return json(v).dump(); }
std::string text_of(double v) { return json(v).dump(); }

void validate_text(const ClipTextConfig& t, const std::string& key) {
  check(t.vocab_size >= 1, key + ".vocab_size", "at least 1", std::to_string(t.vocab_size));
  check(t.max_positions >= 2 && t.max_positions <= 1 << 16, key + ".max_positions",
        "from 2 to 65536", std::to_string(t.max_positions));
  check(t.width >= 1, key + ".width", "at least 1", std::to_string(t.width));
  check(t.layers >= 1 && t.layers <= 1024, key + ".layers", "from 1 to 1024",
        std::to_string(t.layers));
  check(t.heads >= 1 && t.width % t.heads == 0, key + ".heads",
        "a divisor of the width " + std::to_string(t.width), std::to_string(t.heads));
  check(t.intermediate >= 1, key + ".intermediate", "at least 1", std::to_string(t.intermediate));
  check(std::isfinite(t.layer_norm_eps) && t.layer_norm_eps > 0 && t.layer_norm_eps < 1,
        key + ".layer_norm_eps", "a small positive number such as 1e-5", text_of(t.layer_norm_eps));
  check(t.activation == "quick_gelu" || t.activation == "gelu", key + ".activation",
        "\"quick_gelu\" or \"gelu\"", json(t.activation).dump());
  check(t.projection_dim >= 0, key + ".projection_dim", "0 or more",
        std::to_string(t.projection_dim));
}

bool all_at_least(const std::vector<int>& v, int lo) {
  for (int x : v)
    if (x < lo) return false;
  return true;
}

}  // namespace

void validate_config(const ModelConfig& c) {
  validate_text(c.text, "text_encoder");
  if (c.has_text_2()) validate_text(c.text_2, "text_encoder_2");
  const UNetConfig& u = c.unet;
  check(u.in_channels >= 1, "unet.in_channels", "at least 1", std::to_string(u.in_channels));
  check(u.out_channels >= 1, "unet.out_channels", "at least 1", std::to_string(u.out_channels));
  check(u.model_channels >= 1, "unet.model_channels", "at least 1",
        std::to_string(u.model_channels));
  check(!u.channel_mult.empty() && u.channel_mult.size() <= 8 && all_at_least(u.channel_mult, 1),
        "unet.channel_mult", "1 to 8 factors of at least 1", text_of(u.channel_mult));
  check(u.num_res_blocks >= 1 && u.num_res_blocks <= 64, "unet.num_res_blocks", "from 1 to 64",
        std::to_string(u.num_res_blocks));
  check(all_at_least(u.attention_resolutions, 1), "unet.attention_resolutions",
        "factors of at least 1", text_of(u.attention_resolutions));
  if (u.num_head_channels == -1)
    check(u.num_heads >= 1, "unet.num_heads", "at least 1", std::to_string(u.num_heads));
  else
    check(u.num_head_channels >= 1, "unet.num_head_channels", "at least 1 (or -1)",
          std::to_string(u.num_head_channels));
  check(!u.transformer_depth.empty() && (u.transformer_depth.size() == 1 ||
                                         u.transformer_depth.size() == u.channel_mult.size()),
        "unet.transformer_depth", "one depth or one per level of channel_mult",
        text_of(u.transformer_depth));
  check(u.context_dim >= 1, "unet.context_dim", "at least 1", std::to_string(u.context_dim));
  check(u.adm_in_channels >= 0, "unet.adm_in_channels", "0 or more",
        std::to_string(u.adm_in_channels));
  for (size_t level = 0; level < u.channel_mult.size(); ++level) {
    const int channels = u.model_channels * u.channel_mult[level];
    const int heads = u.heads_for(channels);
    check(heads >= 1 && channels % heads == 0, "unet.num_heads",
          "a divisor of every level's channels (" + std::to_string(channels) + " here)",
          std::to_string(heads) + " heads");
  }
  const VaeConfig& v = c.vae;
  check(v.in_channels >= 1 && v.out_channels >= 1, "vae.in_channels/out_channels", "at least 1",
        std::to_string(v.in_channels) + "/" + std::to_string(v.out_channels));
  check(v.ch >= 1, "vae.ch", "at least 1", std::to_string(v.ch));
  check(!v.ch_mult.empty() && v.ch_mult.size() <= 8 && all_at_least(v.ch_mult, 1), "vae.ch_mult",
        "1 to 8 factors of at least 1", text_of(v.ch_mult));
  check(v.num_res_blocks >= 1 && v.num_res_blocks <= 64, "vae.num_res_blocks", "from 1 to 64",
        std::to_string(v.num_res_blocks));
  check(v.z_channels >= 1 && v.embed_dim >= 1, "vae.z_channels/embed_dim", "at least 1",
        std::to_string(v.z_channels) + "/" + std::to_string(v.embed_dim));
  check(std::isfinite(v.scale_factor) && v.scale_factor > 0, "vae.scale_factor",
        "a positive number (SD 1.x: 0.18215)", text_of(v.scale_factor));
  check(v.norm_groups >= 1 && v.ch % v.norm_groups == 0, "vae.norm_groups",
        "a divisor of vae.ch (" + std::to_string(v.ch) + ")", std::to_string(v.norm_groups));
  const ScheduleConfig& s = c.schedule;
  check(s.type == "scaled_linear" || s.type == "linear", "schedule.type",
        "\"scaled_linear\" or \"linear\"", json(s.type).dump());
  check(std::isfinite(s.beta_start) && s.beta_start > 0 && s.beta_start < 1, "schedule.beta_start",
        "between 0 and 1", text_of(s.beta_start));
  check(std::isfinite(s.beta_end) && s.beta_end >= s.beta_start && s.beta_end < 1,
        "schedule.beta_end", "from beta_start to 1", text_of(s.beta_end));
  check(s.timesteps >= 2 && s.timesteps <= 100000, "schedule.timesteps", "from 2 to 100000",
        std::to_string(s.timesteps));
  check(c.native_size >= 0 && c.native_size <= 16384, "native_size", "from 0 to 16384",
        std::to_string(c.native_size));
  // (empty: still open, SD 2.x before the loader settles it)
  check(c.prediction.empty() || c.prediction == "eps" || c.prediction == "v", "prediction",
        "\"eps\" or \"v\"", json(c.prediction).dump());
}

}  // namespace sdgen
