// Reading init images and masks (img2img, inpainting): PNG and JPEG files through stb_image,
// turned into what A1111 makes of an uploaded image. The webui hands uploads over as RGBA
// (gradio `image_mode="RGBA"`), so every kind of transparency (an alpha channel, a palette's
// or a colour key's tRNS) counts:
//  - an image is `images.flatten(img, "#ffffff")`: alpha composited over white with Pillow's
//    integer arithmetic, then RGB;
//  - a mask is `processing.create_binary_mask(img, round=True)`: the alpha channel thresholded
//    (alpha > 128 -> 255, else 0) when some alpha is below 255, else Pillow's `convert('L')`.
// 16-bit channels keep their high byte; gray is replicated. Every failure is a
// std::runtime_error whose message starts with the file's name (or the label given), says what
// is wrong and what to do.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sdgen {

// 8-bit pixels, row-major, channels interleaved: height * width * channels bytes.
struct Image8 {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;
};

// Checked against the file's header before anything is decoded, so that a hostile header
// never makes the decoder allocate.
struct ImageLimits {
  int max_side = 16384;              // pixels per side
  int64_t max_pixels = 256'000'000;  // width * height (256 megapixels)
};
// Files are read whole into memory, up to this size.
constexpr size_t kMaxImageFileBytes = size_t(1) << 30;

// 3 channels (RGB), alpha composited over white.
Image8 read_image_rgb(const std::string& path, const ImageLimits& limits = {});
// 1 channel, A1111's binary mask rule (see above).
Image8 read_mask(const std::string& path, const ImageLimits& limits = {});

// The same for a file already in memory; `label` stands for the file in error messages.
Image8 decode_image_rgb(const uint8_t* data, size_t size, const std::string& label,
                        const ImageLimits& limits = {});
Image8 decode_mask(const uint8_t* data, size_t size, const std::string& label,
                   const ImageLimits& limits = {});

}  // namespace sdgen
