#include "sdgen/models/clip.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "sdgen/models/blocks.h"

namespace sdgen {

ClipAttentionImpl::ClipAttentionImpl(int64_t width, int64_t heads_) : heads(heads_) {
  q_proj = register_module("q_proj", nn::Linear(width, width));
  k_proj = register_module("k_proj", nn::Linear(width, width));
  v_proj = register_module("v_proj", nn::Linear(width, width));
  out_proj = register_module("out_proj", nn::Linear(width, width));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x) {
  auto q = split_heads(q_proj(x), heads);
  auto k = split_heads(k_proj(x), heads);
  auto v = split_heads(v_proj(x), heads);
  return out_proj(merge_heads(attention(q, k, v, /*causal=*/true)));
}

ClipLayerImpl::ClipLayerImpl(const ClipTextConfig& c) : quick_gelu(c.activation == "quick_gelu") {
  if (c.activation != "quick_gelu" && c.activation != "gelu")
    throw std::invalid_argument("text encoder activation must be quick_gelu or gelu, not " +
                                c.activation);
  auto ln = [&]() { return nn::LayerNorm(c.width, c.layer_norm_eps); };
  self_attn = register_module("self_attn", ClipAttention(c.width, c.heads));
  layer_norm1 = register_module("layer_norm1", ln());
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  fc1 = mlp->register_module("fc1", nn::Linear(c.width, c.intermediate));
  fc2 = mlp->register_module("fc2", nn::Linear(c.intermediate, c.width));
  layer_norm2 = register_module("layer_norm2", ln());
}

torch::Tensor ClipLayerImpl::forward(torch::Tensor x) {
  x = x + self_attn(layer_norm1(x));
  auto h = fc1(layer_norm2(x));
  h = quick_gelu ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
  return x + fc2(h);
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& c) : config_(c) {
  if (c.heads <= 0 || c.width % c.heads != 0)
    throw std::invalid_argument("text encoder width " + std::to_string(c.width) +
                                " is not divisible by heads " + std::to_string(c.heads));
  auto embeddings = register_module("embeddings", std::make_shared<torch::nn::Module>());
  token_embedding =
      embeddings->register_module("token_embedding", nn::Embedding(c.vocab_size, c.width));
  position_embedding =
      embeddings->register_module("position_embedding", nn::Embedding(c.max_positions, c.width));
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  layers = encoder->register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.layers; ++i) layers->push_back(ClipLayer(c));
  final_layer_norm = register_module("final_layer_norm", nn::LayerNorm(c.width, c.layer_norm_eps));
}

torch::Tensor ClipTextModelImpl::embed(const torch::Tensor& ids,
                                       const std::vector<TokenEmbeddingFix>& fixes) {
  if (ids.size(1) > config_.max_positions)
    throw std::invalid_argument("text encoder takes at most " +
                                std::to_string(config_.max_positions) + " tokens, got " +
                                std::to_string(ids.size(1)));
  auto pos = torch::arange(ids.size(1), ids.options().dtype(torch::kLong));
  return apply_token_fixes(token_embedding(ids), fixes) + position_embedding(pos).unsqueeze(0);
}

TextEncoderOutput ClipTextModelImpl::encode(const torch::Tensor& ids, const TextEncodeOptions& o) {
  const int n = static_cast<int>(layers->size());
  if (o.clip_skip < 1 || o.clip_skip > n)
    throw std::invalid_argument("clip skip must be between 1 and " + std::to_string(n) +
                                " for this text encoder, got " + std::to_string(o.clip_skip));
  const int used = n - (o.clip_skip - 1);
  TextEncoderOutput out;
  auto x = embed(ids, o.token_fixes);
  for (int i = 0; i < used; ++i) x = layers[i]->as<ClipLayer>()->forward(x);
  out.hidden = o.final_norm ? final_layer_norm(x) : x;
  if (o.pooled) {
    for (int i = used; i < n; ++i) x = layers[i]->as<ClipLayer>()->forward(x);
    out.pooled =
        gather_end_tokens(used == n && o.final_norm ? out.hidden : final_layer_norm(x), ids);
  }
  return out;
}

torch::Tensor apply_token_fixes(const torch::Tensor& x,
                                const std::vector<TokenEmbeddingFix>& fixes) {
  if (fixes.empty()) return x;
  // A1111: tensor = cat([tensor[:offset + 1], emb[:emb_len], tensor[offset + 1 + emb_len:]])
  // with emb_len = min(T - offset - 1, n), emb cast to the embeddings' dtype
  auto out = x.clone();
  for (const auto& f : fixes) {
    if (f.row < 0 || f.row >= x.size(0) || f.position < 0 || f.vectors.dim() != 2 ||
        f.vectors.size(1) != x.size(2))
      throw std::invalid_argument("embedding vectors " + std::to_string(f.vectors.size(-1)) +
                                  " wide at row " + std::to_string(f.row) + ", position " +
                                  std::to_string(f.position) + " for token embeddings " +
                                  std::to_string(x.size(2)) + " wide");
    const int64_t n = std::min(x.size(1) - f.position, f.vectors.size(0));
    if (n <= 0) continue;
    out[f.row].narrow(0, f.position, n).copy_(f.vectors.narrow(0, 0, n).to(out.options()));
  }
  return out;
}

torch::Tensor gather_end_tokens(const torch::Tensor& x, const torch::Tensor& ids) {
  auto rows = torch::arange(x.size(0), ids.options().dtype(torch::kLong));
  return x.index({rows, ids.argmax(-1)});
}

std::vector<torch::Tensor> ClipTextModelImpl::hidden_states(const torch::Tensor& ids) {
  std::vector<torch::Tensor> out{embed(ids)};
  for (size_t i = 0; i < layers->size(); ++i)
    out.push_back(layers[i]->as<ClipLayer>()->forward(out.back()));
  return out;
}

}  // namespace sdgen
