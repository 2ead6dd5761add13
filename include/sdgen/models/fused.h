// Fused kernels for the CUDA fast path (issue #7). Compiled in where CMake finds nvcc and a
// CUDA libtorch (SDGEN_CUDA_KERNELS); used only when enabled, since each is adopted after it is
// measured: set_fused_kernels(true), `sdgen bench --fused`, or SDGEN_FUSED=1 in the environment.
#pragma once
#include <torch/torch.h>

#include "sdgen/models/layers.h"

namespace sdgen {

bool fused_kernels_available();
bool fused_kernels_enabled();
void set_fused_kernels(bool on);

// silu(group_norm_f32(norm, x)): float32 statistics and arithmetic, the result in x's dtype.
// One CUDA kernel when enabled and x is a contiguous (NCHW) CUDA tensor; the libtorch ops
// otherwise.
torch::Tensor group_norm_silu(const nn::GroupNorm& norm, const torch::Tensor& x);

}  // namespace sdgen
