// SDXL's conditioning as A1111 computes it on Stability's sgm code (../shared/docs/sdxl.md):
// each 75-token chunk through CLIP ViT-L (hidden_states[-2], no final norm, EOS padding) and
// OpenCLIP ViT-bigG (the penultimate block's output, no ln_final, 0 padding), each weighted and
// its mean restored per chunk and per encoder; the two contexts side by side (CLIP-L first);
// the vector y = [pooled, original (h, w), crop (top, left), target (h, w)] with 256-wide
// sinusoidal embeddings, the pooled output from bigG's first chunk. An empty negative prompt
// gives zeros for the text parts (A1111's force_zero_embeddings) and keeps the sizes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "sdgen/pipeline/conditioner.h"

namespace sdgen {

class SdxlConditioner : public Conditioner {
 public:
  SdxlConditioner(const LoadedModel& model, std::shared_ptr<const Tokenizer> tokenizer,
                  torch::Device device);
  // The chunks as CLIP-L frames them (bigG's are the same with 0 after the end token).
  std::vector<PromptChunk> chunks(const std::string& prompt,
                                  Emphasis emphasis = Emphasis::kA1111) const override;
  // Context [1, 77k, C_L + C_G] and vector [1, P + 6 x 256]. The clip skip of `r` has no
  // effect (as in A1111 without its "SDXL clip skip" setting).
  Conditioning encode(const std::string& prompt, const ConditionRequest& r) const override;

 private:
  std::shared_ptr<TextEncoder> clip_l_, clip_g_;
  torch::Device device_;
  int size_embed_dim_;
};

// The size part of SDXL's vector: each number through the 256-wide sinusoidal embedding
// (sgm ConcatTimestepEmbedderND: cos then sin, float32), in the order original (h, w),
// crop (top, left), target (h, w) -> [1, 6 * dim].
torch::Tensor sdxl_size_embedding(const SizeConditioning& s, int64_t dim);

}  // namespace sdgen
