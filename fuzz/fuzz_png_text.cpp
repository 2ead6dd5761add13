// libFuzzer target: reading a PNG's text chunks (tEXt, zTXt, iTXt: how sdgen and the webuis
// store generation parameters). Malformed files must be std::runtime_error; never a crash or a
// read past the input.
#include <vector>

#include "fuzz_util.h"
#include "sdgen/io/png.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> png(data, data + size);  // a private copy, for ASan's bounds
  try {
    const auto chunks = sdgen::png_text_chunks(png);
    // (text is bounded by the file: a zTXt chunk inflates to at most the limit png.cpp sets)
    for (const auto& [key, value] : chunks) SDGEN_FUZZ_CHECK(value.size() < (size_t(1) << 31));
  } catch (const std::runtime_error& e) {
    SDGEN_FUZZ_CHECK(e.what()[0] != '\0');
  }
  return 0;
}
