// Inpainting's pixel steps against what OpenCV and Pillow give (tests/data/inpaint, written by
// scripts/make-inpaint-fixtures.py with the libraries A1111 calls).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>

#include "sdgen/io/image_ops.h"
#include "sdgen/io/image_read.h"

namespace sdgen {
namespace {

std::string data(const std::string& name) {
  return std::string(SDGEN_TEST_DATA_DIR) + "/inpaint/" + name;
}

int max_diff(const Image8& a, const Image8& b) {
  EXPECT_EQ(a.pixels.size(), b.pixels.size());
  int m = 0;
  for (size_t i = 0; i < a.pixels.size() && i < b.pixels.size(); ++i)
    m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return m;
}

TEST(ImageOps, GaussianKernelSumsTo256AndIsSymmetric) {
  for (int sigma : {1, 2, 4, 9, 30}) {
    const int size = 2 * static_cast<int>(2.5 * sigma + 0.5) + 1;
    const auto k = gaussian_kernel_u8(size, sigma);
    ASSERT_EQ(static_cast<int>(k.size()), size);
    EXPECT_EQ(std::accumulate(k.begin(), k.end(), 0), 256) << sigma;
    for (int i = 0; i < size; ++i) EXPECT_EQ(k[i], k[size - 1 - i]);
    EXPECT_EQ(*std::max_element(k.begin(), k.end()), k[size / 2]) << "peaks in the middle";
  }
  // sigma 1, 7 taps: exp(-x^2/2) / sum at x = 3, 2, 1 is 0.0044, 0.0540, 0.2420 -> 1, 14, 62
  EXPECT_EQ(gaussian_kernel_u8(7, 1), (std::vector<int>{1, 14, 62, 102, 62, 14, 1}));
  // sigma 4: the rounding errors carried inwards (OpenCV's error diffusion), not each tap
  // rounded alone (which would give 1, 2, 3, 6, 8, 12, ...)
  const auto k4 = gaussian_kernel_u8(21, 4);
  EXPECT_EQ(std::vector<int>(k4.begin(), k4.begin() + 6), (std::vector<int>{1, 2, 4, 5, 9, 11}));
}

TEST(ImageOps, MaskBlurIsOpenCvsBitForBit) {
  const Image8 mask = read_mask(data("mask.png"));
  ASSERT_EQ(mask.channels, 1);
  EXPECT_EQ(max_diff(blur_mask(mask, 0), mask), 0);
  for (int sigma : {1, 2, 4, 9}) {
    const Image8 expected = read_mask(data("mask_blur" + std::to_string(sigma) + ".png"));
    EXPECT_EQ(max_diff(blur_mask(mask, sigma), expected), 0) << "sigma " << sigma;
  }
}

TEST(ImageOps, PasteBackIsPillowsOverlayBitForBit) {
  const Image8 init = read_image_rgb(data("init.png"));
  const Image8 decoded = read_image_rgb(data("decoded.png"));
  for (const std::string name : {"mask.png", "mask_blur4.png"}) {
    Image8 out = decoded;
    paste_back(out, init, read_mask(data(name)));
    EXPECT_EQ(max_diff(out, read_image_rgb(data("pasted_" + name))), 0) << name;
  }
  // a hard 0/255 mask: init where 0, the decoded pixel where 255
  const Image8 mask = read_mask(data("mask.png"));
  Image8 out = decoded;
  paste_back(out, init, mask);
  for (size_t i = 0; i < mask.pixels.size(); ++i) {
    if (mask.pixels[i] == 0) {
      EXPECT_EQ(out.pixels[i * 3], init.pixels[i * 3]);
    } else if (mask.pixels[i] >= 128) {
      EXPECT_EQ(out.pixels[i * 3], decoded.pixels[i * 3]);
    }
  }
}

TEST(ImageOps, PasteBackRejectsMismatchedSizes) {
  Image8 a{4, 4, 3, std::vector<uint8_t>(48)}, b{4, 3, 3, std::vector<uint8_t>(36)};
  Image8 m{4, 4, 1, std::vector<uint8_t>(16)};
  EXPECT_THROW(paste_back(a, b, m), std::invalid_argument);
}

}  // namespace
}  // namespace sdgen
