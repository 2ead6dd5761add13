#include "infer_config.h"

#include <algorithm>

namespace sdgen::infer {

int text_heads(int width) { return width % 64 == 0 ? width / 64 : std::max(1, width / 16); }

UNetConfig unet(const TensorSource& s, const std::string& up, const std::string& what) {
  auto dim = [&](const std::string& key, size_t d) {
    return static_cast<int>(s.dim(up + key, d, what));
  };
  UNetConfig u;
  u.model_channels = dim("input_blocks.0.0.weight", 0);
  u.in_channels = dim("input_blocks.0.0.weight", 1);
  u.out_channels = dim("out.2.weight", 0);
  const int n_input = s.count_indexed(up + "input_blocks.");
  int downsamples = 0;
  for (int i = 0; i < n_input; ++i)
    if (s.find(up + "input_blocks." + std::to_string(i) + ".0.op.weight")) ++downsamples;
  const int levels = downsamples + 1;
  u.num_res_blocks = (n_input - 1 - downsamples) / levels;
  u.channel_mult.clear();
  u.attention_resolutions.clear();
  std::vector<int> depth;
  int block = 1, ds = 1;
  for (int level = 0; level < levels; ++level) {
    const std::string b = "input_blocks." + std::to_string(block) + ".";
    u.channel_mult.push_back(dim(b + "0.out_layers.3.weight", 0) / u.model_channels);
    const bool attention = s.find(up + b + "1.proj_in.weight") != nullptr;
    if (attention) u.attention_resolutions.push_back(ds);
    depth.push_back(attention ? s.count_indexed(up + b + "1.transformer_blocks.") : 0);
    block += u.num_res_blocks + 1;
    ds *= 2;
  }
  const std::string mid = "middle_block.1.";
  const int middle = s.count_indexed(up + mid + "transformer_blocks.");
  // One depth everywhere (CompVis' int) when every attention level and the middle agree.
  bool uniform = true;
  for (int d : depth) uniform &= d == 0 || d == middle;
  if (uniform) {
    u.transformer_depth = {middle};
  } else {
    u.transformer_depth = depth;
    if (middle != depth.back()) u.transformer_depth_middle = middle;
  }
  u.context_dim = dim(mid + "transformer_blocks.0.attn2.to_k.weight", 1);
  dim(mid + "proj_in.weight", 0);  // required
  u.use_linear_proj = s.find(up + mid + "proj_in.weight")->shape.size() == 2;
  if (s.find(up + "label_emb.0.0.weight")) u.adm_in_channels = dim("label_emb.0.0.weight", 1);
  return u;
}

VaeConfig vae(const TensorSource& s, const std::string& p, const std::string& what) {
  auto dim = [&](const std::string& key, size_t d) {
    return static_cast<int>(s.dim(p + key, d, what));
  };
  VaeConfig c;
  c.ch = dim("encoder.conv_in.weight", 0);
  c.in_channels = dim("encoder.conv_in.weight", 1);
  c.out_channels = dim("decoder.conv_out.weight", 0);
  c.z_channels = dim("decoder.conv_in.weight", 1);
  c.embed_dim = dim("post_quant_conv.weight", 0);
  const int levels = s.count_indexed(p + "encoder.down.");
  c.ch_mult.clear();
  for (int i = 0; i < levels; ++i)
    c.ch_mult.push_back(dim("encoder.down." + std::to_string(i) + ".block.0.conv1.weight", 0) /
                        c.ch);
  c.num_res_blocks = s.count_indexed(p + "encoder.down.0.block.");
  return c;
}

ClipTextConfig clip_text(const TensorSource& s, const std::string& tp, const std::string& what) {
  ClipTextConfig c;
  c.vocab_size = static_cast<int>(s.dim(tp + "embeddings.token_embedding.weight", 0, what));
  c.width = static_cast<int>(s.dim(tp + "embeddings.token_embedding.weight", 1, what));
  c.max_positions = static_cast<int>(s.dim(tp + "embeddings.position_embedding.weight", 0, what));
  c.layers = s.count_indexed(tp + "encoder.layers.");
  c.intermediate = static_cast<int>(s.dim(tp + "encoder.layers.0.mlp.fc1.weight", 0, what));
  c.heads = text_heads(c.width);
  return c;
}

ClipTextConfig openclip_text(const TensorSource& s, const std::string& tp,
                             const std::string& what) {
  ClipTextConfig c;
  c.vocab_size = static_cast<int>(s.dim(tp + "token_embedding.weight", 0, what));
  c.width = static_cast<int>(s.dim(tp + "token_embedding.weight", 1, what));
  c.max_positions = static_cast<int>(s.dim(tp + "positional_embedding", 0, what));
  c.layers = s.count_indexed(tp + "transformer.resblocks.");
  c.intermediate = static_cast<int>(s.dim(tp + "transformer.resblocks.0.mlp.c_fc.weight", 0, what));
  c.activation = "gelu";  // open_clip's nn.GELU (erf); quick_gelu is OpenAI CLIP's
  c.heads = text_heads(c.width);
  if (s.find(tp + "text_projection"))
    c.projection_dim = static_cast<int>(s.dim(tp + "text_projection", 1, what));
  return c;
}

}  // namespace sdgen::infer
