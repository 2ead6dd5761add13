#include "sdgen/models/openclip.h"

#include <stdexcept>

#include "sdgen/models/blocks.h"

namespace sdgen {

OpenClipAttentionImpl::OpenClipAttentionImpl(int64_t width, int64_t heads_) : heads(heads_) {
  in_proj_weight = register_parameter("in_proj_weight", nn::empty_parameter({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", nn::empty_parameter({3 * width}));
  out_proj = register_module("out_proj", nn::Linear(width, width));
}

torch::Tensor OpenClipAttentionImpl::forward(const torch::Tensor& x) {
  // One matmul for the packed projection, then q, k, v are the three width-sized slices.
  auto qkv = torch::nn::functional::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);
  auto q = split_heads(qkv[0], heads);
  auto k = split_heads(qkv[1], heads);
  auto v = split_heads(qkv[2], heads);
  return out_proj(merge_heads(attention(q, k, v, /*causal=*/true)));
}

OpenClipResBlockImpl::OpenClipResBlockImpl(const ClipTextConfig& c)
    : quick_gelu(c.activation == "quick_gelu") {
  if (c.activation != "quick_gelu" && c.activation != "gelu")
    throw std::invalid_argument("text encoder activation must be quick_gelu or gelu, not " +
                                c.activation);
  auto ln = [&]() { return nn::LayerNorm(c.width, c.layer_norm_eps); };
  ln_1 = register_module("ln_1", ln());
  attn = register_module("attn", OpenClipAttention(c.width, c.heads));
  ln_2 = register_module("ln_2", ln());
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  c_fc = mlp->register_module("c_fc", nn::Linear(c.width, c.intermediate));
  c_proj = mlp->register_module("c_proj", nn::Linear(c.intermediate, c.width));
}

torch::Tensor OpenClipResBlockImpl::forward(torch::Tensor x) {
  x = x + attn(ln_1(x));
  auto h = c_fc(ln_2(x));
  // open_clip's default nn.GELU is the exact erf form.
  h = quick_gelu ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
  return x + c_proj(h);
}

OpenClipTextModelImpl::OpenClipTextModelImpl(const ClipTextConfig& c) : config_(c) {
  if (c.heads <= 0 || c.width % c.heads != 0)
    throw std::invalid_argument("text encoder width " + std::to_string(c.width) +
                                " is not divisible by heads " + std::to_string(c.heads));
  if (c.layers < 2)
    throw std::invalid_argument(
        "an OpenCLIP text encoder for SD 2.x needs at least 2 layers "
        "(it uses the penultimate one), got " +
        std::to_string(c.layers));
  token_embedding = register_module("token_embedding", nn::Embedding(c.vocab_size, c.width));
  positional_embedding =
      register_parameter("positional_embedding", nn::empty_parameter({c.max_positions, c.width}));
  auto transformer = register_module("transformer", std::make_shared<torch::nn::Module>());
  resblocks = transformer->register_module("resblocks", torch::nn::ModuleList());
  for (int i = 0; i < c.layers; ++i) resblocks->push_back(OpenClipResBlock(c));
  ln_final = register_module("ln_final", nn::LayerNorm(c.width, c.layer_norm_eps));
  if (c.projection_dim > 0)
    text_projection =
        register_parameter("text_projection", nn::empty_parameter({c.width, c.projection_dim}));
}

torch::Tensor OpenClipTextModelImpl::embed(const torch::Tensor& ids,
                                           const std::vector<TokenEmbeddingFix>& fixes) {
  if (ids.size(1) > config_.max_positions)
    throw std::invalid_argument("text encoder takes at most " +
                                std::to_string(config_.max_positions) + " tokens, got " +
                                std::to_string(ids.size(1)));
  // (A1111 wraps open_clip's token_embedding the same way for SD 2.x)
  return apply_token_fixes(token_embedding(ids), fixes) +
         positional_embedding.narrow(0, 0, ids.size(1)).unsqueeze(0);
}

TextEncoderOutput OpenClipTextModelImpl::encode(const torch::Tensor& ids,
                                                const TextEncodeOptions& o) {
  const int n = static_cast<int>(resblocks->size());
  if (o.clip_skip < 1 || o.clip_skip > n - 1)
    throw std::invalid_argument("clip skip must be between 1 and " + std::to_string(n - 1) +
                                " for this text encoder (1 = the penultimate layer, as SD 2.x "
                                "uses it), got " +
                                std::to_string(o.clip_skip));
  const int used = n - o.clip_skip;
  TextEncoderOutput out;
  auto x = embed(ids, o.token_fixes);
  for (int i = 0; i < used; ++i) x = resblocks[i]->as<OpenClipResBlock>()->forward(x);
  out.hidden = o.final_norm ? ln_final(x) : x;
  if (o.pooled) {
    for (int i = used; i < n; ++i) x = resblocks[i]->as<OpenClipResBlock>()->forward(x);
    auto pooled = gather_end_tokens(ln_final(x), ids);
    out.pooled = text_projection.defined() ? torch::matmul(pooled, text_projection) : pooled;
  }
  return out;
}

torch::Tensor OpenClipTextModelImpl::forward_last(const torch::Tensor& ids) {
  auto x = embed(ids);
  for (const auto& block : *resblocks) x = block->as<OpenClipResBlock>()->forward(x);
  return ln_final(x);
}

std::vector<torch::Tensor> OpenClipTextModelImpl::hidden_states(const torch::Tensor& ids) {
  std::vector<torch::Tensor> out{embed(ids)};
  for (size_t i = 0; i < resblocks->size(); ++i)
    out.push_back(resblocks[i]->as<OpenClipResBlock>()->forward(out.back()));
  return out;
}

}  // namespace sdgen
