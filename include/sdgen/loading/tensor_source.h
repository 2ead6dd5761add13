// Where a model's tensors come from: one safetensors file, several files (each under a key
// prefix, e.g. a sharded checkpoint or the parts of a diffusers folder), or a folder of them.
// Only headers are read here; data stays in the read-only mappings until load_module copies
// it out. Torch-free.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sdgen/io/safetensors.h"

namespace sdgen {

class TensorSource {
 public:
  TensorSource() = default;  // empty: no files, no keys
  // One file; its keys as stored.
  static TensorSource open_file(const std::string& path);
  // Several files, the keys of each put under its prefix ("" for none). A key found twice is
  // an error naming both files. `label` names the whole in messages.
  static TensorSource open_files(const std::vector<std::pair<std::string, std::string>>& prefixed,
                                 const std::string& label);
  // Every *.safetensors file below `dir`, its keys under the folder path relative to `dir`
  // with '/' read as '.' ("unet/x.safetensors" key "k" -> "unet.k"; files directly in `dir`
  // keep their keys).
  static TensorSource open_folder(const std::string& dir);

  // The file or folder the user named, for messages.
  const std::string& path() const { return path_; }
  // Every key, sorted.
  std::vector<std::string> names() const;
  const TensorInfo* find(const std::string& key) const;  // nullptr when absent
  // The file that holds `key` (which must exist), for reading and messages.
  const std::shared_ptr<SafetensorsFile>& file_of(const std::string& key) const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }

  // Key helpers for the shape-based configuration of each family.
  bool has_prefix(const std::string& prefix) const;
  // Largest N such that a key `prefix + N + "." ...` exists, plus one (0 when none).
  int count_indexed(const std::string& prefix) const;
  // Dimension `dim` of tensor `key`, or a CheckpointError-like std::runtime_error naming the
  // source, the key and `what` (what the file was taken for) when it is missing.
  int64_t dim(const std::string& key, size_t dim, const std::string& what) const;

 private:
  struct Entry {
    size_t file;
    const TensorInfo* info;
  };
  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> entries_;
};

}  // namespace sdgen
