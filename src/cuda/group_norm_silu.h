// Fused GroupNorm (+ SiLU) CUDA kernel with a plain C interface, so that the .cu file needs no
// libtorch headers. The wrapper over tensors is sdgen::group_norm_silu (models/fused.h).
#pragma once
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

// dtype of x and y: 0 float32, 1 float16, 2 bfloat16. x, y: [n, c, hw] contiguous (NCHW);
// gamma, beta: [c] float32. Statistics and arithmetic in float32: y = silu?((x - mean) * rstd *
// gamma + beta) per (sample, group) of c / groups channels. Returns cudaSuccess or the launch
// error.
cudaError_t sdgen_group_norm_silu(const void* x, void* y, const float* gamma, const float* beta,
                                  int dtype, int n, int c, long long hw, int groups, float eps,
                                  int silu, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
