// The model family registry: what kinds of checkpoint sdgen knows, how each is recognised from
// its keys and shapes, where its components live, how its configuration is read, which text
// encoder it uses and what its model sampling is. Families sdgen cannot run yet (SDXL, SD 3,
// Flux, inpainting UNets, ...) are registered too, so that such a file gets an error naming
// its family instead of a generic one.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "sdgen/loading/key_map.h"
#include "sdgen/loading/load_report.h"
#include "sdgen/loading/tensor_source.h"
#include "sdgen/models/config.h"
#include "sdgen/models/text_encoder.h"

namespace sdgen {

struct ModelFamily {
  std::string name;   // "sd1", "sd2", "sdxl", ... (ModelConfig::family)
  std::string label;  // "SD 1.x", for messages
  // Whether `source` is a checkpoint of this family. The registry asks the families in order,
  // the more specific first (an SD 1.x inpainting UNet before SD 1.x).
  std::function<bool(const TensorSource&)> detect;
  // Families sdgen cannot run: what the file is, said in the error ("an SDXL base checkpoint
  // (conditioner.embedders.*: CLIP ViT-L and OpenCLIP ViT-bigG)").
  bool supported = false;
  std::string description;

  // --- supported families ---
  // Where each component's keys are in a single-file checkpoint (LDM names).
  KeyMap text_keys, unet_keys, vae_keys;
  // Known text-encoder keys that inference does not read (position_ids, logit_scale, ...).
  std::vector<std::string> text_ignored_suffixes;
  // The configuration from the shapes, then `overrides` (the model config JSON) over it;
  // what was guessed goes to `notes`.
  std::function<ModelConfig(const TensorSource&, const nlohmann::json* overrides,
                            std::vector<std::string>* notes)>
      infer_config;
  std::function<std::shared_ptr<TextEncoder>(const ClipTextConfig&)> make_text_encoder;
  // The second text encoder of two-encoder families (SDXL's OpenCLIP ViT-bigG under
  // ModelConfig::text_2); no make_text_encoder_2 for one-encoder families.
  KeyMap text_2_keys;
  std::vector<std::string> text_2_ignored_suffixes;
  std::function<std::shared_ptr<TextEncoder>(const ClipTextConfig&)> make_text_encoder_2;
  // How the pipeline turns prompts into Conditioning (pipeline/conditioner.h).
  enum class Conditioning {
    kTextContext,  // one encoder's context (SD 1.x, 2.x)
    kSdxl,         // both encoders' contexts side by side, the pooled output and the image
                   // sizes in the vector
  } conditioning = Conditioning::kTextContext;
  // Whether the family's VAE overflows in fp16 (SDXL's original VAE): it then decodes in fp32
  // when the compute dtype is fp16, unless --vae-dtype says otherwise (diffusers' force_upcast).
  bool vae_upcast_in_fp16 = false;
  // Layers clip skip can skip: the text encoder's layers minus this.
  int clip_skip_reserved_layers = 0;
  // Said with clip skip > 1 (ModelLimits::clip_skip_warning).
  std::string clip_skip_warning;
  // Whether the UNet is conditioned on image sizes (SDXL): the --sdxl-* parameters apply.
  bool size_conditioning = false;
  // Whether the checkpoint leaves eps / v open, so that the loader decides as A1111 does
  // (SD 2.x: 512 base eps, 768 v); otherwise the prediction is eps unless told.
  bool prediction_open = false;
  // Whether the UNet takes the inpainting conditioning beside the latent: a mask channel and
  // the masked image's latent (9-channel inpainting UNets; Conditioning::concat).
  bool inpainting = false;
};

// Every family, in detection order.
const std::vector<ModelFamily>& model_families();
// The family named `name`; std::invalid_argument for an unknown name.
const ModelFamily& model_family(const std::string& name);
// The family of `source`. Throws CheckpointError naming the file and the family when it is one
// sdgen cannot run, and naming what was looked for when no family matches (including what
// the file looks like instead: a VAE, a LoRA, an embedding).
const ModelFamily& detect_family(const TensorSource& source);

}  // namespace sdgen
