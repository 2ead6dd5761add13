// CPU threads of libtorch's intra-op pool (OpenMP on Debian's libtorch).
#pragma once

namespace sdgen {

// The CPU cores this process may run on (its affinity mask), at least 1.
int available_cpu_cores();

// Sets libtorch's intra-op threads: `requested` when > 0; otherwise OMP_NUM_THREADS when the
// environment sets it (the user's choice stands), else every available core. Debian's
// libtorch 1.13 with OpenBLAS (OpenMP) starts with a pool of one thread, which halves CPU
// speed on a 2-core machine. Returns the thread count now in effect.
int configure_cpu_threads(int requested = 0);

}  // namespace sdgen
