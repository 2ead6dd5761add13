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

struct UNetGraph::State {
  UNetModel unet{nullptr};
  torch::Tensor x, t, context, out;
  at::cuda::CUDAGraph graph;
};

bool UNetGraph::available() { return true; }

UNetGraph::UNetGraph(UNetModel unet, const torch::Tensor& x, const torch::Tensor& t,
                     const torch::Tensor& context)
    : s_(std::make_unique<State>()) {
  if (!x.is_cuda()) throw std::invalid_argument("UNetGraph: inputs must be on a CUDA device");
  torch::NoGradGuard no_grad;
  s_->unet = std::move(unet);
  s_->x = x.clone();
  s_->t = t.clone();
  s_->context = context.clone();
  const auto index = x.device().index();
  torch::cuda::synchronize(index);  // the buffers are ready before the side stream reads them
  auto stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    // Warm-up outside the capture: cuDNN algorithm choice and allocator growth happen here.
    for (int i = 0; i < 3; ++i) s_->out = s_->unet->forward(s_->x, s_->t, s_->context);
    stream.synchronize();
    s_->graph.capture_begin();
    s_->out = s_->unet->forward(s_->x, s_->t, s_->context);
    s_->graph.capture_end();
  }
  torch::cuda::synchronize(index);
}

torch::Tensor UNetGraph::run(const torch::Tensor& x, const torch::Tensor& t,
                             const torch::Tensor& context) {
  if (!x.sizes().equals(s_->x.sizes()) || !context.sizes().equals(s_->context.sizes()))
    throw std::invalid_argument("UNetGraph::run: input shapes differ from the captured ones");
  s_->x.copy_(x);
  s_->t.copy_(t);
  s_->context.copy_(context);
  s_->graph.replay();
  return s_->out;
}

#else

struct UNetGraph::State {};

bool UNetGraph::available() { return false; }

UNetGraph::UNetGraph(UNetModel, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  throw std::runtime_error(
      "CUDA graphs need a build against libtorch >= 2.0 with CUDA (SDGEN_TORCH_CUDA)");
}

torch::Tensor UNetGraph::run(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  throw std::runtime_error("CUDA graphs are not available in this build");
}

#endif

UNetGraph::~UNetGraph() = default;

}  // namespace sdgen
