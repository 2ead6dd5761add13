// LoRAs applied as A1111 applies them by default (extensions-builtin/Lora/networks.py,
// network_apply_weights): the weights patched before the forward, W = W0 + sum over the LoRAs
// in prompt order of (up @ down) * (alpha / rank) * multiplier, in float32, then cast to the
// compute dtype; the text-encoder multiplier for the text encoder's layers, the UNet's for the
// UNet's. The pristine weights of every layer a LoRA touched are kept (float32), so a line
// without LoRAs gets exactly the loaded model back, and a change of LoRAs rewrites only the
// layers whose LoRAs changed.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sdgen/loading/lora.h"
#include "sdgen/loading/model_loader.h"

namespace sdgen {

struct AppliedLora {
  std::string name;  // as the prompt names it
  std::shared_ptr<const LoraFile> file;
  double te = 1.0, unet = 1.0;
  bool operator==(const AppliedLora& o) const {
    return file == o.file && te == o.te && unet == o.unet;
  }
};

// kohya's names of the model's layers: "lora_unet_" + the diffusers module path (from the
// model's real block layout, as diffusers' convert_ldm_unet_checkpoint maps it) or the LDM
// path, "lora_te_text_model_" + the CLIP text encoder's path, each with '.' -> '_'.
std::map<std::string, std::string> lora_unet_names(const UNetConfig& c,
                                                   const std::vector<std::string>& ldm_paths);

class LoraPatcher {
 public:
  explicit LoraPatcher(LoadedModel& model);
  // Makes the weights those of the loaded model plus `loras`. Layer names that match no layer
  // of the model are reported through `warn` once per file (A1111 skips them too). Returns
  // whether any text-encoder weight changed (encoded prompts are then stale).
  bool apply(const std::vector<AppliedLora>& loras,
             const std::function<void(const std::string&)>& warn);
  // How many layers the last apply() rewrote (for tests: only what changes is rewritten).
  size_t last_rewritten() const { return rewritten_; }

 private:
  struct Target {
    torch::Tensor weight;  // the module's parameter (on its device, in its dtype)
    bool text = false;     // a text-encoder layer: the te multiplier applies
  };
  // The LoRA layers that change each model layer, in prompt order.
  using Contributions =
      std::map<std::string, std::vector<std::pair<const AppliedLora*, const LoraLayer*>>>;
  Contributions contributions(const std::vector<AppliedLora>& loras) const;
  std::map<std::string, std::string> names_;       // kohya layer name -> model layer ("unet:path")
  std::map<std::string, Target> layers_;           // model layer -> parameter
  std::map<std::string, torch::Tensor> pristine_;  // model layer -> float32 copy of W0
  std::vector<AppliedLora> current_;
  std::set<std::string> warned_;  // files whose unmatched keys were reported
  size_t rewritten_ = 0;
};

}  // namespace sdgen
