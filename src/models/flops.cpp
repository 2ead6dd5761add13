#include "sdgen/models/flops.h"

#include <algorithm>
#include <vector>

namespace sdgen {
namespace {

double conv(double cin, double cout, double k, double h, double w) {
  return 2 * cin * cout * k * k * h * w;
}
double linear(double in, double out, double n) { return 2 * in * out * n; }

}  // namespace

double unet_flops(const UNetConfig& c, int64_t batch, int64_t h0, int64_t w0,
                  int64_t context_tokens) {
  const double emb = c.time_embed_dim();
  const double T = static_cast<double>(context_tokens);
  auto res = [&](double ci, double co, double h, double w) {
    double f = conv(ci, co, 3, h, w) + conv(co, co, 3, h, w) + linear(emb, co, 1);
    if (ci != co) f += conv(ci, co, 1, h, w);
    return f;
  };
  // SpatialTransformer: proj_in/out, then per block self-attention, cross-attention, GEGLU.
  auto transformer = [&](double ch, double h, double w, int depth) {
    const double n = h * w;
    double f = 2 * (c.use_linear_proj ? linear(ch, ch, n) : conv(ch, ch, 1, h, w));
    for (int d = 0; d < depth; ++d) {
      f += 4 * linear(ch, ch, n) + 2 * (2 * n * n * ch);               // attn1
      f += 2 * linear(ch, ch, n) + 2 * linear(c.context_dim, ch, T) +  // attn2
           2 * (2 * n * T * ch);
      f += linear(ch, 8 * ch, n) + linear(4 * ch, ch, n);  // GEGLU
    }
    return f;
  };
  auto has_attention = [&](int ds) {
    return std::find(c.attention_resolutions.begin(), c.attention_resolutions.end(), ds) !=
           c.attention_resolutions.end();
  };
  const double mc = c.model_channels;
  double f = linear(mc, emb, 1) + linear(emb, emb, 1);
  if (c.adm_in_channels > 0) f += linear(c.adm_in_channels, emb, 1) + linear(emb, emb, 1);
  double h = static_cast<double>(h0), w = static_cast<double>(w0);
  std::vector<std::pair<double, double>> sizes{{h, w}};  // spatial size at each level
  f += conv(c.in_channels, mc, 3, h, w);
  std::vector<double> skips{mc};
  double ch = mc;
  int ds = 1;
  const size_t levels = c.channel_mult.size();
  for (size_t level = 0; level < levels; ++level) {
    for (int i = 0; i < c.num_res_blocks; ++i) {
      const double out = c.channel_mult[level] * mc;
      f += res(ch, out, h, w);
      ch = out;
      if (has_attention(ds)) f += transformer(ch, h, w, c.depth_at(level));
      skips.push_back(ch);
    }
    if (level + 1 != levels) {
      h = static_cast<double>((static_cast<int64_t>(h) + 1) / 2);
      w = static_cast<double>((static_cast<int64_t>(w) + 1) / 2);
      f += conv(ch, ch, 3, h, w);
      sizes.push_back({h, w});
      skips.push_back(ch);
      ds *= 2;
    }
  }
  f += 2 * res(ch, ch, h, w) + transformer(ch, h, w, c.middle_depth());
  for (size_t level = levels; level-- > 0;) {
    for (int i = 0; i <= c.num_res_blocks; ++i) {
      const double skip = skips.back();
      skips.pop_back();
      const double out = c.channel_mult[level] * mc;
      f += res(ch + skip, out, h, w);
      ch = out;
      if (has_attention(ds)) f += transformer(ch, h, w, c.depth_at(level));
      if (level != 0 && i == c.num_res_blocks) {
        sizes.pop_back();
        h = sizes.back().first;
        w = sizes.back().second;
        f += conv(ch, ch, 3, h, w);
        ds /= 2;
      }
    }
  }
  f += conv(mc, c.out_channels, 3, h, w);
  return f * static_cast<double>(batch);
}

double text_encoder_flops(const ClipTextConfig& c, int64_t batch, int64_t tokens) {
  const double n = static_cast<double>(tokens), d = c.width;
  const double per_layer = 4 * linear(d, d, n) + 2 * (2 * n * n * d) +
                           linear(d, c.intermediate, n) + linear(c.intermediate, d, n);
  return per_layer * c.layers * static_cast<double>(batch);
}

double vae_decoder_flops(const VaeConfig& c, int64_t batch, int64_t h0, int64_t w0) {
  double h = static_cast<double>(h0), w = static_cast<double>(w0);
  auto res = [&](double ci, double co) {
    double f = conv(ci, co, 3, h, w) + conv(co, co, 3, h, w);
    if (ci != co) f += conv(ci, co, 1, h, w);
    return f;
  };
  double ch = c.ch * c.ch_mult.back();
  double f = conv(c.embed_dim, c.z_channels, 1, h, w) + conv(c.z_channels, ch, 3, h, w);
  // mid: two resnets around single-head attention over all pixels (4 1x1 convs + 2 matmuls)
  f += 2 * res(ch, ch) + 4 * conv(ch, ch, 1, h, w) + 2 * (2 * h * w * h * w * ch);
  for (size_t level = c.ch_mult.size(); level-- > 0;) {
    const double out = c.ch * c.ch_mult[level];
    for (int i = 0; i <= c.num_res_blocks; ++i) {
      f += res(ch, out);
      ch = out;
    }
    if (level != 0) {
      h *= 2;
      w *= 2;
      f += conv(ch, ch, 3, h, w);
    }
  }
  f += conv(ch, c.out_channels, 3, h, w);
  return f * static_cast<double>(batch);
}

}  // namespace sdgen
