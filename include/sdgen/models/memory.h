// How much memory a forward pass needs, estimated from the configuration: the weights, and the
// activation peaks of the UNet step and the VAE decode / encode at an image size, untiled and
// tiled (pipeline/vae_tiling.h). Used to refuse sizes that cannot fit before anything is loaded
// and to decide when the VAE tiles (an estimate, on the safe side where attention matrices
// dominate: plain attention stores [rows, heads, N, N] scores twice).
#pragma once
#include <cstdint>
#include <string>

#include "sdgen/models/config.h"

namespace sdgen {

// The default tile of pipeline/vae_tiling.h's VaeTiling, in latent pixels (512 image pixels at
// the VAE factor 8), and its overlap.
constexpr int kVaeTile = 64;
constexpr int kVaeTileOverlap = 16;
// The most bytes of attention scores the tiled VAE holds at once: its mid block attends over the
// whole latent in chunks of queries of this size (pipeline/vae_tiling.cpp).
constexpr double kVaeAttentionChunkBytes = 64.0 * (1 << 20);

struct MemoryEstimate {
  double weights = 0;    // bytes
  double unet = 0;       // activations of one UNet call
  double vae = 0;        // activations of one VAE decode
  double attention = 0;  // the largest single attention score tensor pair among them
  double vae_tiled = 0;  // activations of one VAE decode in the default tiles (kVaeTile)
  double total() const { return weights + (unet > vae ? unet : vae); }
  // What the run needs when the VAE decode tiles (vae_tiling_needed).
  double total_tiled() const { return weights + (unet > vae_tiled ? unet : vae_tiled); }
};

// The estimate for images of `width` x `height` with `unet_rows` rows per UNet call (CFG: 2 per
// image), activations of `element_bytes` each, weights of `weight_bytes` in all, and attention
// that stores its N x N scores (`quadratic_attention`: libtorch's plain math; SDPA's flash and
// memory-efficient kernels do not).
MemoryEstimate estimate_memory(const ModelConfig& c, int width, int height, int64_t unet_rows,
                               double element_bytes, double weight_bytes, bool quadratic_attention);

// Whether the VAE decode should tile: the weights and its untiled activations exceed `available`
// bytes (the UNet's activations are gone by then). Sizes where total() does not fit but
// total_tiled() does render with a tiled decode.
bool vae_tiling_needed(const MemoryEstimate& m, double available);

enum class VaePass { decode, encode };

// The activation peak in bytes of one VAE decode or encode of one width x height image with
// activations of `element_bytes`: untiled (tile <= 0, or an image of one tile), or tiled by
// pipeline/vae_tiling.h in tiles of `tile` latent pixels. Tiled, the peak is the larger of the
// whole-latent mid block (its attention in chunks of kVaeAttentionChunkBytes) and, for each
// resolution level, the level's input and output held whole plus one tile's working set: for
// SD's VAE about 1/8 of the untiled full-resolution working set and no N^2 attention. The
// overlap changes the time, not the peak.
double estimate_vae_memory(const VaeConfig& v, VaePass pass, int width, int height,
                           double element_bytes, bool quadratic_attention, int tile = 0);

}  // namespace sdgen
