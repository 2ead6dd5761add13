// Tiled VAE decode / encode (pipeline/vae_tiling.h).
//
// The public designs and why this one differs:
// - diffusers AutoencoderKL.tiled_decode / tiled_encode and stable-diffusion.cpp run each tile
//   through the whole network and blend the overlaps (diffusers: linear ramps over 25 %; sd.cpp:
//   smootherstep, tiles spread evenly). Each tile normalises with its own GroupNorm statistics,
//   so neighbouring tiles disagree in brightness and colour, and the mid block's attention sees
//   only its tile. On the tiny reference VAE (one channel per group at full resolution) that is
//   up to 110 of 255 levels off the untiled decode at 16-latent-pixel tiles.
// - multidiffusion-upscaler's Tiled VAE runs the network layer by layer over all tiles and merges
//   the tiles' statistics at every GroupNorm, so every tile uses the whole image's: exact, but it
//   holds every tile's activations of the current layer, i.e. the full-resolution image
//   (~20 GB for 4096 x 4096). Its fast mode estimates the statistics from a downscaled image
//   instead; measured here that is still up to ~100 levels off, because the convolutions respond
//   to the changed scale.
// What is done here, exact and with little held:
// - The network is cut into stages at its smallest tensors: the mid block at latent resolution
//   (run whole; its attention in chunks of queries) and each resolution level, which starts
//   from the previous level's output before upsampling (decoder) / ends after downsampling
//   (encoder). Only stage outputs are held whole: for SD at most 1/8 of the untiled decode's
//   full-resolution working set.
// - Within a stage, tiles overlap by at least twice the stage's receptive field and each keeps
//   the part up to the middle of its overlaps, so every kept pixel sees all of its inputs: with
//   the same statistics the tiles compute exactly what the untiled network does, and the kept
//   parts abut without seams (no blending needed, nothing to blend).
// - The statistics are the whole image's: norm layer k of a stage gets them from a pass over the
//   tiles that runs the layers before it (normalised with the statistics found before) and
//   merges its input over the kept parts. A stage with n norm layers costs about n / 2 + 1
//   passes: the decode takes 2-4x the untiled time on the tiny VAE (about 4-5x for SD's three
//   blocks per level, by count of convolutions), the encode 1-2x; a small share of a generation
//   at the sizes that need tiles.
#include "sdgen/pipeline/vae_tiling.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/models/blocks.h"
#include "sdgen/models/memory.h"

namespace sdgen {

namespace {

namespace F = torch::nn::functional;
using TensorFn = std::function<torch::Tensor(const torch::Tensor&)>;

// One tile along one axis, in latent pixels: the span it computes and the part of it it keeps.
struct Span {
  int64_t start = 0, size = 0;
  int64_t keep_lo = 0, keep_hi = 0;  // from `start`; the kept parts partition the axis
};

void check_tiling(const VaeTiling& t) {
  if (t.tile < 1 || t.overlap < 0 || t.overlap >= t.tile) {
    throw std::invalid_argument("VAE tiling needs tile >= 1 and 0 <= overlap < tile (tile " +
                                std::to_string(t.tile) + ", overlap " + std::to_string(t.overlap) +
                                ")");
  }
}

// Tiles over `length`: as few as cover it with tiles of at most `tile` that share at least
// `overlap` with their neighbours, all of one size (the smallest that does it) and spread
// evenly from 0 to the end, so that the edge tiles are shifted inward rather than cut short.
// Each keeps the part up to the middle of what it shares.
std::vector<Span> spans(int64_t length, int64_t tile, int64_t overlap) {
  if (length <= tile) return {Span{0, length, 0, length}};
  const int64_t gaps = (length - tile + (tile - overlap) - 1) / (tile - overlap);  // tiles - 1
  const int64_t size = (length + gaps * overlap + gaps) / (gaps + 1);              // ceil, <= tile
  const int64_t travel = length - size;
  std::vector<int64_t> start(gaps + 1);
  for (int64_t i = 0; i <= gaps; ++i) start[i] = (i * travel + gaps / 2) / gaps;
  std::vector<Span> out(gaps + 1);
  for (int64_t i = 0; i <= gaps; ++i) {
    Span& s = out[i];
    s.start = start[i];
    s.size = size;
    s.keep_lo = i > 0 ? (start[i - 1] + size + start[i]) / 2 - start[i] : 0;
    s.keep_hi = i < gaps ? (start[i] + size + start[i + 1]) / 2 - start[i] : size;
  }
  return out;
}

// One step of a stage: x = fn(x); x = swish(GroupNorm(x)); saved = x; or
// x = (shortcut ? shortcut(saved) : saved) + x.
struct Op {
  enum Kind { kFn, kNorm, kSave, kAdd } kind = kFn;
  TensorFn fn;
  nn::GroupNormImpl* norm = nullptr;
  nn::Conv2dImpl* shortcut = nullptr;
};

// The layers between two tensors held whole, as ops over a tile.
struct Stage {
  std::vector<Op> ops;
  int64_t in_scale = 1, out_scale = 1;  // pixels per latent pixel of its input / output
  int64_t scale = 1;                    // ... of its resnet blocks
  double reach = 0;  // receptive field radius in latent pixels: the context a tile needs
  int64_t out_channels = 0;
  int norms = 0;

  void fn(TensorFn f, double radius_latent) {
    Op op;
    op.fn = std::move(f);
    ops.push_back(std::move(op));
    reach += radius_latent;
  }
  void conv3(nn::Conv2dImpl* c, int64_t at_scale) {  // 3x3, padding 1
    fn([c](const torch::Tensor& x) { return c->forward(x); }, 1.0 / static_cast<double>(at_scale));
  }
  void op(Op::Kind kind, nn::GroupNormImpl* norm = nullptr, nn::Conv2dImpl* shortcut = nullptr) {
    Op o;
    o.kind = kind;
    o.norm = norm;
    o.shortcut = shortcut;
    ops.push_back(std::move(o));
    if (kind == Op::kNorm) ++norms;
  }
  void resnet(VaeResnetBlockImpl& r) {  // as VaeResnetBlockImpl::forward
    op(Op::kSave);
    op(Op::kNorm, r.norm1.get());
    conv3(r.conv1.get(), scale);
    op(Op::kNorm, r.norm2.get());
    conv3(r.conv2.get(), scale);
    op(Op::kAdd, nullptr, r.nin_shortcut ? r.nin_shortcut.get() : nullptr);
  }
};

// The decoder after its mid block (VaeDecoderImpl::forward): one stage per level, deepest
// first; level i runs at 2^(L-1-i) pixels per latent pixel and starts with the previous level's
// upsampling (nearest x2, then its 3x3 conv).
std::vector<Stage> decoder_stages(VaeDecoderImpl& d) {
  const int levels = static_cast<int>(d.up->size());
  std::vector<Stage> stages;
  for (int i = levels - 1; i >= 0; --i) {
    Stage s;
    s.scale = s.out_scale = int64_t{1} << (levels - 1 - i);
    s.in_scale = i == levels - 1 ? 1 : s.out_scale / 2;
    if (i < levels - 1) {
      nn::Conv2dImpl* conv = d.up[i + 1]->as<VaeLevel>()->resample.get();
      s.fn(
          [conv](const torch::Tensor& x) {
            return conv->forward(
                F::interpolate(x, F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{x.size(2) * 2, x.size(3) * 2})
                                      .mode(torch::kNearest)));
          },
          1.0 / static_cast<double>(s.scale));
    }
    auto* level = d.up[i]->as<VaeLevel>();
    for (const auto& b : *level->block) s.resnet(*b->as<VaeResnetBlock>());
    s.out_channels =
        level->block[level->block->size() - 1]->as<VaeResnetBlock>()->conv2->out_channels;
    if (i == 0) {
      s.op(Op::kNorm, d.norm_out.get());
      s.conv3(d.conv_out.get(), s.scale);
      s.out_channels = d.conv_out->out_channels;
    }
    stages.push_back(std::move(s));
  }
  return stages;
}

// The encoder before its mid block (VaeEncoderImpl::forward): one stage per level, each ending
// with its downsampling (pad right / bottom by one, 3x3 stride 2).
std::vector<Stage> encoder_stages(VaeEncoderImpl& e, int64_t factor) {
  std::vector<Stage> stages;
  int64_t scale = factor;
  for (size_t i = 0; i < e.down->size(); ++i) {
    Stage s;
    s.in_scale = s.out_scale = s.scale = scale;
    if (i == 0) s.conv3(e.conv_in.get(), scale);
    auto* level = e.down[i]->as<VaeLevel>();
    for (const auto& b : *level->block) s.resnet(*b->as<VaeResnetBlock>());
    s.out_channels =
        level->block[level->block->size() - 1]->as<VaeResnetBlock>()->conv2->out_channels;
    if (level->down) {
      nn::Conv2dImpl* conv = level->resample.get();
      // reads two pixels past its own
      s.fn(
          [conv](const torch::Tensor& x) {
            return conv->forward(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
          },
          2.0 / static_cast<double>(scale));
      scale /= 2;
      s.out_scale = scale;
    }
    stages.push_back(std::move(s));
  }
  return stages;
}

// The whole image's GroupNorm statistics of one norm layer, merged from the tiles' kept parts
// (Chan et al.'s parallel update, in float64).
struct GroupStats {
  torch::Tensor mean, m2;  // [B, G]: mean and sum of squared deviations
  double n = 0;

  void add(const torch::Tensor& part) {  // [B, G, k]
    auto [var, m] = torch::var_mean(part.to(torch::kDouble), {-1}, /*unbiased=*/false);
    const double k = static_cast<double>(part.size(-1));
    if (n == 0) {
      mean = m;
      m2 = var * k;
    } else {
      auto delta = m - mean;
      mean = mean + delta * (k / (n + k));
      m2 = m2 + var * k + delta.square() * (n * k / (n + k));
    }
    n += k;
  }
};

// swish(GroupNorm(x)) with the given statistics, computed in float32, in x's dtype.
// x: [B, C, H, W]
torch::Tensor norm_swish(nn::GroupNormImpl& gn, const torch::Tensor& x, const GroupStats& s) {
  const int64_t b = x.size(0), c = x.size(1), per_group = c / gn.groups;
  auto rstd = torch::rsqrt(s.m2 / s.n + gn.eps).to(torch::kFloat);              // [B, G]
  auto a = rstd.repeat_interleave(per_group, 1) * gn.weight.to(torch::kFloat);  // [B, C]
  auto shift =
      gn.bias.to(torch::kFloat) - s.mean.to(torch::kFloat).repeat_interleave(per_group, 1) * a;
  auto y = x.to(torch::kFloat) * a.view({b, c, 1, 1}) + shift.view({b, c, 1, 1});
  return swish(y).to(x.dtype());
}

// A stage over the whole input, tile by tile.
// x: [B, Cin, h * in_scale, w * in_scale] -> [B, Cout, h * out_scale, w * out_scale]
torch::Tensor run_stage(const Stage& st, const torch::Tensor& x, const VaeTiling& t) {
  const int64_t h = x.size(2) / st.in_scale, w = x.size(3) / st.in_scale;
  // `overlap` counts the stage's own pixels; twice the receptive field at least
  const int64_t halo = static_cast<int64_t>(std::ceil(st.reach - 1e-9));
  const int64_t overlap = std::max(2 * halo, (t.overlap + st.scale - 1) / st.scale);
  const int64_t tile = std::max<int64_t>(t.tile, overlap + 1);
  const auto rows = spans(h, tile, overlap), cols = spans(w, tile, overlap);
  std::vector<GroupStats> stats(st.norms);

  // The ops over one tile: up to norm layer `stop`, whose input's kept part goes into its
  // statistics (returns an undefined tensor), or all of them (stop < 0).
  auto run = [&](const Span& r, const Span& c, int stop) {
    auto y = x.narrow(2, r.start * st.in_scale, r.size * st.in_scale)
                 .narrow(3, c.start * st.in_scale, c.size * st.in_scale);
    torch::Tensor saved;
    int k = 0;
    for (const Op& op : st.ops) {
      if (op.kind == Op::kFn) {
        y = op.fn(y);
      } else if (op.kind == Op::kSave) {
        saved = y;
      } else if (op.kind == Op::kAdd) {
        y = (op.shortcut ? op.shortcut->forward(saved) : saved) + y;
      } else if (k == stop) {
        const int64_t sh = y.size(2) / r.size, sw = y.size(3) / c.size;
        stats[k].add(y.narrow(2, r.keep_lo * sh, (r.keep_hi - r.keep_lo) * sh)
                         .narrow(3, c.keep_lo * sw, (c.keep_hi - c.keep_lo) * sw)
                         .reshape({y.size(0), op.norm->groups, -1}));
        return torch::Tensor();
      } else {
        y = norm_swish(*op.norm, y, stats[k++]);
      }
    }
    return y;
  };

  for (int k = 0; k < st.norms; ++k) {
    for (const auto& r : rows) {
      for (const auto& c : cols) run(r, c, k);
    }
  }
  const int64_t s = st.out_scale;
  auto out = torch::empty({x.size(0), st.out_channels, h * s, w * s}, x.options());
  for (const auto& r : rows) {
    for (const auto& c : cols) {
      const int64_t rows_kept = (r.keep_hi - r.keep_lo) * s,
                    cols_kept = (c.keep_hi - c.keep_lo) * s;
      out.narrow(2, (r.start + r.keep_lo) * s, rows_kept)
          .narrow(3, (c.start + c.keep_lo) * s, cols_kept)
          .copy_(run(r, c, -1)
                     .narrow(2, r.keep_lo * s, rows_kept)
                     .narrow(3, c.keep_lo * s, cols_kept));
    }
  }
  return out;
}

// VaeAttnBlockImpl::forward over the whole latent with the queries in chunks, so that the
// scores held at once stay under kVaeAttentionChunkBytes (models/memory.h); exact, as the
// softmax is per query. x: [B, C, h, w]
torch::Tensor attention_chunked(VaeAttnBlockImpl& a, const torch::Tensor& x) {
  const auto b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), n = h * w;
  auto normed = a.norm(x);
  auto as_seq = [&](const torch::Tensor& t) {  // [B, 1, hw, C]
    return t.reshape({b, c, n}).transpose(1, 2).unsqueeze(1);
  };
  auto q = as_seq(a.q(normed)), k = as_seq(a.k(normed)), v = as_seq(a.v(normed));
  const double row_bytes = 2.0 * static_cast<double>(b * n * x.element_size());
  const auto chunk =
      std::max<int64_t>(1, static_cast<int64_t>(kVaeAttentionChunkBytes / row_bytes));
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < n; i += chunk) {
    parts.push_back(attention(q.narrow(2, i, std::min(chunk, n - i)), k, v));
  }
  auto out = torch::cat(parts, 2).squeeze(1).transpose(1, 2).reshape({b, c, h, w});
  return x + a.proj_out(out);
}

// VaeMidImpl::forward with the chunked attention. x: [B, Cmid, h, w] -> the same
torch::Tensor mid_whole(VaeMidImpl& m, const torch::Tensor& x) {
  return m.block_2(attention_chunked(*m.attn_1, m.block_1(x)));
}

void check_4d(const torch::Tensor& x, const char* what) {
  if (x.dim() != 4) {
    throw std::invalid_argument(std::string("VAE tiling: ") + what + " must be [B, C, H, W], got " +
                                std::to_string(x.dim()) + " dimensions");
  }
}

}  // namespace

bool vae_tiles_needed(int64_t h, int64_t w, const VaeTiling& t) {
  check_tiling(t);
  return h > t.tile || w > t.tile;
}

torch::Tensor decode_tiled(AutoencoderKLImpl& vae, const torch::Tensor& z, const VaeTiling& t) {
  check_tiling(t);
  check_4d(z, "the latent");
  if (!vae_tiles_needed(z.size(2), z.size(3), t)) return vae.decode(z);
  torch::NoGradGuard no_grad;
  auto& dec = *vae.decoder;
  auto h = mid_whole(*dec.mid, dec.conv_in(vae.post_quant_conv(z)));  // [B, Cmid, h, w]
  for (const auto& stage : decoder_stages(dec)) h = run_stage(stage, h, t);
  return h;
}

LatentDistribution encode_tiled(AutoencoderKLImpl& vae, const torch::Tensor& image,
                                const VaeTiling& t) {
  check_tiling(t);
  check_4d(image, "the image");
  const int64_t f = vae.config().downsample_factor();
  if (image.size(2) % f != 0 || image.size(3) % f != 0) {
    throw std::invalid_argument("VAE tiling: the image's sides (" + std::to_string(image.size(3)) +
                                "x" + std::to_string(image.size(2)) + ") must be multiples of " +
                                std::to_string(f));
  }
  if (!vae_tiles_needed(image.size(2) / f, image.size(3) / f, t)) return vae.encode(image);
  torch::NoGradGuard no_grad;
  auto& enc = *vae.encoder;
  auto h = image;
  for (const auto& stage : encoder_stages(enc, f)) h = run_stage(stage, h, t);
  h = mid_whole(*enc.mid, h);  // [B, Cmid, H/f, W/f]
  auto moments = vae.quant_conv(enc.conv_out(swish(enc.norm_out(h))));
  auto parts = moments.chunk(2, 1);
  LatentDistribution d;
  d.mean = parts[0];
  d.logvar = parts[1].clamp(-30.0, 20.0);
  d.std = torch::exp(0.5 * d.logvar);
  return d;
}

}  // namespace sdgen
