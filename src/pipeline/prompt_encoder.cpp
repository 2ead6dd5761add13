#include "sdgen/pipeline/prompt_encoder.h"

#include <algorithm>
#include <stdexcept>

namespace sdgen {

PromptEncoder::PromptEncoder(std::shared_ptr<TextEncoder> text,
                             std::shared_ptr<const Tokenizer> tokenizer, torch::Device device)
    : text_(std::move(text)), tokenizer_(std::move(tokenizer)), device_(device) {}

std::vector<PromptChunk> PromptEncoder::chunks(const std::string& prompt, Emphasis emphasis) const {
  ChunkOptions o;  // bos, eos and comma come from the tokenizer
  o.length = static_cast<size_t>(text_->config().max_positions) - 2;
  // SD 1.x pads with the end-of-text token, SD 2.x with 0.
  o.pad = text_->pad_id(tokenizer_->eos_id());
  return tokenize_prompt(prompt, *tokenizer_, emphasis, o);
}

std::vector<int64_t> PromptEncoder::token_ids(const std::string& prompt, Emphasis emphasis) const {
  std::vector<int64_t> ids;
  for (const auto& chunk : chunks(prompt, emphasis))
    ids.insert(ids.end(), chunk.ids.begin(), chunk.ids.end());
  return ids;
}

Conditioning PromptEncoder::encode(const std::string& prompt, int clip_skip,
                                   Emphasis emphasis) const {
  // A1111 FrozenCLIPEmbedderWithCustomWordsBase.forward for one prompt: every chunk through
  // the encoder on its own, weighted, then concatenated along the tokens.
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> zs;
  for (const auto& chunk : chunks(prompt, emphasis)) {
    auto ids = torch::tensor(chunk.ids, torch::kLong).unsqueeze(0).to(device_);
    zs.push_back(apply_emphasis(text_->forward(ids, clip_skip), chunk.weights));
  }
  return Conditioning(zs.size() == 1 ? zs[0] : torch::cat(zs, 1));
}

Conditioning PromptEncoder::cached(const std::string& prompt, int clip_skip, Emphasis emphasis) {
  const auto key = std::make_tuple(prompt, clip_skip, static_cast<int>(emphasis));
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  if (cache_.size() >= 256) cache_.clear();
  return cache_.emplace(key, encode(prompt, clip_skip, emphasis)).first->second;
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
