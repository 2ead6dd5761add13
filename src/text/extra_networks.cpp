#include "sdgen/text/extra_networks.h"

#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace sdgen {
namespace {

// Python's \w on str: letters, digits and '_' of any script; bytes of multi-byte UTF-8
// characters are taken as word characters (non-ASCII letters and digits are).
bool word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c >= 0x80;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

double multiplier(const std::string& text, const std::string& tag) {
  // Python float(): surrounding whitespace allowed
  const size_t b = text.find_first_not_of(" \t");
  const size_t e = text.find_last_not_of(" \t");
  const std::string t = b == std::string::npos ? "" : text.substr(b, e - b + 1);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v))
    throw std::invalid_argument("the LoRA tag " + tag + ": '" + text +
                                "' is not a multiplier (a number such as 0.8)");
  return v;
}

}  // namespace

TaggedPrompt parse_extra_networks(const std::string& prompt) {
  TaggedPrompt out;
  size_t i = 0;
  while (i < prompt.size()) {
    // re.sub scans left to right: at each '<', the longest match of <(\w+):([^>]+)>
    if (prompt[i] == '<') {
      size_t j = i + 1;
      while (j < prompt.size() && word_byte(static_cast<unsigned char>(prompt[j]))) ++j;
      if (j > i + 1 && j < prompt.size() && prompt[j] == ':') {
        const size_t close = prompt.find('>', j + 1);
        if (close != std::string::npos && close > j + 1) {
          ExtraNetworkTag tag;
          tag.type = prompt.substr(i + 1, j - i - 1);
          // ExtraNetworkParams: an item with exactly one '=' is named
          for (const auto& item : split(prompt.substr(j + 1, close - j - 1), ':')) {
            const auto parts = split(item, '=');
            if (parts.size() == 2)
              tag.named[parts[0]] = parts[1];
            else
              tag.positional.push_back(item);
          }
          out.tags.push_back(std::move(tag));
          i = close + 1;
          continue;
        }
      }
    }
    out.text += prompt[i++];
  }
  return out;
}

std::vector<LoraTag> lora_tags(const std::string& prompt) {
  std::vector<LoraTag> out;
  for (const auto& t : parse_extra_networks(prompt).tags) {
    if (t.type != "lora") continue;
    const std::string text = "<lora:" + (t.positional.empty() ? "" : t.positional[0]) + ":...>";
    if (t.positional.empty() || t.positional[0].empty())
      throw std::invalid_argument("a LoRA tag without a name: write <lora:NAME:0.8>");
    // extra_networks_lora.py: te = positional[1] (1.0), named te; unet = positional[2], else
    // te; named unet
    LoraTag l;
    l.name = t.positional[0];
    l.te = t.positional.size() > 1 ? multiplier(t.positional[1], text) : 1.0;
    if (auto it = t.named.find("te"); it != t.named.end()) l.te = multiplier(it->second, text);
    l.unet = t.positional.size() > 2 ? multiplier(t.positional[2], text) : l.te;
    if (auto it = t.named.find("unet"); it != t.named.end()) l.unet = multiplier(it->second, text);
    out.push_back(l);
  }
  return out;
}

}  // namespace sdgen
