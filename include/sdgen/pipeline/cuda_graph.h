// The UNet step as a captured CUDA graph: captured once per input shape with static input and
// output buffers, replayed for each step. Only built where libtorch has CUDA (SDGEN_TORCH_CUDA);
// elsewhere available() is false and the constructor throws.
#pragma once
#include <memory>

#include <torch/torch.h>

#include "sdgen/models/unet.h"

namespace sdgen {

class UNetGraph {
 public:
  // Whether this build can capture CUDA graphs (libtorch with CUDA, >= 2.0).
  static bool available();
  // Warms the UNet up on a side stream on inputs shaped like x [B, C, h, w], t [B] and
  // context [B, M, Cctx] (all on one CUDA device), then captures one forward pass.
  UNetGraph(UNetModel unet, const torch::Tensor& x, const torch::Tensor& t,
            const torch::Tensor& context);
  ~UNetGraph();
  UNetGraph(const UNetGraph&) = delete;
  UNetGraph& operator=(const UNetGraph&) = delete;
  // Copies the inputs (same shapes as at capture) into the static buffers and replays the
  // graph. The result is the static output buffer: the next run overwrites it.
  torch::Tensor run(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace sdgen
