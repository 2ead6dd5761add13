#include "sdgen/models/fused.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "sdgen/models/blocks.h"

#ifdef SDGEN_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/group_norm_silu.h"
#endif

namespace sdgen {
namespace {

std::atomic<bool>& enabled() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("SDGEN_FUSED");
    return v && std::strcmp(v, "1") == 0;
  }()};
  return on;
}

}  // namespace

bool fused_kernels_available() {
#ifdef SDGEN_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

bool fused_kernels_enabled() { return fused_kernels_available() && enabled().load(); }

void set_fused_kernels(bool on) { enabled().store(on); }

torch::Tensor group_norm_silu(const nn::GroupNorm& norm, const torch::Tensor& x) {
#ifdef SDGEN_CUDA_KERNELS
  const auto type = x.scalar_type();
  if (enabled().load() && x.is_cuda() && x.dim() >= 3 && x.is_contiguous() &&
      (type == torch::kFloat || type == torch::kHalf || type == torch::kBFloat16)) {
    const c10::cuda::CUDAGuard guard(x.device());
    auto y = torch::empty_like(x);
    auto gamma = norm->weight.to(torch::kFloat).contiguous();
    auto beta = norm->bias.to(torch::kFloat).contiguous();
    const int64_t n = x.size(0), c = x.size(1);
    const auto err = sdgen_group_norm_silu(
        x.data_ptr(), y.data_ptr(), gamma.data_ptr<float>(), beta.data_ptr<float>(),
        type == torch::kFloat  ? 0
        : type == torch::kHalf ? 1
                               : 2,
        static_cast<int>(n), static_cast<int>(c), static_cast<long long>(x.numel() / (n * c)),
        static_cast<int>(norm->groups), static_cast<float>(norm->eps), 1,
        c10::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(err == cudaSuccess, "group_norm_silu: ", cudaGetErrorString(err));
    return y;
  }
#endif
  return torch::silu(group_norm_f32(norm, x));
}

}  // namespace sdgen
