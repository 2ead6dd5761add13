// The pixel operations of inpainting as A1111 does them, on 8-bit images (io/image_read.h):
// the mask blur (OpenCV's GaussianBlur as processing.py calls it) and the paste-back of the
// unmasked pixels (processing.py's overlay image and apply_overlay, Pillow's integer
// arithmetic).
#pragma once
#include <cstdint>
#include <vector>

#include "sdgen/io/image_read.h"

namespace sdgen {

// OpenCV 4's 8-bit Gaussian kernel of `size` (odd) taps for `sigma`, as its fixed-point
// GaussianBlur builds it (error-diffused rounding): weights in 1/256 that sum to 256.
std::vector<int> gaussian_kernel_u8(int size, double sigma);

// A1111's mask blur of a 1-channel mask: cv2.GaussianBlur(mask, (k, 1), sigma) then
// (1, k), k = 2 * int(2.5 * sigma + 0.5) + 1, OpenCV's default border (reflect-101) and its
// fixed-point rounding. sigma 0 returns the mask unchanged.
Image8 blur_mask(const Image8& mask, int sigma);

// The inpainting result as A1111 writes it: the decoded image `decoded` (RGB) with the init
// image `init` (RGB, same size) laid over it where the mask (1 channel, same size; white =
// repainted) is dark: the overlay's alpha is 255 - min(2 * mask, 255), premultiplied and back
// as Pillow's RGBa conversions, then Pillow's alpha_composite. Changes `decoded` in place.
void paste_back(Image8& decoded, const Image8& init, const Image8& mask);

}  // namespace sdgen
