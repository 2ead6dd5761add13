// The LDM AutoencoderKL (CompVis ldm/modules/diffusionmodules/model.py Encoder/Decoder and
// ldm/models/autoencoder.py), named as first_stage_model.* in single-file checkpoints.
#pragma once
#include <torch/torch.h>

#include "sdgen/models/blocks.h"
#include "sdgen/models/config.h"

namespace sdgen {

class VaeResnetBlockImpl : public torch::nn::Module {
 public:
  VaeResnetBlockImpl(int64_t in, int64_t out, int64_t groups = 32);
  torch::Tensor forward(const torch::Tensor& x);  // [B, Cin, H, W] -> [B, Cout, H, W]
  nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, nin_shortcut{nullptr};
};
TORCH_MODULE(VaeResnetBlock);

// Single-head self-attention over all pixels with 1x1-convolution q/k/v/proj_out.
class VaeAttnBlockImpl : public torch::nn::Module {
 public:
  explicit VaeAttnBlockImpl(int64_t channels, int64_t groups = 32);
  torch::Tensor forward(const torch::Tensor& x);  // [B, C, H, W]
  nn::GroupNorm norm{nullptr};
  nn::Conv2d q{nullptr}, k{nullptr}, v{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(VaeAttnBlock);

// mid.block_1, mid.attn_1, mid.block_2
class VaeMidImpl : public torch::nn::Module {
 public:
  explicit VaeMidImpl(int64_t channels, int64_t groups = 32);
  torch::Tensor forward(const torch::Tensor& x);
  VaeResnetBlock block_1{nullptr}, block_2{nullptr};
  VaeAttnBlock attn_1{nullptr};
};
TORCH_MODULE(VaeMid);

// One resolution level: `block.N` resnets and an optional resampling conv (`downsample.conv` /
// `upsample.conv`).
class VaeLevelImpl : public torch::nn::Module {
 public:
  VaeLevelImpl(int64_t in, int64_t out, int blocks, bool down, bool up, int64_t groups = 32);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList block{nullptr};
  nn::Conv2d resample{nullptr};
  bool down, up;
};
TORCH_MODULE(VaeLevel);

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const VaeConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [B, 3, H, W] -> [B, 2z, H/f, W/f]
  nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down{nullptr};
  VaeMid mid{nullptr};
  nn::GroupNorm norm_out{nullptr};
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const VaeConfig& c);
  torch::Tensor forward(const torch::Tensor& z);  // [B, z, h, w] -> [B, 3, h*f, w*f]
  nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up{nullptr};
  VaeMid mid{nullptr};
  nn::GroupNorm norm_out{nullptr};
};
TORCH_MODULE(VaeDecoder);

struct LatentDistribution {
  torch::Tensor mean, logvar, std;  // [B, z, h, w]; logvar clamped to [-30, 20]
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const VaeConfig& c);
  // Unscaled latent (the sampler's latent / scale_factor) -> image in [-1, 1].
  torch::Tensor decode(const torch::Tensor& z);
  LatentDistribution encode(const torch::Tensor& image);  // image in [-1, 1]
  const VaeConfig& config() const { return config_; }
  VaeEncoder encoder{nullptr};
  VaeDecoder decoder{nullptr};
  nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  VaeConfig config_;
};
TORCH_MODULE(AutoencoderKL);

}  // namespace sdgen
