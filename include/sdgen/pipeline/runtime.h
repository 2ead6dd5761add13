// Where and how the networks run: the device, the compute dtype and the CPU threads.
#pragma once
#include <functional>
#include <string>

#include <torch/torch.h>

namespace sdgen {

// "cpu", "cuda" or "cuda:N" (empty: cuda when a GPU is present, else cpu). Throws
// std::invalid_argument for another name, a CUDA device this build or machine lacks, or an
// index past the device count.
torch::Device parse_device(const std::string& name);
// "fp32", "fp16" or "bf16" (empty: fp16 on CUDA, fp32 on the CPU). Throws
// std::invalid_argument for another name and for fp16 on the CPU.
torch::ScalarType parse_compute_dtype(const std::string& name, const torch::Device& device);
// "fp32", "fp16" or "bf16".
const char* compute_dtype_name(torch::ScalarType dtype);

// The memory free for this process on `device`, in bytes: on the CPU the smaller of the
// system's available memory (/proc/meminfo) and what its cgroup limit leaves; on CUDA the
// device's free memory. 0 when it cannot be told.
double available_memory_bytes(const torch::Device& device);

// The CPU cores this process may run on (its affinity mask), at least 1.
int available_cpu_cores();

// Sets libtorch's intra-op threads: `requested` when > 0; otherwise OMP_NUM_THREADS when the
// environment sets it (the user's choice stands), else every available core; either capped at
// the available cores, with a warning (more threads than cores only slow OpenMP down, and
// libgomp crashes creating tens of thousands). Debian's libtorch 1.13 with OpenBLAS (OpenMP)
// starts with a pool of one thread, which halves CPU speed on a 2-core machine. Returns the
// thread count now in effect.
int configure_cpu_threads(int requested = 0,
                          const std::function<void(const std::string&)>& warn = {});

}  // namespace sdgen
