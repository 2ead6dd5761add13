#include "sdgen/pipeline/cuda_graph.h"

#include <stdexcept>

#if defined(SDGEN_TORCH_CUDA) && TORCH_VERSION_MAJOR >= 2
#define SDGEN_CUDA_GRAPH 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

namespace sdgen {

#ifdef SDGEN_CUDA_GRAPH
namespace {

bool same_shape(const torch::Tensor& a, const torch::Tensor& b) {
  return a.defined() == b.defined() && (!a.defined() || a.sizes().equals(b.sizes()));
}

torch::Tensor clone_part(const torch::Tensor& t) { return t.defined() ? t.clone() : t; }

void copy_part(torch::Tensor& dst, const torch::Tensor& src) {
  if (dst.defined()) dst.copy_(src);
}

}  // namespace

struct UNetGraph::State {
  UNetModel unet{nullptr};
  torch::Tensor x, t, out;
  Conditioning c;
  at::cuda::CUDAGraph graph;
};

bool UNetGraph::available() { return true; }

UNetGraph::UNetGraph(UNetModel unet, const torch::Tensor& x, const torch::Tensor& t,
                     const Conditioning& c)
    : s_(std::make_unique<State>()) {
  if (!x.is_cuda()) throw std::invalid_argument("UNetGraph: inputs must be on a CUDA device");
  torch::NoGradGuard no_grad;
  s_->unet = std::move(unet);
  s_->x = x.clone();
  s_->t = t.clone();
  s_->c = Conditioning(c.context.clone(), clone_part(c.vector), clone_part(c.concat));
  const auto index = x.device().index();
  torch::cuda::synchronize(index);  // the buffers are ready before the side stream reads them
  auto stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    // Warm-up outside the capture: cuDNN algorithm choice and allocator growth happen here.
    for (int i = 0; i < 3; ++i) s_->out = s_->unet->forward(s_->x, s_->t, s_->c);
    stream.synchronize();
    s_->graph.capture_begin();
    s_->out = s_->unet->forward(s_->x, s_->t, s_->c);
    s_->graph.capture_end();
  }
  torch::cuda::synchronize(index);
}

bool UNetGraph::accepts(const torch::Tensor& x, const Conditioning& c) const {
  return same_shape(x, s_->x) && same_shape(c.context, s_->c.context) &&
         same_shape(c.vector, s_->c.vector) && same_shape(c.concat, s_->c.concat);
}

torch::Tensor UNetGraph::run(const torch::Tensor& x, const torch::Tensor& t,
                             const Conditioning& c) {
  if (!accepts(x, c))
    throw std::invalid_argument("UNetGraph::run: input shapes differ from the captured ones");
  s_->x.copy_(x);
  s_->t.copy_(t);
  s_->c.context.copy_(c.context);
  copy_part(s_->c.vector, c.vector);
  copy_part(s_->c.concat, c.concat);
  s_->graph.replay();
  return s_->out;
}

#else

struct UNetGraph::State {};

bool UNetGraph::available() { return false; }

UNetGraph::UNetGraph(UNetModel, const torch::Tensor&, const torch::Tensor&, const Conditioning&) {
  throw std::runtime_error(
      "CUDA graphs need a build against libtorch >= 2.0 with CUDA (SDGEN_TORCH_CUDA)");
}

bool UNetGraph::accepts(const torch::Tensor&, const Conditioning&) const { return false; }

torch::Tensor UNetGraph::run(const torch::Tensor&, const torch::Tensor&, const Conditioning&) {
  throw std::runtime_error("CUDA graphs are not available in this build");
}

#endif

UNetGraph::~UNetGraph() = default;

}  // namespace sdgen
