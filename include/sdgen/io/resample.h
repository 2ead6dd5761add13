// Image resizing bit for bit as Pillow 9.4 `Image.resize` does it for 8-bit images
// (libImaging/Resample.c): separable convolution with fixed-point weights (22 fractional
// bits), the horizontal pass first and only when the width changes, into 8 bits, then the
// vertical pass only when the height changes. A1111 resizes init images with LANCZOS ("Just
// resize") and the latent mask with BICUBIC.
#pragma once
#include "sdgen/io/image_read.h"  // Image8

namespace sdgen {

// Pillow's filters of the same names (Image.BOX ... Image.LANCZOS). NEAREST is a different
// code path in Pillow and is not offered.
enum class ResampleFilter {
  kBox,       // support 0.5
  kBilinear,  // triangle, support 1
  kHamming,   // Hamming-windowed sinc, support 1
  kBicubic,   // Keys cubic with a = -0.5, support 2
  kLanczos,   // sinc(x) sinc(x / 3), support 3
};

// `in` resized to out_width x out_height. Channels are filtered independently, which is
// Pillow's result for L, RGB, CMYK and the premultiplied RGBa / La modes (Pillow premultiplies
// RGBA and LA before resizing; do the same before calling this for such images). The same size
// returns a copy. Throws std::invalid_argument for a non-positive size or an `in` whose pixel
// buffer does not match its dimensions.
Image8 resize(const Image8& in, int out_width, int out_height, ResampleFilter filter);

}  // namespace sdgen
