#include "sdgen/loading/key_map.h"

#include <algorithm>

namespace sdgen {

KeyMap::KeyMap(std::vector<Rule> rules) : rules_(std::move(rules)) {
  std::stable_sort(rules_.begin(), rules_.end(), [](const Rule& a, const Rule& b) {
    return a.module_prefix.size() > b.module_prefix.size();
  });
}

const KeyMap::Rule* KeyMap::match(const std::string& name) const {
  for (const auto& r : rules_)
    if (name.compare(0, r.module_prefix.size(), r.module_prefix) == 0) return &r;
  return nullptr;
}

std::string KeyMap::to_source(const std::string& name) const {
  const Rule* r = match(name);
  return r ? r->source_prefix + name.substr(r->module_prefix.size()) : name;
}

bool KeyMap::covers(const std::string& key) const {
  return std::any_of(rules_.begin(), rules_.end(), [&](const Rule& r) {
    return key.compare(0, r.source_prefix.size(), r.source_prefix) == 0;
  });
}

}  // namespace sdgen
