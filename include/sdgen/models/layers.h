// The layers the networks are built from: Linear, Conv2d, GroupNorm, LayerNorm and Embedding
// with torch::nn's parameter names and forward arithmetic, but parameters created *empty*:
// no random initialisation (libtorch's kaiming/normal init of an SD 1.5 model takes seconds
// on the CPU, and every value is overwritten by the checkpoint anyway). Empty CPU storage is
// not touched, so it costs address space, not memory, until the loader replaces it.
// Fresh models that are trained or benchmarked get values from init_default_weights().
#pragma once
#include <cstdint>

#include <torch/torch.h>

namespace sdgen::nn {

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);  // x: [..., in] -> [..., out]
  torch::Tensor weight, bias;                     // [out, in], [out] (undefined without bias)
  int64_t in_features, out_features;
};
TORCH_MODULE(Linear);

class Conv2dImpl : public torch::nn::Module {
 public:
  Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0);
  torch::Tensor forward(const torch::Tensor& x);  // x: [B, in, H, W] -> [B, out, H', W']
  torch::Tensor weight, bias;                     // [out, in, k, k], [out]
  int64_t in_channels, out_channels, kernel, stride, padding;
};
TORCH_MODULE(Conv2d);

class GroupNormImpl : public torch::nn::Module {
 public:
  GroupNormImpl(int64_t groups, int64_t channels, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // x: [B, C, ...]
  torch::Tensor weight, bias;                     // [C]
  int64_t groups, channels;
  double eps;
};
TORCH_MODULE(GroupNorm);

class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // x: [..., dim]
  torch::Tensor weight, bias;                     // [dim]
  int64_t dim;
  double eps;
};
TORCH_MODULE(LayerNorm);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t count, int64_t dim);
  torch::Tensor forward(const torch::Tensor& ids);  // ids: [...] int64 -> [..., dim]
  torch::Tensor weight;                             // [count, dim]
};
TORCH_MODULE(Embedding);

// A parameter of `shape` with uninitialised CPU float32 storage (see the file comment).
torch::Tensor empty_parameter(at::IntArrayRef shape);

// torch.nn's default initialisation, for models that are not loaded from a file: Linear and
// Conv2d weights kaiming-uniform (a = sqrt(5)) and biases uniform in +-1/sqrt(fan_in),
// embeddings N(0, 1), norm scales 1 and shifts 0; bare parameters of other modules (OpenCLIP's
// packed attention projection and positional embedding) 0 for biases, else N(0, 0.01^2).
// Uses the global generator.
void init_default_weights(torch::nn::Module& module);

}  // namespace sdgen::nn
