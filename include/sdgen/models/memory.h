// How much memory a forward pass needs, estimated from the configuration: the weights, and the
// activation peaks of the UNet step and the VAE decode at an image size. Used to refuse sizes
// that cannot fit before anything is loaded (an estimate, on the safe side where attention
// matrices dominate: plain attention stores [rows, heads, N, N] scores twice).
#pragma once
#include <cstdint>
#include <string>

#include "sdgen/models/config.h"

namespace sdgen {

struct MemoryEstimate {
  double weights = 0;    // bytes
  double unet = 0;       // activations of one UNet call
  double vae = 0;        // activations of one VAE decode
  double attention = 0;  // the largest single attention score tensor pair among them
  double total() const { return weights + (unet > vae ? unet : vae); }
};

// The estimate for images of `width` x `height` with `unet_rows` rows per UNet call (CFG: 2 per
// image), activations of `element_bytes` each, weights of `weight_bytes` in all, and attention
// that stores its N x N scores (`quadratic_attention`: libtorch's plain math; SDPA's flash and
// memory-efficient kernels do not).
MemoryEstimate estimate_memory(const ModelConfig& c, int width, int height, int64_t unet_rows,
                               double element_bytes, double weight_bytes, bool quadratic_attention);

}  // namespace sdgen
