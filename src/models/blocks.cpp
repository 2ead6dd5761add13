#include "sdgen/models/blocks.h"

#include <cmath>

namespace sdgen {

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        bool causal) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, causal);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto sim = torch::matmul(q, k.transpose(-1, -2)) * scale;  // [B, H, Nq, Nk]
  if (causal) {
    auto mask = torch::ones({q.size(-2), k.size(-2)}, q.options().dtype(torch::kBool)).triu(1);
    sim = sim.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  return torch::matmul(sim.softmax(-1), v);
#endif
}

bool attention_is_quadratic() {
#if TORCH_VERSION_MAJOR >= 2
  return false;
#else
  return true;
#endif
}

torch::Tensor split_heads(const torch::Tensor& x, int64_t heads) {
  const auto b = x.size(0), n = x.size(1), c = x.size(2);
  return x.view({b, n, heads, c / heads}).transpose(1, 2);
}

torch::Tensor merge_heads(const torch::Tensor& x) {
  const auto b = x.size(0), h = x.size(1), n = x.size(2), d = x.size(3);
  return x.transpose(1, 2).reshape({b, n, h * d});
}

torch::Tensor group_norm_f32(const nn::GroupNorm& norm, const torch::Tensor& x) {
  if (x.scalar_type() == torch::kFloat)
    return torch::group_norm(x, norm->groups, norm->weight, norm->bias, norm->eps);
  return torch::group_norm(x.to(torch::kFloat), norm->groups, norm->weight.to(torch::kFloat),
                           norm->bias.to(torch::kFloat), norm->eps)
      .to(x.scalar_type());
}

nn::GroupNorm group_norm(int64_t channels, double eps, int64_t groups) {
  return nn::GroupNorm(groups, channels, eps);
}

CrossAttentionImpl::CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads_,
                                       int64_t head_dim)
    : heads(heads_) {
  const int64_t inner = heads_ * head_dim;
  to_q = register_module("to_q", nn::Linear(query_dim, inner, /*bias=*/false));
  to_k = register_module("to_k", nn::Linear(context_dim, inner, /*bias=*/false));
  to_v = register_module("to_v", nn::Linear(context_dim, inner, /*bias=*/false));
  to_out = register_module("to_out", torch::nn::Sequential(nn::Linear(inner, query_dim)));
}

torch::Tensor CrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const auto& ctx = context.defined() ? context : x;
  auto q = split_heads(to_q(x), heads);
  auto k = split_heads(to_k(ctx), heads);
  auto v = split_heads(to_v(ctx), heads);
  return to_out->forward(merge_heads(attention(q, k, v)));
}

// The checkpoint names the GEGLU projection ff.net.0.proj and the output ff.net.2.
FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t mult) {
  const int64_t inner = dim * mult;
  auto net = register_module("net", torch::nn::ModuleList());
  auto geglu = std::make_shared<torch::nn::Module>();
  proj = geglu->register_module("proj", nn::Linear(dim, inner * 2));
  net->push_back(geglu);
  net->push_back(torch::nn::Dropout(0.0));
  out = nn::Linear(inner, dim);
  net->push_back(out);
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  auto parts = proj(x).chunk(2, -1);
  return out(parts[0] * torch::gelu(parts[1]));
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim,
                                                     int64_t context_dim) {
  attn1 = register_module("attn1", CrossAttention(dim, dim, heads, head_dim));
  ff = register_module("ff", FeedForward(dim));
  attn2 = register_module("attn2", CrossAttention(dim, context_dim, heads, head_dim));
  auto ln = [&](const char* name) { return register_module(name, nn::LayerNorm(dim, 1e-5)); };
  norm1 = ln("norm1");
  norm2 = ln("norm2");
  norm3 = ln("norm3");
}

torch::Tensor BasicTransformerBlockImpl::forward(torch::Tensor x, const torch::Tensor& context) {
  x = attn1(norm1(x)) + x;
  x = attn2(norm2(x), context) + x;
  return ff(norm3(x)) + x;
}

}  // namespace sdgen
