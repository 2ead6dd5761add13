// sdgen's temporary files: write_file_atomic writes every output to a temporary in the target's
// folder, locked while it is written, and renames it. The name says whose it is
// (".<name>.sdgen-tmp.<boot id>.<PID namespace>.<pid>.<random>"), so that a later run can
// remove the temporaries of a killed run without ever touching a file that is not sdgen's or
// one that another live process (on another host or in another container sharing the folder)
// is still writing.
#pragma once
#include <cstdint>
#include <string>

namespace sdgen {

struct TemporaryOwner {
  std::string boot_id;         // 12 hex digits of /proc/sys/kernel/random/boot_id
  uint64_t pid_namespace = 0;  // the inode of /proc/self/ns/pid
  long pid = 0;
};

// This process, as its temporaries name it.
const TemporaryOwner& this_process();
// A fresh temporary path for `base` (a file name) in `dir`.
std::string temporary_name(const std::string& dir, const std::string& base);
// Whether `file_name` (no folder) is one of sdgen's temporaries, and whose (`owner` may be
// null).
bool parse_temporary_name(const std::string& file_name, TemporaryOwner* owner);

// Removes the temporaries in `dir` whose writer is provably gone: the same kernel boot and PID
// namespace as this process, its pid no longer running, and no lock held on the file. Those
// of other hosts or containers, of live processes and of this one are kept (`kept` counts
// them). Returns how many were removed.
int remove_stale_temporaries(const std::string& dir, int* kept = nullptr);

}  // namespace sdgen
