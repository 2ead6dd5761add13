#include "sdgen/loading/tensor_source.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "sdgen/loading/load_report.h"

namespace sdgen {

namespace fs = std::filesystem;

TensorSource TensorSource::open_file(const std::string& path) {
  return open_files({{"", path}}, path);
}

TensorSource TensorSource::open_files(
    const std::vector<std::pair<std::string, std::string>>& prefixed, const std::string& label) {
  TensorSource s;
  s.path_ = label;
  for (const auto& [prefix, path] : prefixed) {
    s.files_.push_back(SafetensorsFile::open(path));
    const size_t index = s.files_.size() - 1;
    for (const auto& t : s.files_.back()->tensors()) {
      auto [it, fresh] = s.entries_.emplace(prefix + t.name, Entry{index, &t});
      if (!fresh)
        throw CheckpointError(label + ": tensor '" + prefix + t.name + "' is in both " +
                              s.files_[it->second.file]->path() + " and " + path +
                              "; keep one of the files");
    }
  }
  return s;
}

TensorSource TensorSource::open_folder(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file() || it->path().extension() != ".safetensors") continue;
    std::string prefix;
    for (const auto& part : it->path().parent_path().lexically_relative(dir))
      if (part != ".") prefix += part.string() + ".";
    files.emplace_back(prefix, it->path().string());
  }
  if (ec) throw CheckpointError(dir + ": cannot list the folder: " + ec.message());
  if (files.empty()) throw CheckpointError(dir + ": no .safetensors files in this folder");
  std::sort(files.begin(), files.end());
  return open_files(files, dir);
}

std::vector<std::string> TensorSource::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.first);
  return out;
}

const TensorInfo* TensorSource::find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second.info;
}

const std::shared_ptr<SafetensorsFile>& TensorSource::file_of(const std::string& key) const {
  return files_.at(entries_.at(key).file);
}

bool TensorSource::has_prefix(const std::string& prefix) const {
  auto it = entries_.lower_bound(prefix);
  return it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

int TensorSource::count_indexed(const std::string& prefix) const {
  int n = 0;
  for (auto it = entries_.lower_bound(prefix);
       it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    const auto rest = it->first.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || dot > 6) continue;
    const auto index = rest.substr(0, dot);
    if (!std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    n = std::max(n, std::stoi(index) + 1);
  }
  return n;
}

int64_t TensorSource::dim(const std::string& key, size_t d, const std::string& what) const {
  const TensorInfo* t = find(key);
  if (!t)
    throw CheckpointError(path_ + ": tensor '" + key + "' is missing; this does not look like " +
                          what + ". Check the --model path.");
  if (d >= t->shape.size())
    throw CheckpointError(path_ + ": tensor '" + key + "' has " + std::to_string(t->shape.size()) +
                          " dimensions; " + what + " has at least " + std::to_string(d + 1) +
                          " there");
  return t->shape[d];
}

}  // namespace sdgen
