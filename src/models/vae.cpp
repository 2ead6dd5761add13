#include "sdgen/models/vae.h"

#include <cmath>

namespace sdgen {

namespace F = torch::nn::functional;

VaeResnetBlockImpl::VaeResnetBlockImpl(int64_t in, int64_t out, int64_t groups) {
  norm1 = register_module("norm1", group_norm(in, 1e-6, groups));
  conv1 = register_module("conv1", nn::Conv2d(in, out, 3, 1, 1));
  norm2 = register_module("norm2", group_norm(out, 1e-6, groups));
  conv2 = register_module("conv2", nn::Conv2d(out, out, 3, 1, 1));
  if (in != out) nin_shortcut = register_module("nin_shortcut", nn::Conv2d(in, out, 1));
}

torch::Tensor VaeResnetBlockImpl::forward(const torch::Tensor& x) {
  auto h = conv1(swish(norm1(x)));
  h = conv2(swish(norm2(h)));
  return (nin_shortcut ? nin_shortcut(x) : x) + h;
}

VaeAttnBlockImpl::VaeAttnBlockImpl(int64_t c, int64_t groups) {
  norm = register_module("norm", group_norm(c, 1e-6, groups));
  q = register_module("q", nn::Conv2d(c, c, 1));
  k = register_module("k", nn::Conv2d(c, c, 1));
  v = register_module("v", nn::Conv2d(c, c, 1));
  proj_out = register_module("proj_out", nn::Conv2d(c, c, 1));
}

torch::Tensor VaeAttnBlockImpl::forward(const torch::Tensor& x) {
  const auto b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto n = norm(x);
  // [B, 1, HW, C]: one head over all pixels
  auto as_seq = [&](const torch::Tensor& t) {
    return t.reshape({b, c, h * w}).transpose(1, 2).unsqueeze(1);
  };
  auto out = attention(as_seq(q(n)), as_seq(k(n)), as_seq(v(n)));  // [B, 1, HW, C]
  out = out.squeeze(1).transpose(1, 2).reshape({b, c, h, w});
  return x + proj_out(out);
}

VaeMidImpl::VaeMidImpl(int64_t c, int64_t groups) {
  block_1 = register_module("block_1", VaeResnetBlock(c, c, groups));
  attn_1 = register_module("attn_1", VaeAttnBlock(c, groups));
  block_2 = register_module("block_2", VaeResnetBlock(c, c, groups));
}

torch::Tensor VaeMidImpl::forward(const torch::Tensor& x) { return block_2(attn_1(block_1(x))); }

VaeLevelImpl::VaeLevelImpl(int64_t in, int64_t out, int blocks, bool down_, bool up_,
                           int64_t groups)
    : down(down_), up(up_) {
  block = register_module("block", torch::nn::ModuleList());
  for (int i = 0; i < blocks; ++i) {
    block->push_back(VaeResnetBlock(i == 0 ? in : out, out, groups));
  }
  if (down || up) {
    auto holder =
        register_module(down ? "downsample" : "upsample", std::make_shared<torch::nn::Module>());
    // Downsample: pad right/bottom by one, then 3x3 stride 2 without padding.
    resample = holder->register_module(
        "conv", down ? nn::Conv2d(out, out, 3, 2, 0) : nn::Conv2d(out, out, 3, 1, 1));
  }
}

torch::Tensor VaeLevelImpl::forward(torch::Tensor x) {
  for (const auto& b : *block) x = b->as<VaeResnetBlock>()->forward(x);
  if (down) x = resample(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));
  if (up) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{x.size(2) * 2, x.size(3) * 2})
                              .mode(torch::kNearest));
    x = resample(x);
  }
  return x;
}

VaeEncoderImpl::VaeEncoderImpl(const VaeConfig& c) {
  const int levels = static_cast<int>(c.ch_mult.size());
  conv_in = register_module("conv_in", nn::Conv2d(c.in_channels, c.ch, 3, 1, 1));
  down = register_module("down", torch::nn::ModuleList());
  int64_t in = c.ch;
  for (int i = 0; i < levels; ++i) {
    const int64_t out = c.ch * c.ch_mult[i];
    down->push_back(
        VaeLevel(in, out, c.num_res_blocks, /*down=*/i != levels - 1, false, c.norm_groups));
    in = out;
  }
  mid = register_module("mid", VaeMid(in, c.norm_groups));
  norm_out = register_module("norm_out", group_norm(in, 1e-6, c.norm_groups));
  conv_out = register_module("conv_out", nn::Conv2d(in, 2 * c.z_channels, 3, 1, 1));
}

torch::Tensor VaeEncoderImpl::forward(const torch::Tensor& x) {
  auto h = conv_in(x);
  for (const auto& level : *down) h = level->as<VaeLevel>()->forward(h);
  h = mid(h);
  return conv_out(swish(norm_out(h)));
}

VaeDecoderImpl::VaeDecoderImpl(const VaeConfig& c) {
  const int levels = static_cast<int>(c.ch_mult.size());
  int64_t in = c.ch * c.ch_mult.back();
  conv_in = register_module("conv_in", nn::Conv2d(c.z_channels, in, 3, 1, 1));
  mid = register_module("mid", VaeMid(in, c.norm_groups));
  // up.{i} is built from the deepest level down but indexed by level, as in CompVis.
  std::vector<VaeLevel> by_level(levels, nullptr);
  for (int i = levels - 1; i >= 0; --i) {
    const int64_t out = c.ch * c.ch_mult[i];
    by_level[i] = VaeLevel(in, out, c.num_res_blocks + 1, false, /*up=*/i != 0, c.norm_groups);
    in = out;
  }
  up = register_module("up", torch::nn::ModuleList());
  for (auto& level : by_level) up->push_back(level);
  norm_out = register_module("norm_out", group_norm(in, 1e-6, c.norm_groups));
  conv_out = register_module("conv_out", nn::Conv2d(in, c.out_channels, 3, 1, 1));
}

torch::Tensor VaeDecoderImpl::forward(const torch::Tensor& z) {
  auto h = mid(conv_in(z));
  for (size_t i = up->size(); i-- > 0;) h = up[i]->as<VaeLevel>()->forward(h);
  return conv_out(swish(norm_out(h)));
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& c) : config_(c) {
  encoder = register_module("encoder", VaeEncoder(c));
  decoder = register_module("decoder", VaeDecoder(c));
  quant_conv = register_module("quant_conv", nn::Conv2d(2 * c.z_channels, 2 * c.embed_dim, 1));
  post_quant_conv = register_module("post_quant_conv", nn::Conv2d(c.embed_dim, c.z_channels, 1));
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& z) {
  return decoder(post_quant_conv(z));
}

LatentDistribution AutoencoderKLImpl::encode(const torch::Tensor& image) {
  auto moments = quant_conv(encoder(image));
  auto parts = moments.chunk(2, 1);
  LatentDistribution d;
  d.mean = parts[0];
  d.logvar = parts[1].clamp(-30.0, 20.0);
  d.std = torch::exp(0.5 * d.logvar);
  return d;
}

}  // namespace sdgen
