// Strict loading: every parameter and buffer of a module found by name (through a key map) in
// a tensor source, with shape checks; what is missing, unexpected or mis-shaped is collected
// in a LoadReport and reported together.
#pragma once
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sdgen/loading/key_map.h"
#include "sdgen/loading/load_report.h"
#include "sdgen/loading/tensor_source.h"

namespace sdgen {

// Fills every parameter and buffer of `module` from the source key map.to_source(name),
// converted once, straight from the mapping, to `dtype` (floating tensors; integer buffers keep
// theirs) on `device`. Source keys that `map` covers and the module lacks are unexpected unless
// they end with one of `ignored_suffixes` (known keys that inference does not use); `consumed`
// collects the keys this call accounted for.
void load_module(torch::nn::Module& module, const TensorSource& source, const KeyMap& map,
                 torch::Device device, torch::ScalarType dtype, LoadReport& report,
                 std::set<std::string>* consumed = nullptr,
                 const std::vector<std::string>& ignored_suffixes = {});

// An owned copy of tensor `key` (which must exist) in `dtype` on `device`.
torch::Tensor read_tensor(const TensorSource& source, const std::string& key, torch::Device device,
                          torch::ScalarType dtype);

}  // namespace sdgen
