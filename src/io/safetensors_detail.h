// Helpers shared by the safetensors reader and writer (internal to src/io).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sdgen::safetensors_detail {

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

inline bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace sdgen::safetensors_detail
