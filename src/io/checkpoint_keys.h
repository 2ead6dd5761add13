// Key lookups shared by the checkpoint readers of each family (internal to src/io).
#pragma once
#include <algorithm>
#include <string>

#include "sdgen/io/checkpoint.h"

namespace sdgen::keys {

inline bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
inline bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// The tensor `name`, or a CheckpointError naming the file, the tensor and `family` (what the
// file was taken for, e.g. "an SD 1.x checkpoint (LDM key names)").
inline const TensorInfo& require(const SafetensorsFile& f, const std::string& name,
                                 const std::string& family) {
  if (const auto* t = f.find(name)) return *t;
  throw CheckpointError(f.path() + ": tensor '" + name + "' is missing; this does not look like " +
                        family + ". Check the --model path.");
}

// Largest N such that a key `prefix + N + "." ...` occurs, plus one (0 when none).
inline int count_indexed(const SafetensorsFile& f, const std::string& prefix) {
  int n = 0;
  for (const auto& t : f.tensors()) {
    if (!starts_with(t.name, prefix)) continue;
    const auto rest = t.name.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot == 0 || dot == std::string::npos || dot > 6) continue;
    const auto index = rest.substr(0, dot);
    if (!std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    n = std::max(n, std::stoi(index) + 1);
  }
  return n;
}

inline bool has_prefix(const SafetensorsFile& f, const std::string& prefix) {
  return std::any_of(f.tensors().begin(), f.tensors().end(),
                     [&](const TensorInfo& t) { return starts_with(t.name, prefix); });
}

// Text-encoder heads, which the shapes do not show: width / 64 for CLIP ViT-L/14 (SD 1.x, 12
// heads) and OpenCLIP ViT-H/14 (SD 2.x, 16 heads); 16-wide heads for narrower widths (the
// reference tiny models), a documented guess that a config JSON overrides.
inline int guess_text_heads(int width) {
  return width % 64 == 0 ? width / 64 : std::max(1, width / 16);
}

}  // namespace sdgen::keys
