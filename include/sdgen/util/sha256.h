// SHA-256 (FIPS 180-4), for model hashes as the webuis show them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sdgen {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex_digest();  // 64 lower-case hex digits; the object is finished afterwards
 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t size);
// Streams the file (does not read it into memory at once). Throws std::runtime_error.
std::string sha256_file_hex(const std::string& path);

}  // namespace sdgen
