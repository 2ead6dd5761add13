// libFuzzer target: SafetensorsFile::from_memory must reject malformed input with a
// SafetensorsError and never crash; for accepted input every tensor's bytes must be readable.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sdgen/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A private copy, so that ASan flags any read past the end of the input.
  std::vector<uint8_t> copy(data, data + size);
  std::shared_ptr<sdgen::SafetensorsFile> f;
  try {
    f = sdgen::SafetensorsFile::from_memory(copy.data(), copy.size(), "fuzz-input");
  } catch (const sdgen::SafetensorsError&) {
    return 0;
  }
  const uint8_t* begin = copy.data();
  const uint8_t* end = begin + copy.size();
  uint64_t sum = 0;
  uint64_t prev_end = 0;
  for (const sdgen::TensorInfo& t : f->tensors()) {
    // Invariants promised by validation.
    if (t.begin != prev_end || t.end < t.begin) std::abort();
    if (t.numel() * sdgen::dtype_size(t.dtype) != t.nbytes()) std::abort();
    if (f->find(t.name) == nullptr || f->find(t.name)->begin != t.begin) std::abort();
    prev_end = t.end;
    const uint8_t* p = f->data(t);
    if (t.nbytes() > 0 && (p < begin || p + t.nbytes() > end)) std::abort();
    for (uint64_t i = 0; i < t.nbytes(); ++i) sum += p[i];
  }
  if (!f->tensors().empty() && f->data(f->tensors().back()) + f->tensors().back().nbytes() != end) {
    std::abort();  // the buffer must be covered exactly
  }
  volatile uint64_t sink = sum;
  (void)sink;
  return 0;
}
