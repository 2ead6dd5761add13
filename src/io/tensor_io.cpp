#include "sdgen/io/tensor_io.h"

namespace sdgen {

torch::ScalarType torch_dtype(DType d, const std::string& file, const std::string& tensor) {
  switch (d) {
    case DType::BOOL:
      return torch::kBool;
    case DType::U8:
      return torch::kUInt8;
    case DType::I8:
      return torch::kInt8;
    case DType::I16:
      return torch::kInt16;
    case DType::I32:
      return torch::kInt32;
    case DType::I64:
      return torch::kInt64;
    case DType::F16:
      return torch::kFloat16;
    case DType::BF16:
      return torch::kBFloat16;
    case DType::F32:
      return torch::kFloat32;
    case DType::F64:
      return torch::kFloat64;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
    case DType::F8_E4M3:
      return torch::kFloat8_e4m3fn;
    case DType::F8_E5M2:
      return torch::kFloat8_e5m2;
#endif
    default:
      break;
  }
  throw SafetensorsError(file + ": tensor '" + tensor + "' has dtype " + dtype_name(d) +
                         ", which this build of libtorch cannot represent; convert the file "
                         "to F16, BF16 or F32");
}

void copy_stored(const SafetensorsFile& file, const TensorInfo& info, torch::Tensor& dst) {
  const auto dtype = torch_dtype(info.dtype, file.path(), info.name);
  // from_blob wants a mutable pointer; the view is only ever the source of this copy.
  void* data = const_cast<uint8_t*>(file.data(info));
  const auto view = torch::from_blob(data, info.shape, torch::TensorOptions().dtype(dtype));
  dst.copy_(view);
}

std::map<std::string, torch::Tensor> load_tensors(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& info : file->tensors()) {
    auto t = torch::empty(
        info.shape, torch::TensorOptions().dtype(torch_dtype(info.dtype, file->path(), info.name)));
    copy_stored(*file, info, t);
    out[info.name] = t;
  }
  return out;
}

namespace {

DType to_dtype(torch::ScalarType t, const std::string& name) {
  switch (t) {
    case torch::kBool:
      return DType::BOOL;
    case torch::kUInt8:
      return DType::U8;
    case torch::kInt8:
      return DType::I8;
    case torch::kInt16:
      return DType::I16;
    case torch::kInt32:
      return DType::I32;
    case torch::kInt64:
      return DType::I64;
    case torch::kFloat16:
      return DType::F16;
    case torch::kBFloat16:
      return DType::BF16;
    case torch::kFloat32:
      return DType::F32;
    case torch::kFloat64:
      return DType::F64;
    default:
      break;
  }
  throw std::invalid_argument("tensor '" + name + "' has a dtype safetensors cannot store: " +
                              std::string(c10::toString(t)));
}

}  // namespace

void save_tensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;
  std::vector<TensorBlob> blobs;
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.detach().to(torch::kCPU).contiguous());
    const auto& c = keep.back();
    blobs.push_back(TensorBlob{name, to_dtype(c.scalar_type(), name), c.sizes().vec(), c.data_ptr(),
                               static_cast<size_t>(c.nbytes())});
  }
  write_safetensors(path, blobs, metadata);
}

}  // namespace sdgen
