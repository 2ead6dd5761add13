// Configuration from tensor shapes, per component (internal to src/loading; the families in
// family.cpp combine them with what shapes do not show).
#pragma once
#include <string>

#include "sdgen/loading/tensor_source.h"
#include "sdgen/models/config.h"

namespace sdgen::infer {

// The LDM UNet under `prefix`: channels, levels, res blocks, attention levels, transformer
// depth per level, context width, linear projections, label_emb width. Heads are left at
// their defaults (the shapes do not show them). `what` names the expected file in errors.
UNetConfig unet(const TensorSource& s, const std::string& prefix, const std::string& what);
// The LDM AutoencoderKL under `prefix`.
VaeConfig vae(const TensorSource& s, const std::string& prefix, const std::string& what);
// The Hugging Face CLIPTextModel under `prefix` ("...text_model."); heads guessed.
ClipTextConfig clip_text(const TensorSource& s, const std::string& prefix, const std::string& what);
// The open_clip text tower under `prefix` ("...model."); heads guessed, gelu, the projection
// width when it has `text_projection`.
ClipTextConfig openclip_text(const TensorSource& s, const std::string& prefix,
                             const std::string& what);
// Text-encoder heads, which the shapes do not show: width / 64 for CLIP ViT-L/14 (12 heads),
// OpenCLIP ViT-H/14 (16) and ViT-bigG/14 (20); 16-wide heads for narrower widths (the
// reference tiny models), a documented guess that a config JSON overrides.
int text_heads(int width);

}  // namespace sdgen::infer
