// libFuzzer target: init images and masks (PNG, JPEG) decoded from memory, then resized. The
// input is the file itself; which reader, filter and output size are used follows from a hash
// of it, so that the seeds stay plain image files. Malformed files must be the reader's
// std::runtime_error naming the file; accepted files keep their sizes (at most the limits
// given, pixel buffers of exactly width * height * channels bytes) through the resize.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "sdgen/io/image_read.h"
#include "sdgen/io/resample.h"

namespace {

// Small limits keep every decode fast and its memory bounded (the real ones: image_read.h).
const sdgen::ImageLimits kLimits{512, 512 * 512};

uint32_t fnv1a(const uint8_t* data, size_t size) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 16777619u;
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> file(data, data + size);  // a private copy, for ASan's bounds
  const uint32_t h = fnv1a(data, size);
  const bool mask = h & 1;
  const auto filter = static_cast<sdgen::ResampleFilter>((h >> 1) % 5);
  const int out_w = 1 + int((h >> 4) % 40), out_h = 1 + int((h >> 10) % 40);
  sdgen::Image8 im;
  try {
    im = mask ? sdgen::decode_mask(file.data(), file.size(), "fuzz.img", kLimits)
              : sdgen::decode_image_rgb(file.data(), file.size(), "fuzz.img", kLimits);
  } catch (const std::runtime_error& e) {
    SDGEN_FUZZ_CHECK(std::string(e.what()).rfind("fuzz.img: ", 0) == 0);
    SDGEN_FUZZ_CHECK(std::string(e.what()).size() > 10);
    return 0;
  }
  SDGEN_FUZZ_CHECK(im.channels == (mask ? 1 : 3));
  SDGEN_FUZZ_CHECK(im.width >= 1 && im.width <= kLimits.max_side);
  SDGEN_FUZZ_CHECK(im.height >= 1 && im.height <= kLimits.max_side);
  SDGEN_FUZZ_CHECK(int64_t(im.width) * im.height <= kLimits.max_pixels);
  SDGEN_FUZZ_CHECK(im.pixels.size() == size_t(im.width) * size_t(im.height) * size_t(im.channels));
  const sdgen::Image8 small = sdgen::resize(im, out_w, out_h, filter);
  SDGEN_FUZZ_CHECK(small.width == out_w && small.height == out_h);
  SDGEN_FUZZ_CHECK(small.channels == im.channels);
  SDGEN_FUZZ_CHECK(small.pixels.size() == size_t(out_w) * size_t(out_h) * size_t(im.channels));
  // a constant image stays constant under every filter (the weights sum to one)
  bool constant = true;
  for (uint8_t p : im.pixels) constant = constant && p == im.pixels[0];
  if (constant) {
    for (uint8_t p : small.pixels) SDGEN_FUZZ_CHECK(p == im.pixels[0]);
  }
  return 0;
}
