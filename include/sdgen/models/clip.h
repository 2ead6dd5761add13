// CLIP text transformer in the Hugging Face CLIPTextModel layout that SD1 checkpoints use
// (cond_stage_model.transformer.text_model.*).
#pragma once
#include <torch/torch.h>

#include "sdgen/models/config.h"
#include "sdgen/models/layers.h"
#include "sdgen/models/text_encoder.h"

namespace sdgen {

class ClipAttentionImpl : public torch::nn::Module {
 public:
  ClipAttentionImpl(int64_t width, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);  // x: [B, T, C], causal
  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(ClipAttention);

class ClipLayerImpl : public torch::nn::Module {
 public:
  explicit ClipLayerImpl(const ClipTextConfig& c);
  torch::Tensor forward(torch::Tensor x);  // x: [B, T, C]
  ClipAttention self_attn{nullptr};
  nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};
  bool quick_gelu;
};
TORCH_MODULE(ClipLayer);

class ClipTextModelImpl : public torch::nn::Module, public TextEncoder {
 public:
  explicit ClipTextModelImpl(const ClipTextConfig& c);
  // ids: [B, T] int64 -> hidden [B, T, C]: clip_skip 1 = the last layer (A1111 numbering), N
  // the output of layer -N, then final_layer_norm unless o.final_norm is false; pooled as
  // TextEncoderOutput says (no projection: SD checkpoints carry none for this encoder).
  TextEncoderOutput encode(const torch::Tensor& ids, const TextEncodeOptions& o) override;
  int max_clip_skip() const override { return config_.layers; }
  // Residual stream after the embeddings (index 0) and after each layer (index i).
  std::vector<torch::Tensor> hidden_states(const torch::Tensor& ids) override;
  int64_t pad_id(int64_t eos_id) const override { return eos_id; }  // SD 1.x pads with EOS
  const ClipTextConfig& config() const override { return config_; }
  torch::nn::Module& module() override { return *this; }

  nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
  torch::nn::ModuleList layers{nullptr};
  nn::LayerNorm final_layer_norm{nullptr};

 private:
  // ids [B, T] -> token embeddings (with `fixes`) + position embeddings [B, T, C]
  torch::Tensor embed(const torch::Tensor& ids, const std::vector<TokenEmbeddingFix>& fixes = {});
  ClipTextConfig config_;
};
TORCH_MODULE(ClipTextModel);

}  // namespace sdgen
