// A1111's extra-network tags in prompts (modules/extra_networks.py): `<TYPE:ARGS>` is found with
// the regex <(\w+):([^>]+)>, removed from the text (nothing else of the prompt changes), and its
// ARGS split on ':' into positional and named (`key=value`) items. Only positive prompts are
// scanned. LoRA tags (`<lora:NAME>`, `<lora:NAME:M>`, `<lora:NAME:TE:UNET>`, `te=`/`unet=`)
// are read as extra_networks_lora.py reads them.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace sdgen {

struct ExtraNetworkTag {
  std::string type;  // "lora", "hypernet", ...
  std::vector<std::string> positional;
  std::map<std::string, std::string> named;
};

struct TaggedPrompt {
  std::string text;  // the prompt without its tags
  std::vector<ExtraNetworkTag> tags;
};

TaggedPrompt parse_extra_networks(const std::string& prompt);

// One LoRA of a prompt: its name (the file stem) and multipliers for the text encoder and the
// UNet.
struct LoraTag {
  std::string name;
  double te = 1.0, unet = 1.0;
  bool operator==(const LoraTag& o) const { return name == o.name && te == o.te && unet == o.unet; }
};

// The LoRA tags of `prompt`, in prompt order. Throws std::invalid_argument naming the tag for
// a multiplier that is not a finite number or a tag without a name.
std::vector<LoraTag> lora_tags(const std::string& prompt);

}  // namespace sdgen
