// safetensors container: a torch-free, validating, mmap-backed reader and a writer.
// Rules follow the reference implementation (huggingface/safetensors, src/tensor.rs).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdgen {

enum class DType {
  BOOL,
  U8,
  I8,
  I16,
  U16,
  I32,
  U32,
  I64,
  U64,
  F16,
  BF16,
  F32,
  F64,
  F8_E4M3,
  F8_E5M2
};

// "F16" -> DType::F16 ...; returns false for unknown names.
bool parse_dtype(const std::string& name, DType* out);
const char* dtype_name(DType d);
size_t dtype_size(DType d);  // bytes per element

// Any malformed file: the message names the file and the rule broken.
class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets relative to the start of the byte buffer
  uint64_t end = 0;
  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  // mmap()s `path` read-only and validates the header. Throws SafetensorsError.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // Validates an in-memory image of a file (not copied: `data` must outlive the object).
  // `label` stands for the file name in error messages.
  static std::shared_ptr<SafetensorsFile> from_memory(const uint8_t* data, size_t size,
                                                      const std::string& label);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // In header order of data offsets (ascending begin).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Pointer to the first byte of the tensor's data inside the mapping.
  const uint8_t* data(const TensorInfo& t) const { return buffer_ + t.begin; }

 private:
  SafetensorsFile() = default;
  void parse(const uint8_t* data, size_t size);
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* buffer_ = nullptr;  // start of the byte buffer (after the header)
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: raw little-endian bytes of `dtype`, row-major.
struct TensorBlob {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Writes a valid file (header padded with spaces to a multiple of 8, tensors ordered by
// descending element size then name so each is aligned), through a temporary file and a rename.
// Throws std::invalid_argument for bad input (a blob whose nbytes != numel * dtype size, a
// duplicate or reserved name, a negative dimension, a name or metadata string that is not
// UTF-8) and std::system_error for I/O failures; the temporary file is removed on failure.
void write_safetensors(const std::string& path, const std::vector<TensorBlob>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The largest header the reader accepts (as the reference implementation).
constexpr uint64_t kSafetensorsMaxHeaderSize = 100000000;

// Torch-free scalar conversions between float and the 16-bit float formats.
// half/bf16 -> float are exact (NaN payloads kept). float -> half/bf16 round to nearest, ties to
// even; overflow gives +-inf, tiny values go to half subnormals or +-0, NaN stays NaN (quiet).
float half_to_float(uint16_t h);
float bf16_to_float(uint16_t b);
uint16_t float_to_half(float f);
uint16_t float_to_bf16(float f);

}  // namespace sdgen
