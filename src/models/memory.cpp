#include "sdgen/models/memory.h"

#include <algorithm>
#include <cmath>

namespace sdgen {

namespace {

double sq(double x) { return x * x; }

// The largest working set of the VAE's resolution levels over an image of h x w pixels: about
// six tensors of the level's channels at its resolution (resnet input, norm, activation, conv
// outputs).
double vae_levels(const VaeConfig& v, double h, double w) {
  double work = 0;
  for (size_t level = 0; level < v.ch_mult.size(); ++level) {
    const double scale = std::pow(2.0, static_cast<double>(level));
    const double pixels = (h / scale) * (w / scale);
    work = std::max(work, 6.0 * v.ch * v.ch_mult[level] * pixels);
  }
  return work;
}

}  // namespace

bool vae_tiling_needed(const MemoryEstimate& m, double available) {
  return m.weights + m.vae > available;
}

double estimate_vae_memory(const VaeConfig& v, VaePass pass, int width, int height,
                           double element_bytes, bool quadratic_attention, int tile) {
  const int f = v.downsample_factor();
  const double h0 = std::ceil(double(height) / f), w0 = std::ceil(double(width) / f);
  const double e = element_bytes, latent = h0 * w0;
  const double attention = quadratic_attention ? 2 * sq(latent) * e : 0;
  if (tile <= 0 || (h0 <= tile && w0 <= tile)) {
    const double input = pass == VaePass::encode ? 3 * latent * f * f * e : 0;
    return input + vae_levels(v, h0 * f, w0 * f) * e + attention;
  }
  // Tiled (pipeline/vae_tiling.cpp): the mid block over the whole latent, its attention scores
  // in chunks; then one resolution level at a time, holding the level's input and output whole
  // and one tile's working set (plus the float64 copy of a norm layer's input that its
  // statistics are merged from).
  const int levels = static_cast<int>(v.ch_mult.size());
  auto channels = [&](int level) { return double(v.ch) * v.ch_mult[level]; };
  const double mid_channels = channels(levels - 1);
  double peak = 6 * mid_channels * latent * e + std::min(attention, kVaeAttentionChunkBytes);
  const double th = std::min<double>(tile, h0), tw = std::min<double>(tile, w0);
  auto level = [&](double in_ch, double in_scale, double work_ch, double scale, double out_ch,
                   double out_scale) {
    const double held = (in_ch * sq(in_scale) + out_ch * sq(out_scale)) * latent * e;
    const double work = (6 * e + 16) * work_ch * (th * scale) * (tw * scale);
    peak = std::max(peak, held + work);
  };
  for (int i = 0; i < levels; ++i) {
    if (pass == VaePass::decode) {  // deepest level first, each upsampling the one before
      const int l = levels - 1 - i;
      const double scale = std::pow(2.0, i), in_ch = channels(std::min(l + 1, levels - 1));
      level(in_ch, i == 0 ? 1 : scale / 2, std::max(in_ch, channels(l)), scale,
            l == 0 ? v.out_channels : channels(l), scale);
    } else {  // the image first, each level downsampling
      const double scale = f / std::pow(2.0, i), in_ch = i == 0 ? v.in_channels : channels(i - 1);
      level(in_ch, scale, std::max(in_ch, channels(i)), scale, channels(i),
            i < levels - 1 ? scale / 2 : scale);
    }
  }
  return peak;
}

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
  m.vae = estimate_vae_memory(c.vae, VaePass::decode, width, height, element_bytes,
                              quadratic_attention);
  if (quadratic_attention) m.attention = std::max(m.attention, 2 * sq(h0 * w0) * element_bytes);
  m.vae_tiled = estimate_vae_memory(c.vae, VaePass::decode, width, height, element_bytes,
                                    quadratic_attention, kVaeTile);
  return m;
}

}  // namespace sdgen
