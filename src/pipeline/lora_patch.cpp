#include "sdgen/pipeline/lora_patch.h"

#include <algorithm>

#include "sdgen/loading/diffusers_names.h"

namespace sdgen {
namespace {

std::string underscored(std::string s) {
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

}  // namespace

std::map<std::string, std::string> lora_unet_names(const UNetConfig& c,
                                                   const std::vector<std::string>& ldm_paths) {
  const auto table = unet_diffusers_to_ldm(c);
  std::map<std::string, std::string> names;
  for (const auto& path : ldm_paths) {
    // the LDM-named key works too (A1111: lora_unet -> diffusion_model, looked up again)
    names["lora_unet_" + underscored(path)] = path;
    names["lora_unet_" + underscored(ldm_to_diffusers(table, path))] = path;
  }
  return names;
}

LoraPatcher::LoraPatcher(LoadedModel& model) {
  std::vector<std::string> paths;
  std::map<std::string, torch::Tensor> unet_weights;
  for (const auto& p : model.unet->named_parameters()) {
    const std::string& key = p.key();
    if (key.size() < 7 || key.compare(key.size() - 7, 7, ".weight") != 0 || p.value().dim() < 2)
      continue;
    const std::string path = key.substr(0, key.size() - 7);
    paths.push_back(path);
    unet_weights[path] = p.value();
  }
  // several names (diffusers, LDM) reach one layer: layers are keyed by their module path
  for (const auto& [name, path] : lora_unet_names(model.config.unet, paths)) {
    names_[name] = "unet:" + path;
    layers_["unet:" + path] = Target{unet_weights.at(path), false};
  }
  // SD 1.x's CLIP text encoder (Hugging Face names, as kohya writes them)
  const auto text = std::dynamic_pointer_cast<torch::nn::Module>(model.text);
  if (text && model.config.family.rfind("sd1", 0) == 0)
    for (const auto& p : text->named_parameters()) {
      const std::string& key = p.key();
      if (key.size() < 7 || key.compare(key.size() - 7, 7, ".weight") != 0 ||
          p.value().dim() != 2 || key.rfind("encoder.", 0) != 0)
        continue;
      const std::string path = key.substr(0, key.size() - 7);
      names_["lora_te_text_model_" + underscored(path)] = "text:" + path;
      layers_["text:" + path] = Target{p.value(), true};
    }
}

LoraPatcher::Contributions LoraPatcher::contributions(const std::vector<AppliedLora>& loras) const {
  Contributions out;
  for (const auto& l : loras)
    for (const auto& layer : l.file->layers)
      if (auto it = names_.find(layer.name); it != names_.end())
        out[it->second].emplace_back(&l, &layer);
  return out;
}

bool LoraPatcher::apply(const std::vector<AppliedLora>& loras,
                        const std::function<void(const std::string&)>& warn) {
  torch::NoGradGuard no_grad;
  rewritten_ = 0;
  if (loras == current_) return false;
  for (const auto& l : loras) {
    if (!warned_.insert(l.file->path).second) continue;
    std::vector<std::string> unmatched = l.file->unsupported;
    for (const auto& layer : l.file->layers)
      if (!names_.count(layer.name)) unmatched.push_back(layer.name);
    if (unmatched.empty() || !warn) continue;
    std::string list;
    for (size_t i = 0; i < unmatched.size() && i < 8; ++i) list += (i ? ", " : "") + unmatched[i];
    if (unmatched.size() > 8) list += ", ... (" + std::to_string(unmatched.size()) + " in all)";
    warn("LoRA " + l.name + " (" + l.file->path + "): " + std::to_string(unmatched.size()) +
         " keys match no layer of this model and are skipped, as A1111 does: " + list);
  }
  // the layers to rewrite: those of the old set and of the new, each once
  const Contributions now = contributions(loras);
  std::set<std::string> layers;
  for (const auto& [layer, _] : contributions(current_)) layers.insert(layer);
  for (const auto& [layer, _] : now) layers.insert(layer);
  bool text_changed = false;
  for (const auto& key : layers) {
    Target& t = layers_.at(key);
    auto it = pristine_.find(key);
    if (it == pristine_.end())
      it = pristine_.emplace(key, t.weight.detach().to(torch::kFloat).clone()).first;
    torch::Tensor w = it->second.clone();
    if (auto c = now.find(key); c != now.end()) {
      for (const auto& [lora, layer] : c->second) {
        // network_lora.calc_updown: up.reshape(out, -1) @ down.reshape(rank, -1), reshaped to
        // the weight; finalize_updown: * scale * multiplier; LoRAs added in prompt order
        const double multiplier = t.text ? lora->te : lora->unet;
        auto up = layer->up.to(w.device()), down = layer->down.to(w.device());
        auto updown = up.reshape({up.size(0), -1}).matmul(down.reshape({down.size(0), -1}));
        if (w.dim() == 4 && w.size(1) == 9 && updown.numel() * 9 == w.numel() * 4) {
          // an inpainting UNet's 9-channel input conv: the LoRA covers the first 4 channels
          updown =
              torch::nn::functional::pad(updown.reshape({w.size(0), 4, w.size(2), w.size(3)}),
                                         torch::nn::functional::PadFuncOptions({0, 0, 0, 0, 0, 5}));
        }
        if (updown.numel() != w.numel()) {
          if (warn)
            warn("LoRA " + lora->name + ": layer " + layer->name + " has " +
                 c10::str(updown.sizes()) + " for a weight of " + c10::str(w.sizes()) +
                 "; skipped");
          continue;
        }
        w.add_(updown.reshape(w.sizes()).mul(layer->scale()).mul(multiplier));
      }
    }
    t.weight.detach().copy_(w.to(t.weight.scalar_type()));
    text_changed |= t.text;
    ++rewritten_;
  }
  // layers back at their pristine weights need no copy any more
  for (auto it = pristine_.begin(); it != pristine_.end();)
    it = now.count(it->first) ? std::next(it) : pristine_.erase(it);
  current_ = loras;
  return text_changed;
}

}  // namespace sdgen
