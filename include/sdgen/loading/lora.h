// LoRA files (kohya / A1111 format, and the diffusers / PEFT key styles read into it): the
// layers of a file with their up and down matrices in float32, found by name in LoRA folders,
// with A1111's "addnet" hash. How they are applied: pipeline/lora_patch.h.
#pragma once
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace sdgen {

// One layer of a LoRA: W += (up @ down) * (alpha / rank) * multiplier.
struct LoraLayer {
  // kohya's layer name: "lora_unet_<diffusers or LDM module path, '.' -> '_'>" or
  // "lora_te_text_model_encoder_layers_N_..." (other styles are renamed to it)
  std::string name;
  torch::Tensor down;  // [rank, in] or [rank, in, kh, kw], float32 (widened exactly)
  torch::Tensor up;    // [out, rank] or [out, rank, 1, 1], float32
  double alpha = NAN;  // NaN: no alpha stored (scale 1)
  int64_t rank() const { return down.size(0); }
  double scale() const { return std::isnan(alpha) ? 1.0 : alpha / static_cast<double>(rank()); }
};

struct LoraFile {
  std::string path;
  std::string hash;  // A1111's addnet hash: sha256 of the bytes after the header, 12 hex digits
  std::vector<LoraLayer> layers;
  // Keys of kinds sdgen does not apply (LoHa, LoKr, DoRA, norms, ...), reported as unmatched.
  std::vector<std::string> unsupported;
};

// Reads a LoRA .safetensors file. Throws std::runtime_error naming the file for a file that is
// not a LoRA (no up/down pair), a layer whose up and down do not fit together, or a read error.
std::shared_ptr<const LoraFile> read_lora(const std::string& path);

// The first `<dir>/<name>.safetensors` among `dirs`; empty when none has it.
std::string find_lora(const std::string& name, const std::vector<std::string>& dirs);

}  // namespace sdgen
