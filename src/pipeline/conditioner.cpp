#include "sdgen/pipeline/conditioner.h"

#include <algorithm>
#include <stdexcept>

#include "sdgen/pipeline/sdxl_conditioner.h"

namespace sdgen {

ConditionRequest condition_request(const GenerationParams& p, bool negative) {
  ConditionRequest r;
  r.clip_skip = p.clip_skip;
  r.emphasis = parse_emphasis(p.emphasis);
  r.negative = negative;
  r.width = p.width;
  r.height = p.height;
  r.sizes = p.sdxl;
  auto or_image = [&](int& w, int& h) {
    if (w == 0 && h == 0) {
      w = p.width;
      h = p.height;
    }
  };
  or_image(r.sizes.original_width, r.sizes.original_height);
  or_image(r.sizes.target_width, r.sizes.target_height);
  return r;
}

Conditioner::Conditioner(std::shared_ptr<const Tokenizer> tokenizer)
    : tokenizer_(std::move(tokenizer)) {}

std::vector<int64_t> Conditioner::token_ids(const std::string& prompt, Emphasis emphasis) const {
  std::vector<int64_t> ids;
  for (const auto& chunk : chunks(prompt, emphasis))
    ids.insert(ids.end(), chunk.ids.begin(), chunk.ids.end());
  return ids;
}

void Conditioner::set_embeddings(std::shared_ptr<const EmbeddingDatabase> db,
                                 const EmbeddingDatabase::Warn& warn) {
  embeddings_ = std::move(db);
  matcher_ = embeddings_ ? EmbeddingMatcher(*embeddings_, *tokenizer_, warn) : EmbeddingMatcher();
  cache_.clear();
}

Conditioning Conditioner::cached(const std::string& prompt, const ConditionRequest& r,
                                 EmbeddingHashes* used) {
  const auto& s = r.sizes;
  std::string key = prompt;
  for (int v : {r.clip_skip, static_cast<int>(r.emphasis), int(r.negative), r.width, r.height,
                s.original_width, s.original_height, s.crop_top, s.crop_left, s.target_width,
                s.target_height})
    key += '\0' + std::to_string(v);
  // (embeddings are not in the key: set_embeddings empties the cache)
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    if (cache_.size() >= 256) cache_.clear();
    Cached c{encode(prompt, r), {}};
    if (embedding_matcher()) c.used = used_embeddings(chunks(prompt, r.emphasis));
    it = cache_.emplace(key, std::move(c)).first;
  }
  if (used) *used = it->second.used;
  return it->second.conditioning;
}

TextContextConditioner::TextContextConditioner(std::shared_ptr<TextEncoder> text,
                                               std::shared_ptr<const Tokenizer> tokenizer,
                                               torch::Device device)
    : Conditioner(std::move(tokenizer)), text_(std::move(text)), device_(device) {}

std::vector<PromptChunk> TextContextConditioner::chunks(const std::string& prompt,
                                                        Emphasis emphasis) const {
  return encoder_chunks(*text_, *tokenizer_, prompt, emphasis, embedding_matcher());
}

Conditioning TextContextConditioner::encode(const std::string& prompt,
                                            const ConditionRequest& r) const {
  // A1111 FrozenCLIPEmbedderWithCustomWordsBase.forward for one prompt.
  TextEncodeOptions o;
  o.clip_skip = r.clip_skip;
  return Conditioning(encode_chunks(*text_, chunks(prompt, r.emphasis), o, device_));
}

std::unique_ptr<Conditioner> make_conditioner(const LoadedModel& model,
                                              std::shared_ptr<const Tokenizer> tokenizer,
                                              torch::Device device) {
  switch (model.family->conditioning) {
    case ModelFamily::Conditioning::kTextContext:
      return std::make_unique<TextContextConditioner>(model.text, std::move(tokenizer), device);
    case ModelFamily::Conditioning::kSdxl:
      return std::make_unique<SdxlConditioner>(model, std::move(tokenizer), device);
  }
  throw std::logic_error("model family " + model.family->name + " has no conditioner");
}

std::vector<PromptChunk> encoder_chunks(const TextEncoder& encoder, const Tokenizer& tokenizer,
                                        const std::string& prompt, Emphasis emphasis,
                                        const EmbeddingMatcher* embeddings) {
  ChunkOptions o;  // bos, eos and comma come from the tokenizer
  o.length = static_cast<size_t>(encoder.config().max_positions) - 2;
  // CLIP (SD 1.x, SDXL's CLIP-L) pads with the end-of-text token, OpenCLIP with 0.
  o.pad = encoder.pad_id(tokenizer.eos_id());
  return tokenize_prompt(prompt, tokenizer, emphasis, o, embeddings);
}

std::vector<TokenEmbeddingFix> token_fixes(const PromptChunk& chunk, const std::string& key,
                                           torch::Device device) {
  std::vector<TokenEmbeddingFix> fixes;
  for (const auto& fix : chunk.fixes) {
    auto it = fix.embedding->vectors.find(key);
    if (it == fix.embedding->vectors.end())
      throw std::invalid_argument("the embedding " + fix.embedding->name + " has no vectors for " +
                                  (key.empty() ? "this text encoder" : key));
    const EmbeddingVectors& v = it->second;
    auto vectors =
        torch::from_blob(const_cast<float*>(v.values.data()), {v.rows, v.width}, torch::kFloat)
            .clone()
            .to(device);
    fixes.push_back({0, static_cast<int64_t>(fix.offset) + 1, vectors});  // + 1: BOS
  }
  return fixes;
}

torch::Tensor encode_chunks(TextEncoder& encoder, const std::vector<PromptChunk>& chunks,
                            TextEncodeOptions o, torch::Device device, torch::Tensor* pooled,
                            const std::string& embedding_key) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> zs;
  for (size_t i = 0; i < chunks.size(); ++i) {
    o.pooled = pooled && i == 0;
    o.token_fixes = token_fixes(chunks[i], embedding_key, device);
    auto ids = torch::tensor(chunks[i].ids, torch::kLong).unsqueeze(0).to(device);
    auto out = encoder.encode(ids, o);
    if (o.pooled) *pooled = out.pooled;
    zs.push_back(apply_emphasis(out.hidden, chunks[i].weights));
  }
  return zs.size() == 1 ? zs[0] : torch::cat(zs, 1);
}

torch::Tensor apply_emphasis(const torch::Tensor& z, const std::vector<double>& weights) {
  // A1111 EmphasisOriginal.after_transformers: z *= w; z *= original_mean / new_mean.
  if (static_cast<int64_t>(weights.size()) != z.size(1))
    throw std::invalid_argument("apply_emphasis: " + std::to_string(weights.size()) +
                                " weights for " + std::to_string(z.size(1)) + " tokens");
  if (std::all_of(weights.begin(), weights.end(), [](double w) { return w == 1.0; }))
    return z;  // what the formula gives too (z * 1 * (m / m))
  torch::NoGradGuard no_grad;
  const std::vector<float> w(weights.begin(), weights.end());  // torch.asarray: float32
  auto zf = z.to(torch::kFloat);
  auto original_mean = zf.mean();
  auto multipliers = torch::tensor(w).to(zf.device()).view({1, -1, 1});
  auto weighted = zf * multipliers;
  auto new_mean = weighted.mean();
  return (weighted * (original_mean / new_mean)).to(z.scalar_type());
}

}  // namespace sdgen
