// The bridge between safetensors files and libtorch tensors.
#pragma once
#include <map>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "sdgen/io/safetensors.h"

namespace sdgen {

// The torch dtype of a safetensors dtype; throws SafetensorsError (naming the file and tensor)
// for dtypes libtorch lacks (U16, U32, U64, F8 on older libtorch).
torch::ScalarType torch_dtype(DType d, const std::string& file, const std::string& tensor);

// Copies the stored tensor `info` of `file` into `dst` (of the same shape; any dtype and
// device), converting as Tensor::copy_ does. The read-only mapping is read through a view
// that never leaves this function, so nothing can write into it.
void copy_stored(const SafetensorsFile& file, const TensorInfo& info, torch::Tensor& dst);

// Every tensor of a file, as owned CPU tensors in their stored dtype.
std::map<std::string, torch::Tensor> load_tensors(const std::string& path);

// Writes CPU copies of `tensors` (any device, made contiguous) as a safetensors file.
void save_tensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace sdgen
