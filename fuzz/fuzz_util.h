// Helpers of the libFuzzer targets: splitting one input into fields, and invariants that abort
// (which libFuzzer reports as a crash, with the input saved).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace sdgen::fuzz {

// A broken promise of the code under test: print it and abort.
#define SDGEN_FUZZ_CHECK(cond)                                                                \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

// Reads the input front to back: single bytes and '\xff'-separated strings.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | byte();
    return v;
  }
  // Up to the next 0xff byte (not included), or the rest.
  std::string field() {
    std::string s;
    while (p_ < end_ && *p_ != 0xff) s += static_cast<char>(*p_++);
    if (p_ < end_) ++p_;
    return s;
  }
  std::string rest() {
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(end_ - p_));
    p_ = end_;
    return s;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace sdgen::fuzz
