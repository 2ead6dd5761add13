// Model hashes as the webuis show them: the first 10 hex digits of the file's sha256, cached by
// path, size and modification time so that a multi-gigabyte checkpoint is hashed once.
#pragma once
#include <string>

namespace sdgen {

// Full sha256 (64 hex digits). Cache: $XDG_CACHE_HOME/sdgen/hashes.json (else
// ~/.cache/sdgen/hashes.json); a cache that cannot be read or written is silently bypassed.
std::string cached_file_sha256(const std::string& path);
inline std::string model_hash(const std::string& path) {
  return cached_file_sha256(path).substr(0, 10);
}

}  // namespace sdgen
