// Building blocks shared by the UNet, the VAE and the text encoders. Parameter names follow the
// LDM checkpoints (CompVis ldm/modules/...), so a module's named_parameters() are checkpoint keys.
#pragma once
#include <torch/torch.h>

#include "sdgen/models/layers.h"

namespace sdgen {

// Softmax attention. q: [B, H, Nq, D], k/v: [B, H, Nk, D] -> [B, H, Nq, D].
// Uses at::scaled_dot_product_attention on libtorch >= 2.0 (flash / memory-efficient kernels on
// CUDA), the plain math otherwise. `causal` masks keys after the query position.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        bool causal = false);

// Whether attention() stores the [B, H, Nq, Nk] scores (the plain math of libtorch < 2.0), so
// that its memory grows with the square of the tokens (models/memory.h).
bool attention_is_quadratic();

// [B, N, H*D] -> [B, H, N, D]
torch::Tensor split_heads(const torch::Tensor& x, int64_t heads);
// [B, H, N, D] -> [B, N, H*D]
torch::Tensor merge_heads(const torch::Tensor& x);

// GroupNorm computed in float32 whatever the input dtype (CompVis GroupNorm32), cast back.
torch::Tensor group_norm_f32(const nn::GroupNorm& norm, const torch::Tensor& x);

// x * sigmoid(x), as the LDM code writes it.
inline torch::Tensor swish(const torch::Tensor& x) { return x * torch::sigmoid(x); }

nn::GroupNorm group_norm(int64_t channels, double eps, int64_t groups = 32);

// Cross-attention of the SD transformer blocks: to_q/to_k/to_v without bias, to_out.0.
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim);
  // x: [B, N, C], context: [B, M, Cctx] (undefined: self-attention) -> [B, N, C]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});
  nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::Sequential to_out{nullptr};
  int64_t heads;
};
TORCH_MODULE(CrossAttention);

// GEGLU feed-forward: net.0.proj (dim -> 2*inner), x * gelu(gate), net.2 (inner -> dim).
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t mult = 4);
  torch::Tensor forward(const torch::Tensor& x);  // x: [B, N, C]
  nn::Linear proj{nullptr}, out{nullptr};
};
TORCH_MODULE(FeedForward);

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim, int64_t context_dim);
  // x: [B, N, C], context: [B, M, Cctx]
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& context);
  CrossAttention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
  nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

}  // namespace sdgen
