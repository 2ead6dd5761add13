// Small file-system helpers (POSIX and std::filesystem): atomic writes, whole-file reads,
// folders, names.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sdgen {

// Creates every missing folder above `path` (like `mkdir -p "$(dirname path)"`, mode 0777
// less the umask). Nothing to do for a bare file name. Throws std::runtime_error naming the
// folder that could not be created (or that exists but is not a folder).
void make_parent_dirs(const std::string& path);

// The name of a file without its last extension ("models/v1-5.safetensors" -> "v1-5"), or of
// a folder ("models/tiny-sd1/" -> "tiny-sd1"): what the webuis show as a model's name.
std::string file_stem(const std::string& path);

// Writes `data` to `path` atomically: a temporary file in the same folder (temporaries.h: named
// for its owner, locked while written), fsync, then rename. When `overwrite` is false and `path`
// exists, throws FileExistsError and leaves the existing file untouched (also when the file appears
// concurrently). On any failure the temporary file is removed and std::runtime_error names the
// path. Missing parent folders are not created here (make_parent_dirs).
class FileExistsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
void write_file_atomic(const std::string& path, const void* data, size_t size, bool overwrite);
// The same for a file made of several pieces written one after the other (no copy into one
// buffer: a multi-gigabyte checkpoint is written straight from its tensors).
void write_file_atomic(const std::string& path,
                       const std::vector<std::pair<const void*, size_t>>& pieces, bool overwrite);

std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace sdgen
