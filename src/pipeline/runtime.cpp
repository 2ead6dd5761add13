#include "sdgen/pipeline/runtime.h"

#include <sched.h>

#include <cstdlib>
#include <regex>
#include <stdexcept>
#include <thread>

#include <ATen/Parallel.h>

namespace sdgen {

torch::Device parse_device(const std::string& name) {
  const bool cuda = torch::cuda::is_available();
  const std::string s = name.empty() ? (cuda ? "cuda" : "cpu") : name;
  if (s == "cpu") return torch::kCPU;
  static const std::regex pattern("cuda(:([0-9]{1,4}))?");
  std::smatch m;
  if (!std::regex_match(s, m, pattern))
    throw std::invalid_argument("device must be cpu, cuda or cuda:N, not '" + s + "'");
  if (!cuda)
    throw std::invalid_argument("device " + s +
                                ": no CUDA GPU is available to this build; use --device cpu");
  const int index = m[2].matched ? std::stoi(m[2]) : 0;
  if (index >= static_cast<int>(torch::cuda::device_count()))
    throw std::invalid_argument("device " + s + ": only " +
                                std::to_string(torch::cuda::device_count()) +
                                " CUDA device(s) present");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::ScalarType parse_compute_dtype(const std::string& name, const torch::Device& device) {
  const std::string s = name.empty() ? (device.is_cuda() ? "fp16" : "fp32") : name;
  if (s == "fp32") return torch::kFloat;
  if (s == "fp16") {
    if (device.is_cpu())
      throw std::invalid_argument(
          "--dtype fp16 is for CUDA devices; on the CPU use fp32 (or bf16)");
    return torch::kHalf;
  }
  if (s == "bf16") return torch::kBFloat16;
  throw std::invalid_argument("dtype must be fp32, fp16 or bf16, not '" + s + "'");
}

const char* compute_dtype_name(torch::ScalarType dtype) {
  return dtype == torch::kHalf ? "fp16" : dtype == torch::kBFloat16 ? "bf16" : "fp32";
}

int available_cpu_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

int configure_cpu_threads(int requested) {
  if (requested <= 0) {
    const char* env = std::getenv("OMP_NUM_THREADS");
    if (env && std::atoi(env) > 0)
      requested = std::atoi(env);
    else
      requested = available_cpu_cores();
  }
  if (at::get_num_threads() != requested) at::set_num_threads(requested);
  return at::get_num_threads();
}

}  // namespace sdgen
