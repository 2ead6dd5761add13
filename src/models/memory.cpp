#include "sdgen/models/memory.h"

#include <algorithm>
#include <cmath>

namespace sdgen {

MemoryEstimate estimate_memory(const ModelConfig& c, int width, int height, int64_t unet_rows,
                               double element_bytes, double weight_bytes,
                               bool quadratic_attention) {
  MemoryEstimate m;
  m.weights = weight_bytes;
  const int f = c.vae.downsample_factor();
  const double h0 = std::ceil(double(height) / f), w0 = std::ceil(double(width) / f);
  const double rows = static_cast<double>(unet_rows);
  // UNet: the saved skip connections of every level, the working set of the largest level
  // (a transformer block's GEGLU holds 8 x channels per token, plus norms and projections),
  // and the self-attention scores where attention is plain math.
  const auto& u = c.unet;
  double skips = 0, work = 0, h = h0, w = w0;
  int ds = 1;
  for (size_t level = 0; level < u.channel_mult.size(); ++level) {
    const double ch = double(u.channel_mult[level]) * u.model_channels, tokens = h * w;
    skips += (u.num_res_blocks + 1) * ch * tokens;
    const bool attention = std::find(u.attention_resolutions.begin(), u.attention_resolutions.end(),
                                     ds) != u.attention_resolutions.end();
    work = std::max(work, (attention ? 14.0 : 6.0) * ch * tokens);
    if (attention && quadratic_attention) {
      const double heads = u.heads_for(static_cast<int>(ch));
      m.attention = std::max(m.attention, 2 * rows * heads * tokens * tokens * element_bytes);
    }
    h = std::ceil(h / 2);
    w = std::ceil(w / 2);
    ds *= 2;
  }
  m.unet = rows * (skips + work) * element_bytes + m.attention;
  // VAE decoder on one image: the working set of its levels up to full resolution and the
  // mid block's single-head attention over the latent's pixels.
  const auto& v = c.vae;
  double vae_work = 0;
  for (size_t level = 0; level < v.ch_mult.size(); ++level) {
    const double scale = std::pow(2.0, static_cast<double>(level));
    const double pixels = (h0 * f / scale) * (w0 * f / scale);
    vae_work = std::max(vae_work, 6.0 * v.ch * v.ch_mult[level] * pixels);
  }
  double vae_attention = 0;
  if (quadratic_attention) vae_attention = 2 * (h0 * w0) * (h0 * w0) * element_bytes;
  m.vae = vae_work * element_bytes + vae_attention;
  m.attention = std::max(m.attention, vae_attention);
  return m;
}

}  // namespace sdgen
