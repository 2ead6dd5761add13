// The family registry (family.h): SD 1.x and SD 2.x, which sdgen runs, and the families it
// recognises in order to say what a file is.
#include "sdgen/loading/family.h"

#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "infer_config.h"
#include "sdgen/models/clip.h"
#include "sdgen/models/openclip.h"

namespace sdgen {
namespace {

constexpr const char* kUNet = "model.diffusion_model.";
constexpr const char* kVae = "first_stage_model.";
constexpr const char* kClip = "cond_stage_model.transformer.text_model.";  // SD 1.x
constexpr const char* kOpenClip = "cond_stage_model.model.";               // SD 2.x
constexpr const char* kSdxlClipL = "conditioner.embedders.0.transformer.text_model.";
constexpr const char* kSdxlBigG = "conditioner.embedders.1.model.";

// The UNet's input channels (4 for text-to-image, 9 inpainting, 8 InstructPix2Pix, 5 depth),
// or -1 without an LDM UNet.
int64_t unet_inputs(const TensorSource& s) {
  const TensorInfo* t = s.find(std::string(kUNet) + "input_blocks.0.0.weight");
  return t && t->shape.size() == 4 ? t->shape[1] : -1;
}

// Channel counts of the UNet levels that carry attention, and the middle block's.
std::vector<int> attention_channels(const UNetConfig& u) {
  std::vector<int> out;
  int ds = 1;
  for (int mult : u.channel_mult) {
    if (std::find(u.attention_resolutions.begin(), u.attention_resolutions.end(), ds) !=
        u.attention_resolutions.end())
      out.push_back(mult * u.model_channels);
    ds *= 2;
  }
  out.push_back(u.channel_mult.back() * u.model_channels);
  return out;
}

// UNet head width for SD 2.x / SDXL-like models without a config: the 64 of the releases when
// every attention level splits into 64-wide heads and the model is SD-sized, else 16 (the
// width of the reference's tiny models), else 8.
int guess_head_channels(const UNetConfig& u) {
  const auto channels = attention_channels(u);
  auto fits = [&](int width) {
    return std::all_of(channels.begin(), channels.end(), [&](int ch) { return ch % width == 0; });
  };
  return u.model_channels >= 320 && fits(64) ? 64 : fits(16) ? 16 : 8;
}

ModelConfig sd1_config(const TensorSource& s, const nlohmann::json* overrides,
                       std::vector<std::string>* notes) {
  const std::string what = "an SD 1.x checkpoint (LDM key names)";
  ModelConfig c;
  c.family = "sd1";
  c.text = infer::clip_text(s, kClip, what);
  c.unet = infer::unet(s, kUNet, what);
  // Heads do not show either: SD 1.x uses 8 heads at every level.
  c.unet.num_heads = 8;
  c.unet.num_head_channels = -1;
  c.vae = infer::vae(s, kVae, what);
  const bool standard = c.unet.model_channels == 320 && c.text.width == 768;
  if (overrides) {
    apply_json(*overrides, c);
  } else if (!standard) {
    // A smaller model without a config: assume 32-wide UNet heads, the width the small SD1
    // derivatives (and the reference's tiny model) use.
    c.unet.num_heads = std::max(1, c.unet.model_channels / 32);
    if (notes)
      notes->push_back("no config JSON for this non-standard model: assumed " +
                       std::to_string(c.text.heads) + " text-encoder heads and " +
                       std::to_string(c.unet.num_heads) +
                       " UNet heads; give --model-config if it was trained otherwise");
  }
  return c;
}

ModelConfig sd2_config(const TensorSource& s, const nlohmann::json* overrides,
                       std::vector<std::string>* notes) {
  const std::string what =
      "an SD 2.x checkpoint (OpenCLIP text encoder under 'cond_stage_model.model.')";
  ModelConfig c;
  c.family = "sd2";
  c.text = infer::openclip_text(s, kOpenClip, what);
  // UNet: as SD 1.x, but with a fixed head width (num_head_channels) instead of a head count.
  c.unet = infer::unet(s, kUNet, what);
  c.unet.num_head_channels = 64;
  c.vae = infer::vae(s, kVae, what);
  // Unknown until the loader settles it (prediction_open), unless the JSON says.
  c.prediction.clear();
  c.native_size = 0;
  const bool standard = c.unet.model_channels == 320 && c.unet.context_dim == 1024;
  if (overrides) {
    apply_json(*overrides, c);
  } else if (!standard) {
    c.unet.num_head_channels = guess_head_channels(c.unet);
    if (notes)
      notes->push_back("no config JSON for this non-standard SD 2.x model: assumed " +
                       std::to_string(c.text.heads) + " text-encoder heads and UNet heads " +
                       std::to_string(c.unet.num_head_channels) +
                       " channels wide; give --model-config if it was trained otherwise");
  }
  if (c.text.layers < 2)
    throw CheckpointError(s.path() + ": the OpenCLIP text encoder has " +
                          std::to_string(c.text.layers) +
                          " resblocks; SD 2.x uses the penultimate one, so it needs at least 2");
  return c;
}

ModelConfig sdxl_config(const TensorSource& s, const nlohmann::json* overrides,
                        std::vector<std::string>* notes) {
  const std::string what =
      "an SDXL checkpoint (CLIP ViT-L under 'conditioner.embedders.0.', OpenCLIP ViT-bigG under "
      "'conditioner.embedders.1.')";
  ModelConfig c;
  c.family = "sdxl";
  c.text = infer::clip_text(s, kSdxlClipL, what);
  c.text_2 = infer::openclip_text(s, kSdxlBigG, what);
  c.unet = infer::unet(s, kUNet, what);
  c.unet.num_head_channels = 64;
  c.vae = infer::vae(s, kVae, what);
  c.vae.scale_factor = 0.13025;  // sd_xl_base.yaml
  c.native_size = 1024;
  c.prediction = "eps";
  const bool standard = c.unet.model_channels == 320 && c.unet.context_dim == 2048;
  if (overrides) {
    apply_json(*overrides, c);
  } else if (!standard) {
    c.unet.num_head_channels = guess_head_channels(c.unet);
    if (notes)
      notes->push_back("no config JSON for this non-standard SDXL model: assumed " +
                       std::to_string(c.text.heads) + " and " + std::to_string(c.text_2.heads) +
                       " text-encoder heads and UNet heads " +
                       std::to_string(c.unet.num_head_channels) +
                       " channels wide; give --model-config if it was trained otherwise");
  }
  // y = [pooled, 6 sizes x 256-wide embeddings] (sd_xl_base.yaml: adm_in_channels 2816)
  const int sizes = c.unet.adm_in_channels - c.text_2.projection_dim;
  if (c.text_2.projection_dim <= 0 || c.text_2.layers < 2 || sizes != 6 * 256)
    throw CheckpointError(
        s.path() + ": the UNet's label_emb takes " + std::to_string(c.unet.adm_in_channels) +
        " inputs, but SDXL's vector is the pooled text (" +
        std::to_string(c.text_2.projection_dim) +
        " from text_projection) and 6 x 256 size "
        "embeddings, and bigG needs at least 2 resblocks; this does not look like SDXL base");
  return c;
}

ModelFamily unsupported(std::string name, std::string label, std::string description,
                        std::function<bool(const TensorSource&)> detect) {
  ModelFamily f;
  f.name = std::move(name);
  f.label = std::move(label);
  f.description = std::move(description);
  f.detect = std::move(detect);
  return f;
}

// A family sdgen runs from single files with LDM key names: its text encoder under
// `text_prefix`, the UNet and the VAE where every LDM checkpoint has them.
ModelFamily ldm_family(std::string name, std::string label, const char* text_prefix,
                       std::function<bool(const TensorSource&)> detect) {
  ModelFamily f;
  f.name = std::move(name);
  f.label = std::move(label);
  f.detect = std::move(detect);
  f.supported = true;
  f.text_keys = KeyMap::prefixed(text_prefix);
  f.unet_keys = KeyMap::prefixed(kUNet);
  f.vae_keys = KeyMap::prefixed(kVae);
  return f;
}

std::vector<ModelFamily> build_families() {
  auto has = [](const char* prefix) {
    return [p = std::string(prefix)](const TensorSource& s) { return s.has_prefix(p); };
  };
  auto openclip_with = [](int64_t inputs) {
    return [inputs](const TensorSource& s) {
      return s.has_prefix(kOpenClip) && unet_inputs(s) == inputs;
    };
  };
  std::vector<ModelFamily> v;
  v.push_back(unsupported("flux", "Flux", "a Flux checkpoint (double_blocks / single_blocks)",
                          [](const TensorSource& s) {
                            return s.has_prefix("double_blocks.") ||
                                   s.has_prefix(std::string(kUNet) + "double_blocks.");
                          }));
  v.push_back(unsupported(
      "sd3", "SD 3", "an SD 3 checkpoint (MMDiT joint_blocks)", [](const TensorSource& s) {
        return s.has_prefix("joint_blocks.") || s.has_prefix(std::string(kUNet) + "joint_blocks.");
      }));
  v.push_back(unsupported("sdxl-refiner", "SDXL refiner",
                          "an SDXL refiner checkpoint (OpenCLIP ViT-bigG as its only text "
                          "encoder, aesthetic-score conditioning)",
                          has("conditioner.embedders.0.model.")));
  v.push_back(unsupported("sdxl-inpaint", "SDXL inpainting",
                          "an SDXL inpainting checkpoint (a 9-channel UNet input: latent, mask "
                          "and masked image)",
                          [](const TensorSource& s) {
                            return s.has_prefix("conditioner.embedders.") && unet_inputs(s) == 9;
                          }));
  {
    ModelFamily f = ldm_family("sdxl", "SDXL", kSdxlClipL, has(kSdxlBigG));
    f.text_ignored_suffixes = {"embeddings.position_ids"};
    f.text_2_keys = KeyMap::prefixed(kSdxlBigG);
    f.text_2_ignored_suffixes = {"logit_scale", "attn_mask"};
    f.infer_config = sdxl_config;
    f.make_text_encoder = [](const ClipTextConfig& c) {
      return std::static_pointer_cast<TextEncoder>(ClipTextModel(c).ptr());
    };
    f.make_text_encoder_2 = [](const ClipTextConfig& c) {
      return std::static_pointer_cast<TextEncoder>(OpenClipTextModel(c).ptr());
    };
    f.conditioning = ModelFamily::Conditioning::kSdxl;
    f.vae_upcast_in_fp16 = true;
    f.size_conditioning = true;
    f.clip_skip_warning =
        " has no effect on SDXL: as in A1111 (without its \"SDXL clip skip\" setting), both "
        "encoders give their penultimate layers";
    v.push_back(f);
  }
  v.push_back(unsupported("sd2-inpaint", "SD 2.x inpainting",
                          "an SD 2.x inpainting checkpoint (a 9-channel UNet input: latent, mask "
                          "and masked image)",
                          openclip_with(9)));
  v.push_back(unsupported("sd2-depth", "SD 2.x depth-to-image",
                          "an SD 2.x depth-to-image checkpoint (a 5-channel UNet input: latent "
                          "and depth)",
                          openclip_with(5)));
  {
    ModelFamily f = ldm_family("sd2", "SD 2.x", kOpenClip, has(kOpenClip));
    // The logit scale serves image-text matching; a stored causal mask is rebuilt.
    f.text_ignored_suffixes = {"logit_scale", "attn_mask"};
    f.infer_config = sd2_config;
    f.make_text_encoder = [](const ClipTextConfig& c) {
      return std::static_pointer_cast<TextEncoder>(OpenClipTextModel(c).ptr());
    };
    f.clip_skip_reserved_layers = 1;  // the last layer is never the context
    f.clip_skip_warning =
        " on an SD 2.x model skips layers before the penultimate one it was trained with; "
        "A1111 ignores clip skip for SD 2.x";
    f.prediction_open = true;
    v.push_back(f);
  }
  {
    // SD 1.5 inpainting: SD 1.x with a 9-channel UNet input (latent, mask, masked-image
    // latent: Conditioning::concat, built by the pipeline)
    ModelFamily f = ldm_family("sd1-inpaint", "SD 1.x inpainting", kClip,
                               [](const TensorSource& s) { return unet_inputs(s) == 9; });
    f.text_ignored_suffixes = {"embeddings.position_ids"};
    f.infer_config = sd1_config;
    f.make_text_encoder = [](const ClipTextConfig& c) {
      return std::static_pointer_cast<TextEncoder>(ClipTextModel(c).ptr());
    };
    f.inpainting = true;
    v.push_back(f);
  }
  v.push_back(unsupported("sd1-pix2pix", "InstructPix2Pix",
                          "an InstructPix2Pix checkpoint (an 8-channel UNet input: latent and "
                          "the input image's latent)",
                          [](const TensorSource& s) { return unet_inputs(s) == 8; }));
  {
    // the last: any other LDM UNet with a 4-channel input (a missing text encoder is then
    // reported as such)
    ModelFamily f = ldm_family("sd1", "SD 1.x", kClip, has(kUNet));
    f.text_ignored_suffixes = {"embeddings.position_ids"};
    f.infer_config = sd1_config;
    f.make_text_encoder = [](const ClipTextConfig& c) {
      return std::static_pointer_cast<TextEncoder>(ClipTextModel(c).ptr());
    };
    v.push_back(f);
  }
  return v;
}

// What a file without a recognised UNet looks like, for the error message.
std::string what_it_looks_like(const TensorSource& s) {
  const auto names = s.names();
  auto any = [&](const std::string& needle) {
    return std::any_of(names.begin(), names.end(),
                       [&](const std::string& k) { return k.find(needle) != std::string::npos; });
  };
  if (any("lora_up") || any("lora_down") || any("lora_A.") || any("lora_B."))
    return "it holds LoRA weights (lora_up / lora_down), which are applied to a model, not "
           "loaded as one";
  if (s.find("emb_params") || s.find("clip_l") || s.find("clip_g") ||
      (names.size() == 1 && !any(".")))
    return "it looks like a textual-inversion embedding, which is used in prompts, not loaded "
           "as a model";
  if (any("decoder.up_blocks.") && !any("time_embedding."))  // no UNet beside it
    return "it holds a diffusers VAE (decoder.up_blocks.*); give its folder (config.json beside "
           "it) with --vae";
  for (const char* p : {"first_stage_model.", "vae.", ""})
    if (s.find(std::string(p) + "decoder.conv_in.weight") && !s.has_prefix(kUNet))
      return "it holds only a VAE; give it with --vae beside a checkpoint";
  if (any("down_blocks.") && any("up_blocks."))
    return "its tensors have diffusers' names (down_blocks.*): give the whole diffusers folder "
           "(the one with model_index.json) as --model, or a single-file checkpoint with LDM key "
           "names";
  return "sdgen reads single-file checkpoints with LDM key names";
}

}  // namespace

const std::vector<ModelFamily>& model_families() {
  static const std::vector<ModelFamily> families = build_families();
  return families;
}

const ModelFamily& model_family(const std::string& name) {
  for (const auto& f : model_families())
    if (f.name == name) return f;
  throw std::invalid_argument("unknown model family '" + name + "'");
}

const ModelFamily& detect_family(const TensorSource& s) {
  // "SD 1.x, SD 2.x and SDXL": the registry lists the newer first
  std::vector<std::string> labels;
  for (const auto& f : model_families())
    if (f.supported) labels.insert(labels.begin(), f.label);
  std::string runnable;
  for (size_t i = 0; i < labels.size(); ++i)
    runnable += (i == 0 ? "" : i + 1 == labels.size() ? " and " : ", ") + labels[i];
  for (const auto& f : model_families()) {
    if (!f.detect(s)) continue;
    if (f.supported) return f;
    throw CheckpointError(s.path() + ": this is " + f.description + "; sdgen runs " + runnable +
                          " text-to-image checkpoints so far (" + f.label +
                          " is not supported yet)");
  }
  throw CheckpointError(s.path() + ": no 'model.diffusion_model.*' tensors (no LDM UNet): " +
                        what_it_looks_like(s) + ". sdgen runs " + runnable + " checkpoints.");
}

}  // namespace sdgen
