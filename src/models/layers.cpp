#include "sdgen/models/layers.h"

#include <cmath>

namespace sdgen::nn {

torch::Tensor empty_parameter(at::IntArrayRef shape) {
  return torch::empty(shape, torch::TensorOptions().dtype(torch::kFloat));
}

// Each forward calls what the torch::nn module of the same name calls, so results are
// bit-identical to it.
LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias)
    : in_features(in), out_features(out) {
  weight = register_parameter("weight", empty_parameter({out, in}));
  if (with_bias) bias = register_parameter("bias", empty_parameter({out}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  return torch::nn::functional::linear(x, weight, bias);
}

Conv2dImpl::Conv2dImpl(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p)
    : in_channels(in), out_channels(out), kernel(k), stride(s), padding(p) {
  weight = register_parameter("weight", empty_parameter({out, in, k, k}));
  bias = register_parameter("bias", empty_parameter({out}));
}

torch::Tensor Conv2dImpl::forward(const torch::Tensor& x) {
  return torch::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

GroupNormImpl::GroupNormImpl(int64_t g, int64_t c, double e) : groups(g), channels(c), eps(e) {
  weight = register_parameter("weight", empty_parameter({c}));
  bias = register_parameter("bias", empty_parameter({c}));
}

torch::Tensor GroupNormImpl::forward(const torch::Tensor& x) {
  return torch::group_norm(x, groups, weight, bias, eps);
}

LayerNormImpl::LayerNormImpl(int64_t d, double e) : dim(d), eps(e) {
  weight = register_parameter("weight", empty_parameter({d}));
  bias = register_parameter("bias", empty_parameter({d}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {dim}, weight, bias, eps);
}

EmbeddingImpl::EmbeddingImpl(int64_t count, int64_t dim) {
  weight = register_parameter("weight", empty_parameter({count, dim}));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
  return torch::embedding(weight, ids);
}

namespace {

// kaiming_uniform_(a = sqrt(5)) has the bound sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(fan_in),
// the bound of the bias too.
void uniform_fan_in(torch::Tensor& w, torch::Tensor& b) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(w.numel() / w.size(0)));
  w.uniform_(-bound, bound);
  if (b.defined()) b.uniform_(-bound, bound);
}

}  // namespace

void init_default_weights(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& child : module.modules(/*include_self=*/true)) {
    if (auto* l = child->as<LinearImpl>()) {
      uniform_fan_in(l->weight, l->bias);
    } else if (auto* c = child->as<Conv2dImpl>()) {
      uniform_fan_in(c->weight, c->bias);
    } else if (auto* e = child->as<EmbeddingImpl>()) {
      e->weight.normal_(0.0, 1.0);
    } else if (auto* g = child->as<GroupNormImpl>()) {
      g->weight.fill_(1.0);
      g->bias.zero_();
    } else if (auto* n = child->as<LayerNormImpl>()) {
      n->weight.fill_(1.0);
      n->bias.zero_();
    } else {
      // bare parameters of this module (OpenCLIP's packed attention projection and positional
      // embedding): biases 0, the rest N(0, 0.01^2) as open_clip initialises its embeddings
      for (auto& p : child->named_parameters(/*recurse=*/false)) {
        const auto& name = p.key();
        if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0)
          p.value().zero_();
        else
          p.value().normal_(0.0, 0.01);
      }
    }
  }
}

}  // namespace sdgen::nn
