#include "sdgen/pipeline/sdxl_conditioner.h"

#include <stdexcept>

#include "sdgen/models/unet.h"

namespace sdgen {

SdxlConditioner::SdxlConditioner(const LoadedModel& model,
                                 std::shared_ptr<const Tokenizer> tokenizer, torch::Device device)
    : Conditioner(std::move(tokenizer)),
      clip_l_(model.text),
      clip_g_(model.text_2),
      device_(device),
      size_embed_dim_((model.config.unet.adm_in_channels - model.config.text_2.projection_dim) /
                      6) {
  if (!clip_l_ || !clip_g_)
    throw std::invalid_argument("SDXL conditioning needs both text encoders (CLIP-L and bigG)");
}

std::vector<PromptChunk> SdxlConditioner::chunks(const std::string& prompt,
                                                 Emphasis emphasis) const {
  return encoder_chunks(*clip_l_, *tokenizer_, prompt, emphasis, embedding_matcher());
}

torch::Tensor sdxl_size_embedding(const SizeConditioning& s, int64_t dim) {
  const std::vector<float> values = {
      static_cast<float>(s.original_height), static_cast<float>(s.original_width),
      static_cast<float>(s.crop_top),        static_cast<float>(s.crop_left),
      static_cast<float>(s.target_height),   static_cast<float>(s.target_width)};
  // [6] -> [6, dim] -> [1, 6 * dim], as sgm's rearrange "(b d) d2 -> b (d d2)"
  return timestep_embedding(torch::tensor(values), dim).reshape({1, -1});
}

Conditioning SdxlConditioner::encode(const std::string& prompt, const ConditionRequest& r) const {
  torch::NoGradGuard no_grad;
  // CLIP-L: hidden_states[-2] (sgm layer "hidden", layer_idx 11 of 12): clip skip 2 in
  // TextEncodeOptions' numbering, without the final norm. bigG: its own clip skip 1 is the
  // penultimate block; without ln_final; the pooled output from the first chunk.
  TextEncodeOptions l_opts, g_opts;
  l_opts.clip_skip = 2;
  l_opts.final_norm = false;
  g_opts.final_norm = false;
  torch::Tensor pooled;
  // (an embedding gives each encoder its own vectors: A1111's textual_inversion_key)
  auto l = encode_chunks(*clip_l_, chunks(prompt, r.emphasis), l_opts, device_, nullptr, "clip_l");
  auto g = encode_chunks(
      *clip_g_, encoder_chunks(*clip_g_, *tokenizer_, prompt, r.emphasis, embedding_matcher()),
      g_opts, device_, &pooled, "clip_g");
  auto context = torch::cat({l, g}, 2);
  if (r.negative && prompt.empty()) {
    // A1111 get_learned_conditioning: force_zero_embeddings=['txt'] for an empty negative
    // prompt: both encoders' parts (context and pooled) are zeros, the sizes are kept.
    context = torch::zeros_like(context);
    pooled = torch::zeros_like(pooled);
  }
  auto sizes = sdxl_size_embedding(r.sizes, size_embed_dim_).to(pooled.device());
  auto vector = torch::cat({pooled.to(torch::kFloat), sizes}, 1);
  return Conditioning(context, vector);
}

}  // namespace sdgen
