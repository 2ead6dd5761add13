// What the denoiser is conditioned on, whatever the model family: the cross-attention context
// (every family), a vector `y` for the UNet's label_emb (SDXL: pooled text + size embeddings),
// and channels concatenated to the latent (inpainting UNets: mask + masked-image latent).
// Rows are images (or CFG passes of images); every part present has the same row count.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace sdgen {

struct Conditioning {
  torch::Tensor context;  // [B, T, C] cross-attention tokens
  torch::Tensor vector;   // [B, adm_in_channels] or undefined
  torch::Tensor concat;   // [B, Cc, h, w] or undefined

  Conditioning() = default;
  explicit Conditioning(torch::Tensor context_, torch::Tensor vector_ = {},
                        torch::Tensor concat_ = {})
      : context(std::move(context_)), vector(std::move(vector_)), concat(std::move(concat_)) {}

  int64_t rows() const { return context.size(0); }
  int64_t tokens() const { return context.size(1); }
  // Every part moved to `device`, floating parts in `dtype`.
  Conditioning to(torch::Device device, torch::ScalarType dtype) const;
  // Rows `index` ([N] int64) of every part.
  Conditioning index_select(const torch::Tensor& index) const;
  // Each row repeated `times` times in place (rows a, a, b, b for times 2).
  Conditioning repeat_interleave(int64_t times) const;
};

// The parts of `parts` stacked along the rows; they must all have the same parts and, for the
// context, the same token count (pad_tokens first). Throws std::invalid_argument otherwise.
Conditioning cat_rows(const std::vector<Conditioning>& parts);

// A1111's pad_cond_uncond: `c`'s context followed by copies of `empty`'s context (the encoded
// empty prompt, [1 or B, E, C]) up to `tokens` tokens; unchanged when it already has them.
// Throws std::invalid_argument when tokens - T is not a multiple of E.
Conditioning pad_tokens(const Conditioning& c, int64_t tokens, const Conditioning& empty);

}  // namespace sdgen
