// Prompt -> Conditioning, as A1111 encodes prompts for SD 1.x and 2.x: the prompt's emphasis
// runs tokenised into chunks of 75 (each BOS + 75 + EOS, padded as the model pads; see
// prompt_chunks.h), each chunk through the text encoder on its own, weighted, its mean
// restored (apply_emphasis), the chunks concatenated along the tokens.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <torch/torch.h>

#include "sdgen/models/conditioning.h"
#include "sdgen/models/text_encoder.h"
#include "sdgen/text/prompt_chunks.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen {

class PromptEncoder {
 public:
  PromptEncoder(std::shared_ptr<TextEncoder> text, std::shared_ptr<const Tokenizer> tokenizer,
                torch::Device device);

  std::vector<PromptChunk> chunks(const std::string& prompt,
                                  Emphasis emphasis = Emphasis::kA1111) const;
  // The ids of all chunks, one after the other (max_positions per chunk).
  std::vector<int64_t> token_ids(const std::string& prompt,
                                 Emphasis emphasis = Emphasis::kA1111) const;
  // Context [1, 77k, C] in the text encoder's dtype, on its device.
  Conditioning encode(const std::string& prompt, int clip_skip,
                      Emphasis emphasis = Emphasis::kA1111) const;
  // encode() through a cache keyed by (prompt, clip skip, emphasis): a batch repeating a
  // prompt encodes it once. Bounded (prompt files are long).
  Conditioning cached(const std::string& prompt, int clip_skip, Emphasis emphasis);

  const Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  std::shared_ptr<TextEncoder> text_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  torch::Device device_;
  std::map<std::tuple<std::string, int, int>, Conditioning> cache_;
};

// A1111's EmphasisOriginal on the context of one chunk: z [1, T, C] times `weights` (T, one
// per token, as float32), then times mean(z) / mean(weighted z), both means over the whole
// chunk; computed in float32, returned in z's dtype. All weights 1.0 return z unchanged.
torch::Tensor apply_emphasis(const torch::Tensor& z, const std::vector<double>& weights);

}  // namespace sdgen
