// The interface the pipeline sees of a text encoder, whatever its family: CLIP ViT-L/14 in the
// Hugging Face layout (SD 1.x, clip.h) or the OpenCLIP text tower (SD 2.x, openclip.h).
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "sdgen/models/config.h"

namespace sdgen {

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // ids: [B, T] int64 -> context [B, T, C] for the UNet. clip_skip 1 is the layer the model
  // family was trained with (SD 1.x: the last layer, SD 2.x: the penultimate one); each step
  // above 1 skips one more layer. The final LayerNorm is applied in every case.
  virtual torch::Tensor forward(const torch::Tensor& ids, int clip_skip = 1) = 0;
  // The largest clip_skip that forward() accepts.
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

}  // namespace sdgen
