// The LDM UNet noise predictor (CompVis ldm/modules/diffusionmodules/openaimodel.py UNetModel
// with use_spatial_transformer), named as model.diffusion_model.* in single-file checkpoints.
#pragma once
#include <torch/torch.h>

#include "sdgen/models/blocks.h"
#include "sdgen/models/conditioning.h"
#include "sdgen/models/config.h"

namespace sdgen {

class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels);
  // x: [B, C, H, W], emb: [B, E] -> [B, Cout, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb);
  nn::GroupNorm in_norm{nullptr}, out_norm{nullptr};
  nn::Conv2d in_conv{nullptr}, out_conv{nullptr}, skip{nullptr};
  nn::Linear emb_proj{nullptr};
};
TORCH_MODULE(ResBlock);

class SpatialTransformerImpl : public torch::nn::Module {
 public:
  SpatialTransformerImpl(int64_t channels, int64_t heads, int64_t head_dim, int64_t depth,
                         int64_t context_dim, bool linear_proj);
  // x: [B, C, H, W], context: [B, M, Cctx] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);
  nn::GroupNorm norm{nullptr};
  torch::nn::AnyModule proj_in, proj_out;  // Conv2d 1x1 (SD1) or Linear (SD2, SDXL)
  torch::nn::ModuleList transformer_blocks{nullptr};
  bool linear_proj;
};
TORCH_MODULE(SpatialTransformer);

class DownsampleImpl : public torch::nn::Module {
 public:
  explicit DownsampleImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);  // [B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]
  nn::Conv2d op{nullptr};
};
TORCH_MODULE(Downsample);

class UpsampleImpl : public torch::nn::Module {
 public:
  explicit UpsampleImpl(int64_t channels);
  // Nearest-neighbour resize to `size` ({H, W}; twice the input when the skip connection that
  // follows has exactly that size), then a 3x3 convolution. Resizing to the skip's size is how
  // diffusers handles latent sides that are not divisible by the total downsampling factor.
  torch::Tensor forward(const torch::Tensor& x, at::IntArrayRef size);
  nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample);

// One entry of input_blocks / output_blocks / middle_block: layers named "0", "1", "2" as in
// CompVis' TimestepEmbedSequential.
class TimestepBlockImpl : public torch::nn::Module {
 public:
  void add(const std::shared_ptr<torch::nn::Module>& layer);
  // `up_size`: target size for an Upsample layer in this block.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& emb, const torch::Tensor& context,
                        at::IntArrayRef up_size = {});
  std::vector<std::shared_ptr<torch::nn::Module>> layers;
};
TORCH_MODULE(TimestepBlock);

// Sinusoidal timestep embedding, computed in float32: t: [B] -> [B, dim] (cos first).
torch::Tensor timestep_embedding(const torch::Tensor& t, int64_t dim);

class UNetModelImpl : public torch::nn::Module {
 public:
  explicit UNetModelImpl(const UNetConfig& c);
  // x: [B, Cx, h, w], timesteps: [B] (float, may be fractional), c.context: [B, M, Cctx],
  // c.vector: [B, adm_in_channels] when the model has label_emb, c.concat: [B, Cin - Cx, h, w]
  // when the model takes more input channels than the latent has (inpainting)
  // -> [B, Cout, h, w]. `block_outputs`, when given, receives each block's output by name
  // ("input_blocks.3", "middle_block", ...), for parity tests.
  torch::Tensor forward(
      const torch::Tensor& x, const torch::Tensor& timesteps, const Conditioning& c,
      std::vector<std::pair<std::string, torch::Tensor>>* block_outputs = nullptr);
  const UNetConfig& config() const { return config_; }

  torch::nn::Sequential time_embed{nullptr};
  // label_emb.0 (SDXL's `num_classes: sequential`): Linear(adm, E), SiLU, Linear(E, E); null
  // when adm_in_channels is 0. (Registered under a holder module "label_emb".)
  torch::nn::Sequential label_emb{nullptr};
  torch::nn::ModuleList input_blocks{nullptr}, output_blocks{nullptr};
  TimestepBlock middle_block{nullptr};
  nn::GroupNorm out_norm{nullptr};
  nn::Conv2d out_conv{nullptr};

 private:
  UNetConfig config_;
};
TORCH_MODULE(UNetModel);

}  // namespace sdgen
