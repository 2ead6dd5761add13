#include "sdgen/loading/diffusers_names.h"

#include <algorithm>

namespace sdgen {
namespace {

std::string n(int i) { return std::to_string(i); }

// A ResBlock's pair and its renamed layers (diffusers' renew_resnet_paths, reversed).
void add_resnet(DiffusersNameTable& t, const std::string& diffusers, const std::string& ldm) {
  t.emplace_back(diffusers, ldm);
  static const std::pair<const char*, const char*> kLayers[] = {
      {"norm1.", "in_layers.0."},          {"conv1.", "in_layers.2."},
      {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
      {"conv2.", "out_layers.3."},         {"conv_shortcut.", "skip_connection."}};
  for (const auto& [d, l] : kLayers) t.emplace_back(diffusers + d, ldm + l);
}

// A VAE resnet: the same layer names but the shortcut (diffusers' renew_vae_resnet_paths).
void add_vae_resnet(DiffusersNameTable& t, const std::string& diffusers, const std::string& ldm) {
  t.emplace_back(diffusers, ldm);
  t.emplace_back(diffusers + "conv_shortcut.", ldm + "nin_shortcut.");
}

bool has_attention(const UNetConfig& c, int ds) {
  return std::find(c.attention_resolutions.begin(), c.attention_resolutions.end(), ds) !=
         c.attention_resolutions.end();
}

// The renamed `name` by the longest `from` prefix of `table` (first or second of each pair).
std::string rename(const DiffusersNameTable& table, const std::string& name, bool forward) {
  const std::string dotted = name.empty() || name.back() == '.' ? name : name + ".";
  const std::pair<std::string, std::string>* best = nullptr;
  for (const auto& pair : table) {
    const std::string& from = forward ? pair.first : pair.second;
    if (dotted.compare(0, from.size(), from) == 0 &&
        (!best || from.size() > (forward ? best->first : best->second).size()))
      best = &pair;
  }
  if (!best) return "";
  const std::string& from = forward ? best->first : best->second;
  const std::string& to = forward ? best->second : best->first;
  std::string out = to + dotted.substr(from.size());
  if (dotted.size() != name.size()) out.pop_back();  // the '.' added above
  return out;
}

}  // namespace

DiffusersNameTable unet_diffusers_to_ldm(const UNetConfig& c) {
  DiffusersNameTable t = {{"conv_in.", "input_blocks.0.0."},
                          {"time_embedding.linear_1.", "time_embed.0."},
                          {"time_embedding.linear_2.", "time_embed.2."},
                          {"conv_norm_out.", "out.0."},
                          {"conv_out.", "out.2."}};
  if (c.adm_in_channels > 0) {
    // SDXL's text_time embedding (diffusers' add_embedding)
    t.emplace_back("add_embedding.linear_1.", "label_emb.0.0.");
    t.emplace_back("add_embedding.linear_2.", "label_emb.0.2.");
  }
  const int levels = static_cast<int>(c.channel_mult.size());
  const int per_level = c.num_res_blocks + 1;
  for (int level = 0, ds = 1; level < levels; ++level, ds *= 2) {
    const std::string down = "down_blocks." + n(level) + ".";
    for (int j = 0; j < c.num_res_blocks; ++j) {
      const std::string block = "input_blocks." + n(1 + level * per_level + j) + ".";
      add_resnet(t, down + "resnets." + n(j) + ".", block + "0.");
      if (has_attention(c, ds)) t.emplace_back(down + "attentions." + n(j) + ".", block + "1.");
    }
    if (level + 1 < levels)
      t.emplace_back(down + "downsamplers.0.conv.",
                     "input_blocks." + n(1 + level * per_level + c.num_res_blocks) + ".0.op.");
  }
  add_resnet(t, "mid_block.resnets.0.", "middle_block.0.");
  t.emplace_back("mid_block.attentions.0.", "middle_block.1.");
  add_resnet(t, "mid_block.resnets.1.", "middle_block.2.");
  for (int b = 0; b < levels; ++b) {
    const int level = levels - 1 - b;
    const bool attention = has_attention(c, 1 << level);
    const std::string up = "up_blocks." + n(b) + ".";
    for (int j = 0; j <= c.num_res_blocks; ++j) {
      const std::string block = "output_blocks." + n(b * per_level + j) + ".";
      add_resnet(t, up + "resnets." + n(j) + ".", block + "0.");
      if (attention) t.emplace_back(up + "attentions." + n(j) + ".", block + "1.");
      if (j == c.num_res_blocks && level != 0)
        t.emplace_back(up + "upsamplers.0.conv.", block + (attention ? "2" : "1") + ".conv.");
    }
  }
  return t;
}

DiffusersNameTable clip_diffusers_to_ldm(const ClipTextConfig& c) {
  DiffusersNameTable t = {{"text_model.embeddings.", "embeddings."},
                          {"text_model.final_layer_norm.", "final_layer_norm."}};
  for (int i = 0; i < c.layers; ++i)
    t.emplace_back("text_model.encoder.layers." + n(i) + ".", "encoder.layers." + n(i) + ".");
  return t;
}

DiffusersNameTable vae_diffusers_to_ldm(const VaeConfig& c, bool legacy_attention_names) {
  // the names both sides share are listed too, so that every name resolves
  DiffusersNameTable t = {{"quant_conv.", "quant_conv."}, {"post_quant_conv.", "post_quant_conv."}};
  const int levels = static_cast<int>(c.ch_mult.size());
  for (const std::string part : {"encoder.", "decoder."}) {
    t.emplace_back(part + "conv_in.", part + "conv_in.");
    t.emplace_back(part + "conv_out.", part + "conv_out.");
    t.emplace_back(part + "conv_norm_out.", part + "norm_out.");
    add_vae_resnet(t, part + "mid_block.resnets.0.", part + "mid.block_1.");
    add_vae_resnet(t, part + "mid_block.resnets.1.", part + "mid.block_2.");
    const std::string attn = part + "mid_block.attentions.0.";
    const std::string ldm = part + "mid.attn_1.";
    t.emplace_back(attn + "group_norm.", ldm + "norm.");
    t.emplace_back(attn + (legacy_attention_names ? "query." : "to_q."), ldm + "q.");
    t.emplace_back(attn + (legacy_attention_names ? "key." : "to_k."), ldm + "k.");
    t.emplace_back(attn + (legacy_attention_names ? "value." : "to_v."), ldm + "v.");
    t.emplace_back(attn + (legacy_attention_names ? "proj_attn." : "to_out.0."), ldm + "proj_out.");
  }
  for (int level = 0; level < levels; ++level) {
    const std::string down = "encoder.down_blocks." + n(level) + ".";
    const std::string ldm = "encoder.down." + n(level) + ".";
    for (int j = 0; j < c.num_res_blocks; ++j)
      add_vae_resnet(t, down + "resnets." + n(j) + ".", ldm + "block." + n(j) + ".");
    if (level + 1 < levels) t.emplace_back(down + "downsamplers.0.conv.", ldm + "downsample.conv.");
  }
  for (int b = 0; b < levels; ++b) {
    const int level = levels - 1 - b;
    const std::string up = "decoder.up_blocks." + n(b) + ".";
    const std::string ldm = "decoder.up." + n(level) + ".";
    for (int j = 0; j <= c.num_res_blocks; ++j)
      add_vae_resnet(t, up + "resnets." + n(j) + ".", ldm + "block." + n(j) + ".");
    if (level != 0) t.emplace_back(up + "upsamplers.0.conv.", ldm + "upsample.conv.");
  }
  return t;
}

bool vae_attention_is_linear(const std::string& ldm_prefix) {
  for (const char* part : {"encoder.", "decoder."})
    for (const char* conv : {"q.", "k.", "v.", "proj_out."})
      if (ldm_prefix == std::string(part) + "mid.attn_1." + conv) return true;
  return false;
}

std::string diffusers_to_ldm(const DiffusersNameTable& table, const std::string& name) {
  return rename(table, name, true);
}

std::string ldm_to_diffusers(const DiffusersNameTable& table, const std::string& name) {
  return rename(table, name, false);
}

}  // namespace sdgen
