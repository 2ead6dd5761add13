#include "sdgen/io/image_ops.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace sdgen {
namespace {

// OpenCV's BORDER_REFLECT_101 index (gfedcb|abcdefgh|gfedcba), for any distance outside.
int reflect101(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

void check_same_size(const Image8& a, const Image8& b, const char* what) {
  if (a.width != b.width || a.height != b.height)
    throw std::invalid_argument(std::string("paste_back: ") + what + " is " +
                                std::to_string(b.width) + "x" + std::to_string(b.height) +
                                ", the image " + std::to_string(a.width) + "x" +
                                std::to_string(a.height));
}

}  // namespace

std::vector<int> gaussian_kernel_u8(int size, double sigma) {
  // getGaussianKernelBitExact (imgproc/src/smooth.dispatch.cpp): exp(-x^2 / (2 sigma^2)) at
  // x = i - (n - 1) / 2, normalised to sum 1; then getGaussianKernelFixedPoint_ED: to 8
  // fractional bits from the outermost tap inwards, each rounding error carried into the next
  // tap, the middle tap taking what makes the sum exactly 256.
  if (size < 1 || size % 2 == 0)
    throw std::invalid_argument("gaussian_kernel_u8: size must be odd and positive");
  const double s = sigma > 0 ? sigma : size * 0.15 + 0.35;
  const int half = size / 2;
  std::vector<double> values(size);
  double sum = 0;
  for (int i = 0; i < size; ++i) {
    const double x = i - half;
    values[i] = std::exp(-x * x / (2 * s * s));
    sum += values[i];
  }
  std::vector<int> k(size);
  double carried = 0;
  int outer = 0;
  for (int i = 0; i < half; ++i) {
    const double adjusted = values[i] / sum * 256 + carried;
    const int v = static_cast<int>(std::nearbyint(adjusted));
    carried = adjusted - v;
    k[i] = k[size - 1 - i] = v;
    outer += v;
  }
  k[half] = 256 - 2 * outer;
  return k;
}

Image8 blur_mask(const Image8& mask, int sigma) {
  if (mask.channels != 1) throw std::invalid_argument("blur_mask: the mask must have 1 channel");
  if (sigma <= 0) return mask;
  const int size = 2 * static_cast<int>(2.5 * sigma + 0.5) + 1;
  const auto k = gaussian_kernel_u8(size, sigma);
  const int w = mask.width, h = mask.height, r = size / 2;
  // one axis at a time, each a whole cv2.GaussianBlur call rounded to 8 bits:
  // (sum k_j p_j + 128) >> 8
  Image8 across = mask;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      int64_t acc = 0;
      for (int j = 0; j < size; ++j)
        acc += int64_t{k[j]} * mask.pixels[size_t(y) * w + reflect101(x + j - r, w)];
      across.pixels[size_t(y) * w + x] =
          static_cast<uint8_t>(std::min<int64_t>(255, (acc + 128) >> 8));
    }
  Image8 out = across;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      int64_t acc = 0;
      for (int j = 0; j < size; ++j)
        acc += int64_t{k[j]} * across.pixels[size_t(reflect101(y + j - r, h)) * w + x];
      out.pixels[size_t(y) * w + x] =
          static_cast<uint8_t>(std::min<int64_t>(255, (acc + 128) >> 8));
    }
  return out;
}

void paste_back(Image8& decoded, const Image8& init, const Image8& mask) {
  check_same_size(decoded, init, "the init image");
  check_same_size(decoded, mask, "the mask");
  if (decoded.channels != 3 || init.channels != 3 || mask.channels != 1)
    throw std::invalid_argument("paste_back: needs RGB images and a 1-channel mask");
  const size_t n = size_t(decoded.width) * decoded.height;
  for (size_t i = 0; i < n; ++i) {
    // mask_for_overlay = clip(2 * mask); the overlay is the init image pasted into an empty
    // RGBa image through invert(mask_for_overlay), then converted to RGBA
    const unsigned m2 = std::min(2u * mask.pixels[i], 255u);
    const unsigned a = 255 - m2;
    if (a == 0) continue;  // alpha_composite keeps the destination
    uint8_t* dst = &decoded.pixels[i * 3];
    const uint8_t* src = &init.pixels[i * 3];
    for (int c = 0; c < 3; ++c) {
      // Paste.c BLEND onto zeros: DIV255(in * a); Convert.c rgbA2rgba: CLIP8(255 * c / a)
      unsigned premul = src[c] * a + 128;
      premul = ((premul >> 8) + premul) >> 8;
      const unsigned color = a == 255 ? src[c] : std::min(255u, 255 * premul / a);
      // AlphaComposite.c over an opaque destination, 7 bits of extra precision
      const unsigned outa255 = a * 255 + 255 * (255 - a);
      const unsigned coef1 = a * 255 * 255 * (1u << 7) / outa255;
      const unsigned coef2 = 255 * (1u << 7) - coef1;
      unsigned t = color * coef1 + dst[c] * coef2 + (0x80u << 7);
      t = ((t >> 8) + t) >> 8;
      dst[c] = static_cast<uint8_t>(t >> 7);
    }
  }
}

}  // namespace sdgen
