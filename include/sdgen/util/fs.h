// Small file-system helpers (POSIX). write_file_atomic and read_file_bytes are declared in
// sdgen/io/png.h and implemented in src/util/fs.cpp next to these.
#pragma once
#include <string>

namespace sdgen {

// Creates every missing folder above `path` (like `mkdir -p "$(dirname path)"`, mode 0777
// less the umask). Nothing to do for a bare file name. Throws std::runtime_error naming the
// folder that could not be created (or that exists but is not a folder).
void make_parent_dirs(const std::string& path);

// The folder part of `path` ("." for a bare name, "/" for a file in the root) and the last
// component, split at the last '/'.
std::string path_dirname(const std::string& path);
std::string path_basename(const std::string& path);

}  // namespace sdgen
