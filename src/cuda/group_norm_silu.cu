// GroupNorm + SiLU in one pass over memory pair (read for the statistics, read + write for the
// output), float32 statistics whatever the storage type: what CompVis' GroupNorm32 followed by
// SiLU computes, without the float32 copy of the activations and the separate SiLU kernel.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "group_norm_silu.h"

namespace {

constexpr int kThreads = 512;

template <typename T>
__device__ __forceinline__ float load(const T* p) {
  return static_cast<float>(*p);
}
template <>
__device__ __forceinline__ float load<__half>(const __half* p) {
  return __half2float(*p);
}
template <>
__device__ __forceinline__ float load<__nv_bfloat16>(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}
template <typename T>
__device__ __forceinline__ void store(T* p, float v) {
  *p = static_cast<T>(v);
}
template <>
__device__ __forceinline__ void store<__half>(__half* p, float v) {
  *p = __float2half_rn(v);
}
template <>
__device__ __forceinline__ void store<__nv_bfloat16>(__nv_bfloat16* p, float v) {
  *p = __float2bfloat16_rn(v);
}

// Sum of v over the block (kThreads threads); every thread gets the result.
__device__ float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? shared[threadIdx.x] : 0.f;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  v = shared[0];
  __syncthreads();
  return v;
}

// One block per (sample, group): the group's channels are one contiguous run of cpg * hw values.
// Two passes for the statistics (mean, then the centred sum of squares: no cancellation), a
// third that writes; the run (<= a few hundred KB) stays in L2 between them.
template <typename T>
__global__ void group_norm_silu_kernel(const T* __restrict__ x, T* __restrict__ y,
                                       const float* __restrict__ gamma,
                                       const float* __restrict__ beta, int c, long long hw,
                                       int groups, float eps, int silu) {
  __shared__ float shared[kThreads / 32];
  const int g = blockIdx.x % groups;
  const int cpg = c / groups;
  const long long count = static_cast<long long>(cpg) * hw;
  const long long base = static_cast<long long>(blockIdx.x) * count;
  const T* xs = x + base;
  T* ys = y + base;
  float s = 0.f;
  for (long long i = threadIdx.x; i < count; i += kThreads) s += load(xs + i);
  const float mean = block_sum(s, shared) / static_cast<float>(count);
  float q = 0.f;
  for (long long i = threadIdx.x; i < count; i += kThreads) {
    const float d = load(xs + i) - mean;
    q += d * d;
  }
  const float rstd = rsqrtf(block_sum(q, shared) / static_cast<float>(count) + eps);
  for (int k = 0; k < cpg; ++k) {
    const int ch = g * cpg + k;
    const float a = rstd * gamma[ch];
    const float b = beta[ch] - mean * a;
    const T* xc = xs + k * hw;
    T* yc = ys + k * hw;
    for (long long i = threadIdx.x; i < hw; i += kThreads) {
      float v = load(xc + i) * a + b;
      if (silu) v = v / (1.f + __expf(-v));
      store(yc + i, v);
    }
  }
}

template <typename T>
cudaError_t launch(const void* x, void* y, const float* gamma, const float* beta, int n, int c,
                   long long hw, int groups, float eps, int silu, cudaStream_t stream) {
  group_norm_silu_kernel<T><<<n * groups, kThreads, 0, stream>>>(
      static_cast<const T*>(x), static_cast<T*>(y), gamma, beta, c, hw, groups, eps, silu);
  return cudaGetLastError();
}

}  // namespace

extern "C" cudaError_t sdgen_group_norm_silu(const void* x, void* y, const float* gamma,
                                             const float* beta, int dtype, int n, int c,
                                             long long hw, int groups, float eps, int silu,
                                             cudaStream_t stream) {
  if (n <= 0 || groups <= 0 || c % groups != 0) return cudaErrorInvalidValue;
  switch (dtype) {
    case 0:
      return launch<float>(x, y, gamma, beta, n, c, hw, groups, eps, silu, stream);
    case 1:
      return launch<__half>(x, y, gamma, beta, n, c, hw, groups, eps, silu, stream);
    case 2:
      return launch<__nv_bfloat16>(x, y, gamma, beta, n, c, hw, groups, eps, silu, stream);
    default:
      return cudaErrorInvalidValue;
  }
}
