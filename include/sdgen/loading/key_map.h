// How the names of a module's parameters (which mirror LDM checkpoint keys) map to the keys
// of a tensor source. A map is data: rules "module names starting with A are source keys
// starting with B", the longest matching A winning. The LDM single-file layout is one rule per
// component (UNet "" -> "model.diffusion_model."); diffusers' names and LoRA targets are longer
// tables of the same kind, generated from the model's block layout.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace sdgen {

class KeyMap {
 public:
  struct Rule {
    std::string module_prefix, source_prefix;
    // The module's 1x1-convolution weights [out, in, 1, 1] under this rule are stored as
    // Linear weights [out, in] (diffusers' VAE mid-block attention). load_module reshapes
    // exactly these, and only from exactly [out, in]; no other rule reshapes anything.
    bool conv1x1_stored_as_linear = false;
  };
  KeyMap() = default;
  explicit KeyMap(std::vector<Rule> rules);
  // Every module name under one source prefix (an LDM component).
  static KeyMap prefixed(const std::string& source_prefix) { return KeyMap({{"", source_prefix}}); }

  // The source key of module parameter `module_name` (unchanged when no rule matches).
  std::string to_source(const std::string& module_name) const;
  // The rule that maps `module_name` (the longest matching module prefix), or nullptr.
  const Rule* match(const std::string& module_name) const;
  // Whether `source_key` lies in this map's part of the source (under one of its source
  // prefixes): such keys that the module does not use are "unexpected".
  bool covers(const std::string& source_key) const;
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  std::vector<Rule> rules_;  // longest module prefix first
};

}  // namespace sdgen
