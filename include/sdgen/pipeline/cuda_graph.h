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
  // Warms the UNet up on a side stream on inputs shaped like x [B, C, h, w], t [B] and the
  // conditioning c (its context [B, M, Cctx] and, where present, vector and concat; all on one
  // CUDA device), then captures one forward pass.
  UNetGraph(UNetModel unet, const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c);
  ~UNetGraph();
  UNetGraph(const UNetGraph&) = delete;
  UNetGraph& operator=(const UNetGraph&) = delete;
  // Whether x and c have the shapes (and parts) of the capture.
  bool accepts(const torch::Tensor& x, const Conditioning& c) const;
  // Copies the inputs (accepted shapes) into the static buffers and replays the graph. The
  // result is the static output buffer: the next run overwrites it.
  torch::Tensor run(const torch::Tensor& x, const torch::Tensor& t, const Conditioning& c);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace sdgen
