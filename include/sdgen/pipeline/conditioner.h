// Prompt -> Conditioning, per model family. Every family reads prompts as A1111 does: the
// emphasis runs tokenised into chunks of 75 (each BOS + 75 + EOS, padded as the encoder pads;
// see prompt_chunks.h), each chunk through a text encoder on its own, weighted, its mean
// restored (apply_emphasis), the chunks concatenated along the tokens. What a family builds
// from that differs: SD 1.x / 2.x the context alone (TextContextConditioner), SDXL two encoders'
// contexts, the pooled output and size embeddings (sdxl_conditioner.h).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sdgen/job/params.h"
#include "sdgen/loading/model_loader.h"
#include "sdgen/models/conditioning.h"
#include "sdgen/models/text_encoder.h"
#include "sdgen/text/embeddings.h"
#include "sdgen/text/prompt_chunks.h"
#include "sdgen/text/tokenizer.h"

namespace sdgen {

// What an encoding depends on besides the prompt.
struct ConditionRequest {
  ConditionRequest() = default;
  // A prompt's encoding at a clip skip (`{2}`, `{1, Emphasis::kNone}`), no size conditioning.
  ConditionRequest(int clip_skip_, Emphasis emphasis_ = Emphasis::kA1111)  // NOLINT: implicit
      : clip_skip(clip_skip_), emphasis(emphasis_) {}
  int clip_skip = 1;
  Emphasis emphasis = Emphasis::kA1111;
  bool negative = false;  // the negative prompt (SDXL zeroes an empty one, as A1111 does)
  // The image and SDXL's size conditioning, resolved (no zeros).
  int width = 0, height = 0;
  SizeConditioning sizes;
};

// The request for an image of `p` (its resolved size; SDXL sizes defaulted to it).
ConditionRequest condition_request(const GenerationParams& p, bool negative);

class Conditioner {
 public:
  explicit Conditioner(std::shared_ptr<const Tokenizer> tokenizer);
  virtual ~Conditioner() = default;
  // The prompt's chunks as the (first) text encoder frames them.
  virtual std::vector<PromptChunk> chunks(const std::string& prompt,
                                          Emphasis emphasis = Emphasis::kA1111) const = 0;
  // The ids of all chunks, one after the other.
  std::vector<int64_t> token_ids(const std::string& prompt,
                                 Emphasis emphasis = Emphasis::kA1111) const;
  // [1, ...] rows on the text encoder's device, in its dtype.
  virtual Conditioning encode(const std::string& prompt, const ConditionRequest& r) const = 0;
  // encode() through a cache keyed by the prompt and the request: a batch repeating a prompt
  // encodes it once. Bounded (prompt files are long). With `used`, the embeddings the encoding
  // used (used_embeddings of its chunks: A1111's list for one encoding call).
  Conditioning cached(const std::string& prompt, const ConditionRequest& r,
                      EmbeddingHashes* used = nullptr);
  // Forgets every cached encoding (the text encoder's weights changed: a LoRA).
  void clear_cache() { cache_.clear(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

  // Textual-inversion embeddings: their names in prompts (and negative prompts) become their
  // vectors from now on (null or empty: none). Clears the cache, whose encodings were made
  // without them. Names that tokenise to nothing are reported through `warn`.
  void set_embeddings(std::shared_ptr<const EmbeddingDatabase> db,
                      const EmbeddingDatabase::Warn& warn = {});
  const EmbeddingDatabase* embeddings() const { return embeddings_.get(); }

 protected:
  // The matcher of the embeddings for chunks(); null when there are none.
  const EmbeddingMatcher* embedding_matcher() const {
    return matcher_.empty() ? nullptr : &matcher_;
  }
  std::shared_ptr<const Tokenizer> tokenizer_;

 private:
  struct Cached {
    Conditioning conditioning;
    EmbeddingHashes used;
  };
  std::map<std::string, Cached> cache_;
  std::shared_ptr<const EmbeddingDatabase> embeddings_;
  EmbeddingMatcher matcher_;
};

// SD 1.x and 2.x: one text encoder's context.
class TextContextConditioner : public Conditioner {
 public:
  TextContextConditioner(std::shared_ptr<TextEncoder> text,
                         std::shared_ptr<const Tokenizer> tokenizer, torch::Device device);
  std::vector<PromptChunk> chunks(const std::string& prompt,
                                  Emphasis emphasis = Emphasis::kA1111) const override;
  // Context [1, 77k, C].
  Conditioning encode(const std::string& prompt, const ConditionRequest& r) const override;

 private:
  std::shared_ptr<TextEncoder> text_;
  torch::Device device_;
};

// The conditioner of `model`'s family.
std::unique_ptr<Conditioner> make_conditioner(const LoadedModel& model,
                                              std::shared_ptr<const Tokenizer> tokenizer,
                                              torch::Device device);

// The chunks of a prompt framed for `encoder` (its positions and padding), with `embeddings`'
// names matched.
std::vector<PromptChunk> encoder_chunks(const TextEncoder& encoder, const Tokenizer& tokenizer,
                                        const std::string& prompt, Emphasis emphasis,
                                        const EmbeddingMatcher* embeddings = nullptr);
// The chunks through `encoder` with `o`, each weighted by its emphasis and its mean restored,
// concatenated along the tokens: [1, tokens, C]. With `pooled`, the first chunk's pooled
// output (before emphasis, as A1111 takes it) is stored there. Each chunk's embedding fixes
// put the embedding's vectors of `embedding_key` ("" for SD 1.x / 2.x, "clip_l" / "clip_g" for
// SDXL's encoders) in place of the token embeddings at offset + 1 (after BOS).
torch::Tensor encode_chunks(TextEncoder& encoder, const std::vector<PromptChunk>& chunks,
                            TextEncodeOptions o, torch::Device device,
                            torch::Tensor* pooled = nullptr, const std::string& embedding_key = "");
// A chunk's fixes as the text encoder takes them: [n, C] float32 vectors on `device` at
// position offset + 1 of batch row 0.
std::vector<TokenEmbeddingFix> token_fixes(const PromptChunk& chunk, const std::string& key,
                                           torch::Device device);

// A1111's EmphasisOriginal on the context of one chunk: z [1, T, C] times `weights` (T, one
// per token, as float32), then times mean(z) / mean(weighted z), both means over the whole
// chunk; computed in float32, returned in z's dtype. All weights 1.0 return z unchanged.
torch::Tensor apply_emphasis(const torch::Tensor& z, const std::vector<double>& weights);

}  // namespace sdgen
