// Work counts of one forward pass, for benchmarks (achieved TFLOP/s) and capacity planning.
// Convention: 2 FLOPs per multiply-add of convolutions, linear layers and the two attention
// matmuls; normalisations, activations, softmax and additions are not counted (they are
// memory-bound and a few percent of the total).
#pragma once
#include <cstdint>

#include "sdgen/models/config.h"

namespace sdgen {

// UNet forward on a batch of `batch` latents of h x w with a context of `context_tokens`.
double unet_flops(const UNetConfig& c, int64_t batch, int64_t h, int64_t w,
                  int64_t context_tokens = 77);
// Text encoder forward on `batch` sequences of `tokens` tokens (all layers).
double text_encoder_flops(const ClipTextConfig& c, int64_t batch, int64_t tokens = 77);
// VAE decoder (post_quant_conv + decoder) on a batch of h x w latents.
double vae_decoder_flops(const VaeConfig& c, int64_t batch, int64_t h, int64_t w);

}  // namespace sdgen
