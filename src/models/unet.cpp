#include "sdgen/models/unet.h"

#include <cmath>
#include <stdexcept>

#include "sdgen/models/fused.h"

namespace sdgen {
namespace {

// Registers `m` under `name` inside a Sequential-like container whose other indices hold
// parameter-free layers (SiLU, Dropout), so keys read in_layers.0 / in_layers.2 as in CompVis.
std::shared_ptr<torch::nn::Module> indexed(
    torch::nn::Module& parent, const std::string& name,
    std::initializer_list<std::pair<const char*, std::shared_ptr<torch::nn::Module>>> children) {
  auto holder = parent.register_module(name, std::make_shared<torch::nn::Module>());
  for (const auto& [key, child] : children) holder->register_module(key, child);
  return holder;
}

}  // namespace

ResBlockImpl::ResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels) {
  in_norm = group_norm(channels, 1e-5);
  in_conv = nn::Conv2d(channels, out_channels, 3, 1, 1);
  indexed(*this, "in_layers", {{"0", in_norm.ptr()}, {"2", in_conv.ptr()}});
  emb_proj = nn::Linear(emb_channels, out_channels);
  indexed(*this, "emb_layers", {{"1", emb_proj.ptr()}});
  out_norm = group_norm(out_channels, 1e-5);
  out_conv = nn::Conv2d(out_channels, out_channels, 3, 1, 1);
  indexed(*this, "out_layers", {{"0", out_norm.ptr()}, {"3", out_conv.ptr()}});
  if (out_channels != channels)
    skip = register_module("skip_connection", nn::Conv2d(channels, out_channels, 1));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& emb) {
  auto h = in_conv(group_norm_silu(in_norm, x));
  auto e = emb_proj(torch::silu(emb)).to(h.scalar_type());
  h = h + e.unsqueeze(-1).unsqueeze(-1);
  h = out_conv(group_norm_silu(out_norm, h));
  return (skip ? skip(x) : x) + h;
}

SpatialTransformerImpl::SpatialTransformerImpl(int64_t channels, int64_t heads, int64_t head_dim,
                                               int64_t depth, int64_t context_dim,
                                               bool linear_proj_)
    : linear_proj(linear_proj_) {
  const int64_t inner = heads * head_dim;
  norm = register_module("norm", group_norm(channels, 1e-6));
  if (linear_proj) {
    proj_in = torch::nn::AnyModule(register_module("proj_in", nn::Linear(channels, inner)));
  } else {
    proj_in = torch::nn::AnyModule(register_module("proj_in", nn::Conv2d(channels, inner, 1)));
  }
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i)
    transformer_blocks->push_back(BasicTransformerBlock(inner, heads, head_dim, context_dim));
  if (linear_proj) {
    proj_out = torch::nn::AnyModule(register_module("proj_out", nn::Linear(inner, channels)));
  } else {
    proj_out = torch::nn::AnyModule(register_module("proj_out", nn::Conv2d(inner, channels, 1)));
  }
}

torch::Tensor SpatialTransformerImpl::forward(const torch::Tensor& x,
                                              const torch::Tensor& context) {
  const auto b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  auto y = norm(x);
  if (!linear_proj) y = proj_in.forward(y);
  y = y.permute({0, 2, 3, 1}).reshape({b, h * w, -1});  // [B, HW, inner]
  if (linear_proj) y = proj_in.forward(y);
  for (const auto& block : *transformer_blocks)
    y = block->as<BasicTransformerBlock>()->forward(y, context);
  if (linear_proj) y = proj_out.forward(y);
  // NCHW, or NHWC when the input is channels_last (to_channels_last, tools/random_model.h)
  y = y.reshape({b, h, w, -1}).permute({0, 3, 1, 2}).contiguous(x.suggest_memory_format());
  if (!linear_proj) y = proj_out.forward(y);
  (void)c;
  return y + x;
}

DownsampleImpl::DownsampleImpl(int64_t channels) {
  op = register_module("op", nn::Conv2d(channels, channels, 3, 2, 1));
}

torch::Tensor DownsampleImpl::forward(const torch::Tensor& x) { return op(x); }

UpsampleImpl::UpsampleImpl(int64_t channels) {
  conv = register_module("conv", nn::Conv2d(channels, channels, 3, 1, 1));
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x, at::IntArrayRef size) {
  namespace F = torch::nn::functional;
  std::vector<int64_t> target =
      size.empty() ? std::vector<int64_t>{x.size(2) * 2, x.size(3) * 2} : size.vec();
  auto y = F::interpolate(x, F::InterpolateFuncOptions().size(target).mode(torch::kNearest));
  return conv(y);
}

void TimestepBlockImpl::add(const std::shared_ptr<torch::nn::Module>& layer) {
  register_module(std::to_string(layers.size()), layer);
  layers.push_back(layer);
}

torch::Tensor TimestepBlockImpl::forward(torch::Tensor x, const torch::Tensor& emb,
                                         const torch::Tensor& context, at::IntArrayRef up_size) {
  for (const auto& layer : layers) {
    if (auto* res = layer->as<ResBlock>()) {
      x = res->forward(x, emb);
    } else if (auto* st = layer->as<SpatialTransformer>()) {
      x = st->forward(x, context);
    } else if (auto* down = layer->as<Downsample>()) {
      x = down->forward(x);
    } else if (auto* up = layer->as<Upsample>()) {
      x = up->forward(x, up_size);
    } else if (auto* conv = layer->as<nn::Conv2d>()) {
      x = conv->forward(x);
    } else {
      throw std::logic_error("unknown layer in UNet block");
    }
  }
  return x;
}

torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  // CompVis: exp(-ln(10000) * arange(half) / half) in float32, then t[:, None] * freqs[None].
  auto freqs = torch::exp(-std::log(10000.0) *
                          torch::arange(0, half, t.options().dtype(torch::kFloat)) / half);
  auto args = t.to(torch::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, -1);
  if (dim % 2) emb = torch::cat({emb, torch::zeros_like(emb.narrow(1, 0, 1))}, -1);
  return emb;
}

UNetModelImpl::UNetModelImpl(const UNetConfig& c) : config_(c) {
  const int64_t mc = c.model_channels, emb_dim = c.time_embed_dim();
  time_embed = register_module("time_embed",
                               torch::nn::Sequential(nn::Linear(mc, emb_dim), torch::nn::SiLU(),
                                                     nn::Linear(emb_dim, emb_dim)));
  if (c.adm_in_channels > 0) {
    // sgm names it label_emb.0.{0,2}: a Sequential inside a Sequential
    label_emb = torch::nn::Sequential(nn::Linear(c.adm_in_channels, emb_dim), torch::nn::SiLU(),
                                      nn::Linear(emb_dim, emb_dim));
    register_module("label_emb", std::make_shared<torch::nn::Module>())
        ->register_module("0", label_emb.ptr());
  }
  if (c.transformer_depth.size() != 1 && c.transformer_depth.size() != c.channel_mult.size())
    throw std::invalid_argument("UNet: transformer_depth has " +
                                std::to_string(c.transformer_depth.size()) + " entries for " +
                                std::to_string(c.channel_mult.size()) +
                                " levels (give one, or one per level)");
  auto transformer = [&](int64_t ch, int depth) {
    const int64_t heads = c.heads_for(static_cast<int>(ch));
    if (heads <= 0 || ch % heads != 0)
      throw std::invalid_argument("UNet: " + std::to_string(ch) +
                                  " channels cannot be split into " + std::to_string(heads) +
                                  " attention heads");
    return SpatialTransformer(ch, heads, ch / heads, depth, c.context_dim, c.use_linear_proj);
  };
  auto has_attention = [&](int ds) {
    for (int r : c.attention_resolutions)
      if (r == ds) return true;
    return false;
  };

  input_blocks = register_module("input_blocks", torch::nn::ModuleList());
  {
    TimestepBlock first;
    first->add(nn::Conv2d(c.in_channels, mc, 3, 1, 1).ptr());
    input_blocks->push_back(first);
  }
  std::vector<int64_t> skip_channels{mc};
  int64_t ch = mc;
  int ds = 1;
  const size_t levels = c.channel_mult.size();
  for (size_t level = 0; level < levels; ++level) {
    for (int i = 0; i < c.num_res_blocks; ++i) {
      TimestepBlock block;
      const int64_t out = c.channel_mult[level] * mc;
      block->add(ResBlock(ch, emb_dim, out).ptr());
      ch = out;
      if (has_attention(ds)) block->add(transformer(ch, c.depth_at(level)).ptr());
      input_blocks->push_back(block);
      skip_channels.push_back(ch);
    }
    if (level + 1 != levels) {
      TimestepBlock block;
      block->add(Downsample(ch).ptr());
      input_blocks->push_back(block);
      skip_channels.push_back(ch);
      ds *= 2;
    }
  }

  middle_block = register_module("middle_block", TimestepBlock());
  middle_block->add(ResBlock(ch, emb_dim, ch).ptr());
  middle_block->add(transformer(ch, c.middle_depth()).ptr());
  middle_block->add(ResBlock(ch, emb_dim, ch).ptr());

  output_blocks = register_module("output_blocks", torch::nn::ModuleList());
  for (size_t level = levels; level-- > 0;) {
    for (int i = 0; i <= c.num_res_blocks; ++i) {
      TimestepBlock block;
      const int64_t skip = skip_channels.back();
      skip_channels.pop_back();
      const int64_t out = c.channel_mult[level] * mc;
      block->add(ResBlock(ch + skip, emb_dim, out).ptr());
      ch = out;
      if (has_attention(ds)) block->add(transformer(ch, c.depth_at(level)).ptr());
      if (level != 0 && i == c.num_res_blocks) {
        block->add(Upsample(ch).ptr());
        ds /= 2;
      }
      output_blocks->push_back(block);
    }
  }

  out_norm = group_norm(ch, 1e-5);
  out_conv = nn::Conv2d(mc, c.out_channels, 3, 1, 1);
  auto out = register_module("out", std::make_shared<torch::nn::Module>());
  out->register_module("0", out_norm.ptr());
  out->register_module("2", out_conv.ptr());
}

torch::Tensor UNetModelImpl::forward(
    const torch::Tensor& x, const torch::Tensor& timesteps, const Conditioning& c,
    std::vector<std::pair<std::string, torch::Tensor>>* block_outputs) {
  const auto dtype = x.scalar_type();
  const auto& context = c.context;
  auto t_emb = timestep_embedding(timesteps, config_.model_channels).to(dtype);
  auto emb = time_embed->forward(t_emb);
  if (label_emb) {
    if (!c.vector.defined())
      throw std::invalid_argument("UNet: this model takes a conditioning vector (label_emb)");
    emb = emb + label_emb->forward(c.vector.to(dtype));
  }
  auto record = [&](const std::string& name, const torch::Tensor& t) {
    if (block_outputs) block_outputs->emplace_back(name, t);
  };

  std::vector<torch::Tensor> skips;
  // Extra input channels (inpainting UNets: mask and masked-image latent) follow the latent.
  auto h = c.concat.defined() ? torch::cat({x, c.concat.to(dtype)}, 1) : x;
  for (size_t i = 0; i < input_blocks->size(); ++i) {
    h = input_blocks[i]->as<TimestepBlock>()->forward(h, emb, context);
    skips.push_back(h);
    record("input_blocks." + std::to_string(i), h);
  }
  h = middle_block->forward(h, emb, context);
  record("middle_block", h);
  for (size_t i = 0; i < output_blocks->size(); ++i) {
    auto skip = skips.back();
    skips.pop_back();
    h = torch::cat({h, skip}, 1);
    // An Upsample at the end of this block resizes to the next skip connection's size.
    std::vector<int64_t> up_size;
    if (!skips.empty()) up_size = {skips.back().size(2), skips.back().size(3)};
    h = output_blocks[i]->as<TimestepBlock>()->forward(h, emb, context, up_size);
    record("output_blocks." + std::to_string(i), h);
  }
  return out_conv(group_norm_silu(out_norm, h));
}

}  // namespace sdgen
