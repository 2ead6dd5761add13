#include "sdgen/pipeline/runtime.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <regex>
#include <stdexcept>
#include <thread>

#include <ATen/Parallel.h>

#ifdef SDGEN_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

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

namespace {

// A number from a one-line file ("max" and unreadable files: 0).
double read_number(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max") return 0;
  return std::strtod(s.c_str(), nullptr);
}

}  // namespace

double available_memory_bytes(const torch::Device& device) {
  if (device.is_cuda()) {
#ifdef SDGEN_TORCH_CUDA
    size_t free = 0, total = 0;
    c10::cuda::CUDAGuard guard(device);
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) return static_cast<double>(free);
#endif
    return 0;
  }
  double available = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit)
    if (key == "MemAvailable:") available = kb * 1024;
  // a container's limit (cgroup v2, else v1) minus what the group already uses
  double limit = read_number("/sys/fs/cgroup/memory.max");
  double used = read_number("/sys/fs/cgroup/memory.current");
  if (limit <= 0) {
    limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  if (limit > 0 && limit < 1e18 && (available <= 0 || limit - used < available))
    available = std::max(0.0, limit - used);
  return available;
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

int configure_cpu_threads(int requested, const std::function<void(const std::string&)>& warn) {
  const int cores = available_cpu_cores();
  std::string source = "--threads " + std::to_string(requested);
  if (requested <= 0) {
    // the user's OMP_NUM_THREADS stands, within reason: libgomp crashes creating tens of
    // thousands of threads, and more threads than cores only slow OpenMP down
    const char* env = std::getenv("OMP_NUM_THREADS");
    const long n = env ? std::strtol(env, nullptr, 10) : 0;
    requested = n > 0 ? static_cast<int>(std::min<long>(n, 1 << 20)) : cores;
    source = "OMP_NUM_THREADS=" + std::string(env ? env : "");
  }
  if (requested > cores) {
    if (warn)
      warn(source + " is more than the " + std::to_string(cores) +
           " cores this process may run on; using " + std::to_string(cores));
    requested = cores;
  }
  if (at::get_num_threads() != requested) at::set_num_threads(requested);
  return at::get_num_threads();
}

}  // namespace sdgen
