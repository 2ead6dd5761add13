// The VAE decode and encode of large images in overlapping tiles, with the untiled result: the
// tiles use the whole image's GroupNorm statistics and enough context that every pixel they keep
// is computed as the untiled network computes it (float32 summation order aside), so there are
// no seams and nothing to blend. What is held whole is the latent-resolution part and each
// resolution level's input and output (for SD about 1/8 of the untiled decode's full-resolution
// working set), and the mid block's attention in chunks, so no N^2 scores; models/memory.h
// estimates both. The price is time: every norm layer's statistics take a pass over the tiles
// (decode 2-4x the untiled time on the tiny VAE, ~4-5x for SD's; encode 1-2x).
// src/pipeline/vae_tiling.cpp has the design and how it compares with diffusers,
// stable-diffusion.cpp and multidiffusion's Tiled VAE.
#pragma once
#include <cstdint>

#include <torch/torch.h>

#include "sdgen/models/memory.h"
#include "sdgen/models/vae.h"

namespace sdgen {

// Tile sizes in LATENT pixels. decode_tiled splits the latent into tiles of at most `tile` x
// `tile` (512 x 512 image pixels at the VAE factor 8); encode_tiled splits the image into the
// matching tiles of at most tile * f x tile * f image pixels. Neighbouring tiles share at least
// `overlap` pixels of each resolution level they run at (the latent's at the latent level, the
// image's at full resolution), and never less than twice the level's receptive field, which
// exactness needs (SD's VAE: 12 latent pixels at the latent level, 2 at full resolution). Each
// tile keeps the part up to the middle of what it shares; tiles are all one size, spread
// evenly, so that edge tiles are shifted inward rather than shrunk. Requires tile >= 1 and
// 0 <= overlap < tile.
struct VaeTiling {
  int tile = kVaeTile;            // 64
  int overlap = kVaeTileOverlap;  // 16
};

// Whether a latent of h x w is split into more than one tile (otherwise the tiled functions are
// the plain vae.decode / vae.encode).
bool vae_tiles_needed(int64_t h, int64_t w, const VaeTiling& t);

// vae.decode in tiles. z: [B, z_channels, h, w], the unscaled latent -> [B, 3, h*f, w*f] in
// [-1, 1], z's dtype and device, equal to vae.decode(z) up to float rounding (each image of the
// batch normalised on its own, as GroupNorm does). A latent of one tile is vae.decode(z) bit
// for bit. Inference only (no gradients). Throws std::invalid_argument for bad tile sizes or a
// z not [B, C, h, w].
torch::Tensor decode_tiled(AutoencoderKLImpl& vae, const torch::Tensor& z, const VaeTiling& t = {});

// vae.encode in tiles. image: [B, 3, H, W] in [-1, 1], H and W multiples of the VAE factor f ->
// mean / logvar / std [B, embed_dim, H/f, W/f] as vae.encode gives them, up to float rounding.
// A latent of one tile is vae.encode(image) bit for bit. Inference only. Throws
// std::invalid_argument for bad tile sizes or an image whose sides are not multiples of f.
LatentDistribution encode_tiled(AutoencoderKLImpl& vae, const torch::Tensor& image,
                                const VaeTiling& t = {});

}  // namespace sdgen
