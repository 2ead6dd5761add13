// Models with random weights for benchmarks and tests (a tool over the library): no checkpoint
// needed, activations O(1) in fp16.
#pragma once
#include <cstdint>

#include <torch/torch.h>

#include "sdgen/loading/model_loader.h"
#include "sdgen/models/config.h"

namespace sdgen {

// Fills every parameter of `module` with cheap random values that keep activations O(1) in
// fp16: weights of rank >= 2 normal with std 1/sqrt(fan_in), biases 0, norm scales 1 (rank-1
// parameters named "weight"), everything on the parameter's own device.
void init_random_weights(torch::nn::Module& module, uint64_t seed);

// The three networks of `config` (its family's text encoder) with random weights
// (init_random_weights), in eval mode, on `device` in `dtype`, with the family's model
// sampling. Moved to the device in float32, re-initialised there, then cast.
LoadedModel random_model(const ModelConfig& config, torch::Device device, torch::ScalarType dtype,
                         uint64_t seed = 0);

// Converts the 4-d parameters (convolution weights) of `module` to channels_last in place, so
// that convolutions on channels_last inputs run NHWC kernels (cuDNN on CUDA).
void to_channels_last(torch::nn::Module& module);

}  // namespace sdgen
