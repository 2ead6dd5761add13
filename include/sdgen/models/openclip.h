// The OpenCLIP text tower that SD 2.x checkpoints carry under cond_stage_model.model.*
// (mlfoundations/open_clip src/open_clip/model.py and transformer.py; Stability-AI's
// FrozenOpenCLIPEmbedder with layer "penultimate"). Module names mirror the checkpoint keys.
#pragma once
#include <torch/torch.h>

#include "sdgen/models/config.h"
#include "sdgen/models/layers.h"
#include "sdgen/models/text_encoder.h"

namespace sdgen {

// nn.MultiheadAttention as open_clip stores it: one packed in_proj (rows 0..W-1 give q, the next
// W rows k, the last W rows v) and out_proj.
class OpenClipAttentionImpl : public torch::nn::Module {
 public:
  OpenClipAttentionImpl(int64_t width, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);  // x: [B, T, C], causal
  torch::Tensor in_proj_weight, in_proj_bias;     // [3C, C], [3C]
  nn::Linear out_proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(OpenClipAttention);

// Pre-LN residual block: x + attn(ln_1(x)), then x + c_proj(gelu(c_fc(ln_2(x)))).
class OpenClipResBlockImpl : public torch::nn::Module {
 public:
  explicit OpenClipResBlockImpl(const ClipTextConfig& c);
  torch::Tensor forward(torch::Tensor x);  // x: [B, T, C]
  nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  OpenClipAttention attn{nullptr};
  nn::Linear c_fc{nullptr}, c_proj{nullptr};
  bool quick_gelu;
};
TORCH_MODULE(OpenClipResBlock);

class OpenClipTextModelImpl : public torch::nn::Module, public TextEncoder {
 public:
  explicit OpenClipTextModelImpl(const ClipTextConfig& c);
  // hidden: clip_skip 1 = the penultimate block's output (SD 2.x's context: every resblock
  // but the last), N = N - 1 blocks fewer; then ln_final unless o.final_norm is false. pooled:
  // ln_final of the last block at the end token, times text_projection when the model has it
  // (open_clip's encode_text). See TextEncoder.
  TextEncoderOutput encode(const torch::Tensor& ids, const TextEncodeOptions& o) override;
  // ln_final after every resblock (open_clip's layer "last"; not what SD 2.x uses).
  torch::Tensor forward_last(const torch::Tensor& ids);
  int max_clip_skip() const override { return config_.layers - 1; }
  std::vector<torch::Tensor> hidden_states(const torch::Tensor& ids) override;
  int64_t pad_id(int64_t) const override { return 0; }
  const ClipTextConfig& config() const override { return config_; }
  torch::nn::Module& module() override { return *this; }

  nn::Embedding token_embedding{nullptr};
  torch::Tensor positional_embedding;  // [T, C], a bare parameter (no ".weight")
  torch::nn::ModuleList resblocks{nullptr};
  nn::LayerNorm ln_final{nullptr};
  torch::Tensor text_projection;  // [C, projection_dim], used as x @ text_projection; or undefined

 private:
  // ids [B, T] -> token embeddings (with `fixes`) + position embeddings [B, T, C]
  torch::Tensor embed(const torch::Tensor& ids, const std::vector<TokenEmbeddingFix>& fixes = {});
  ClipTextConfig config_;
};
TORCH_MODULE(OpenClipTextModel);

}  // namespace sdgen
