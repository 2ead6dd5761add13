#include "sdgen/pipeline/threads.h"

#include <sched.h>

#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>

namespace sdgen {

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
