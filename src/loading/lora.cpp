#include "sdgen/loading/lora.h"

#include <filesystem>
#include <map>
#include <stdexcept>

#include "sdgen/io/safetensors.h"
#include "sdgen/io/tensor_io.h"
#include "sdgen/util/fs.h"
#include "sdgen/util/sha256.h"

namespace sdgen {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string underscored(std::string s) {
  for (auto& c : s)
    if (c == '.') c = '_';
  return s;
}

// A key's layer name in kohya's style and its part ("down", "up", "alpha"); empty layer for
// keys of no LoRA pair. kohya: <layer>.lora_down.weight, <layer>.lora_up.weight, <layer>.alpha.
// diffusers / PEFT: unet.<path>.lora_A.weight (down), .lora_B.weight (up), also .lora.down /
// .lora.up and .lora_linear_layer.down / .up, text_encoder.<path>...; the old attention
// processors' <path>.processor.to_q_lora.down.weight.
std::pair<std::string, std::string> layer_of(const std::string& key) {
  const size_t dot = key.find('.');
  if (key.rfind("lora_", 0) == 0 && dot != std::string::npos) {
    const std::string rest = key.substr(dot + 1);
    if (rest == "lora_down.weight") return {key.substr(0, dot), "down"};
    if (rest == "lora_up.weight") return {key.substr(0, dot), "up"};
    if (rest == "alpha") return {key.substr(0, dot), "alpha"};
    return {"", ""};
  }
  static const std::vector<std::pair<std::string, std::string>> kPeft = {
      {".lora_A.weight", "down"},
      {".lora_B.weight", "up"},
      {".lora.down.weight", "down"},
      {".lora.up.weight", "up"},
      {".lora_linear_layer.down.weight", "down"},
      {".lora_linear_layer.up.weight", "up"},
      {".alpha", "alpha"}};
  for (const auto& [suffix, part] : kPeft) {
    if (!ends_with(key, suffix)) continue;
    std::string path = key.substr(0, key.size() - suffix.size());
    std::string prefix;
    for (const auto& [from, to] : {std::pair<const char*, const char*>{"unet.", "lora_unet_"},
                                   {"text_encoder.", "lora_te_"},
                                   {"base_model.model.", "lora_unet_"}})
      if (path.rfind(from, 0) == 0) {
        prefix = to;
        path = path.substr(std::string(from).size());
        break;
      }
    if (prefix.empty()) return {"", ""};
    // attention processors: attn1.processor.to_q_lora -> attn1.to_q, to_out_lora -> to_out.0
    for (const auto& [from, to] :
         {std::pair<const char*, const char*>{".processor.to_q_lora", ".to_q"},
          {".processor.to_k_lora", ".to_k"},
          {".processor.to_v_lora", ".to_v"},
          {".processor.to_out_lora", ".to_out.0"}})
      if (ends_with(path, from)) path = path.substr(0, path.size() - std::string(from).size()) + to;
    return {prefix + underscored(path), part};
  }
  return {"", ""};
}

torch::Tensor as_float(const SafetensorsFile& file, const TensorInfo& info) {
  std::vector<int64_t> shape(info.shape.begin(), info.shape.end());
  auto t = torch::empty(shape, torch::kFloat);
  copy_stored(file, info, t);  // F16 / BF16 widen exactly
  return t;
}

}  // namespace

std::shared_ptr<const LoraFile> read_lora(const std::string& path) {
  const auto file = SafetensorsFile::open(path);
  auto lora = std::make_shared<LoraFile>();
  lora->path = path;
  struct Parts {
    const TensorInfo *down = nullptr, *up = nullptr, *alpha = nullptr;
  };
  std::map<std::string, Parts> parts;
  for (const auto& t : file->tensors()) {
    const auto [layer, part] = layer_of(t.name);
    if (layer.empty()) {
      lora->unsupported.push_back(t.name);
      continue;
    }
    auto& p = parts[layer];
    (part == "down" ? p.down : part == "up" ? p.up : p.alpha) = &t;
  }
  for (const auto& [name, p] : parts) {
    if (!p.down || !p.up) {
      if (p.down) lora->unsupported.push_back(p.down->name);
      if (p.up) lora->unsupported.push_back(p.up->name);
      continue;
    }
    LoraLayer l;
    l.name = name;
    l.down = as_float(*file, *p.down);
    l.up = as_float(*file, *p.up);
    if (p.alpha) {
      if (p.alpha->numel() != 1)
        throw std::runtime_error(path + ": " + p.alpha->name + " must hold one number");
      l.alpha = as_float(*file, *p.alpha).reshape({}).item<double>();
    }
    const bool conv = l.down.dim() == 4;
    if ((l.down.dim() != 2 && !conv) || l.up.dim() != l.down.dim() || l.up.size(1) != l.rank() ||
        (conv && (l.up.size(2) != 1 || l.up.size(3) != 1)))
      throw std::runtime_error(path + ": layer " + name + ": lora_up " + c10::str(l.up.sizes()) +
                               " does not fit lora_down " + c10::str(l.down.sizes()) +
                               "; is this a LoRA file?");
    lora->layers.push_back(std::move(l));
  }
  if (lora->layers.empty())
    throw std::runtime_error(path +
                             ": no LoRA layers (pairs of lora_down / lora_up, or lora_A / "
                             "lora_B, weights) in it; is it a LoRA file?");
  // A1111 network.NetworkOnDisk.shorthash: hashes.addnet_hash_safetensors
  const auto bytes = read_file_bytes(path);
  uint64_t header = 0;
  for (int i = 0; i < 8; ++i) header |= uint64_t{bytes[i]} << (8 * i);
  lora->hash = sha256_hex(bytes.data() + 8 + header, bytes.size() - 8 - header).substr(0, 12);
  return lora;
}

std::string find_lora(const std::string& name, const std::vector<std::string>& dirs) {
  // a name is a file stem: no folders (a prompt must not reach files elsewhere)
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") return "";
  std::error_code ec;
  for (const auto& dir : dirs) {
    const fs::path p = fs::path(dir) / (name + ".safetensors");
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

}  // namespace sdgen
