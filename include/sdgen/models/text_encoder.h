// The interface the pipeline sees of a text encoder, whatever its family: CLIP ViT-L/14 in the
// Hugging Face layout (SD 1.x, clip.h) or the OpenCLIP text tower (SD 2.x, openclip.h).
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "sdgen/models/config.h"

namespace sdgen {

// Vectors that replace token embeddings before the position embeddings are added (textual
// inversion: A1111's EmbeddingsWithFixes): batch row `row`, positions `position` ..
// position + n - 1, as many rows of `vectors` as fit before the end of the sequence.
struct TokenEmbeddingFix {
  int64_t row = 0, position = 0;
  torch::Tensor vectors;  // [n, C]; cast to the token embeddings' dtype and device
};

// x [B, T, C] (token embeddings) with `fixes` applied: a copy when there are any.
torch::Tensor apply_token_fixes(const torch::Tensor& x,
                                const std::vector<TokenEmbeddingFix>& fixes);

struct TextEncodeOptions {
  // Which layer's output is the context, in A1111 numbering: 1 is the layer the family was
  // trained with (SD 1.x: the last layer, SD 2.x: the penultimate one); each step above 1
  // skips one more layer.
  int clip_skip = 1;
  // The final LayerNorm on that layer's output (SD 1.x and 2.x: yes; SDXL's encoders: no).
  bool final_norm = true;
  // Also compute the pooled output.
  bool pooled = false;
  // Token embeddings replaced by embeddings' vectors (the ids there are placeholders).
  std::vector<TokenEmbeddingFix> token_fixes;
};

struct TextEncoderOutput {
  torch::Tensor hidden;  // [B, T, C]: the context for the UNet
  // [B, P] when asked for: the final LayerNorm of the *last* layer at the end-of-text position
  // (the position of each row's largest id, as CLIP and open_clip take it: the end token is the
  // last id of their vocabularies), times the text projection where the model has one
  // (P = projection_dim), else P = C.
  torch::Tensor pooled;
};

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // ids: [B, T] int64.
  virtual TextEncoderOutput encode(const torch::Tensor& ids, const TextEncodeOptions& o) = 0;
  // The context alone: encode(ids, {clip_skip}).hidden.
  torch::Tensor forward(const torch::Tensor& ids, int clip_skip = 1) {
    TextEncodeOptions o;
    o.clip_skip = clip_skip;
    return encode(ids, o).hidden;
  }
  // The largest clip_skip that encode() accepts.
  virtual int max_clip_skip() const = 0;
  // Residual stream after the embeddings (index 0) and after each layer (index i), without the
  // final LayerNorm (for parity tests).
  virtual std::vector<torch::Tensor> hidden_states(const torch::Tensor& ids) = 0;
  // The id that fills the positions after EOS: SD 1.x repeats EOS (`eos_id`), SD 2.x pads
  // with 0 (open_clip.tokenize fills a zero tensor).
  virtual int64_t pad_id(int64_t eos_id) const = 0;
  virtual const ClipTextConfig& config() const = 0;
  // The parameters, for eval(), to() and the loader.
  virtual torch::nn::Module& module() = 0;
};

// Rows of `x` [B, T, C] at each row's end-of-text position (argmax of `ids` [B, T]) -> [B, C].
torch::Tensor gather_end_tokens(const torch::Tensor& x, const torch::Tensor& ids);

}  // namespace sdgen
