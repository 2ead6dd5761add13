#include "sdgen/io/output_template.h"

#include <cstdlib>
#include <optional>
#include <stdexcept>

namespace sdgen {
namespace {

bool is_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string format_uint(uint64_t v, const std::string& spec, const std::string& name) {
  std::string digits = std::to_string(v);
  if (spec.empty()) return digits;
  if (!is_digits(spec) || spec.size() > 3)
    throw std::invalid_argument("output template: {" + name + ":" + spec +
                                "} has a bad width; use e.g. {" + name + ":05}");
  const bool zero = spec[0] == '0' && spec.size() > 1;
  const size_t width = std::stoul(spec);
  if (digits.size() < width) digits.insert(0, width - digits.size(), zero ? '0' : ' ');
  return digits;
}

// Expands or, with `v` null, only validates.
std::string expand(const std::string& t, const TemplateValues* v) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '}') {
      if (i + 1 < t.size() && t[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      throw std::invalid_argument("output template '" + t + "': lone '}' (write '}}' for a brace)");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < t.size() && t[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = t.find('}', i);
    if (close == std::string::npos)
      throw std::invalid_argument("output template '" + t + "': '{' without '}'");
    const std::string field = t.substr(i + 1, close - i - 1);
    const size_t colon = field.find(':');
    const std::string name = field.substr(0, colon);
    const std::string spec = colon == std::string::npos ? "" : field.substr(colon + 1);
    if (name == "index" || name == "seed" || name == "line") {
      const uint64_t value = !v                ? 0
                             : name == "index" ? v->index
                             : name == "seed"  ? v->seed
                                               : static_cast<uint64_t>(v->line);
      out += format_uint(value, spec, name);
    } else if (name == "prompt") {
      if (!spec.empty() && (!is_digits(spec) || spec.size() > 3 || std::stoul(spec) == 0))
        throw std::invalid_argument("output template: {prompt:" + spec +
                                    "} needs a maximum length, e.g. {prompt:40}");
      out += slugify(v ? v->prompt : "", spec.empty() ? 60 : std::stoul(spec));
    } else {
      throw std::invalid_argument("output template '" + t + "': unknown placeholder {" + field +
                                  "}; use {index}, {seed}, {line} or {prompt}");
    }
    i = close;
  }
  return out;
}

}  // namespace

std::string expand_output_template(const std::string& tmpl, const TemplateValues& v) {
  return expand(tmpl, &v);
}

void validate_output_template(const std::string& tmpl) {
  const std::string probe = expand(tmpl, nullptr);
  if (probe.empty() || probe.back() == '/')
    throw std::invalid_argument("output template '" + tmpl + "' names a folder, not a file");
}

std::string slugify(const std::string& text, size_t max_len) {
  std::string s;
  bool dash = false;
  for (unsigned char c : text) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (keep) {
      if (dash && !s.empty()) s += '-';
      dash = false;
      s += static_cast<char>(c);
    } else {
      dash = true;
    }
  }
  if (s.size() > max_len) {
    const size_t cut = s.rfind('-', max_len);
    s.resize(cut != std::string::npos && cut > max_len / 2 ? cut : max_len);
    while (!s.empty() && s.back() == '-') s.pop_back();
  }
  return s.empty() ? "untitled" : s;
}

Shard parse_shard(const std::string& s) {
  const size_t slash = s.find('/');
  const std::string k = s.substr(0, slash);
  const std::string n = slash == std::string::npos ? "" : s.substr(slash + 1);
  if (!is_digits(k) || !is_digits(n) || k.size() > 9 || n.size() > 9 || std::stoull(n) == 0 ||
      std::stoull(k) >= std::stoull(n))
    throw std::invalid_argument("--shard must be K/N with 0 <= K < N (e.g. 0/4), not '" + s + "'");
  return {std::stoull(k), std::stoull(n)};
}

Shard shard_from_environment(const std::function<const char*(const char*)>& getenv_fn) {
  auto get = [&](const char* name) -> std::string {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v ? v : "";
  };
  // A Slurm variable as a number; nullopt when unset or empty, an error when not a number
  auto number = [&](const char* name) -> std::optional<uint64_t> {
    const std::string v = get(name);
    if (v.empty()) return std::nullopt;
    if (!is_digits(v) || v.size() > 18)
      throw std::invalid_argument(std::string(name) + " is '" + v +
                                  "', not a task number; pass --shard K/N");
    return std::stoull(v);
  };
  const auto id = number("SLURM_ARRAY_TASK_ID");
  if (!id) return {};
  const std::string id_text = get("SLURM_ARRAY_TASK_ID");
  const auto count = number("SLURM_ARRAY_TASK_COUNT");
  const auto lo = number("SLURM_ARRAY_TASK_MIN"), hi = number("SLURM_ARRAY_TASK_MAX");
  const auto step_value = number("SLURM_ARRAY_TASK_STEP");
  const uint64_t task = *id;
  const uint64_t base = lo.value_or(0);
  const uint64_t step = step_value && *step_value > 0 ? *step_value : 1;
  uint64_t n = 0;
  if (count && *count > 0) {
    n = *count;
  } else if (lo && hi) {
    if (*hi < *lo)
      throw std::invalid_argument("SLURM_ARRAY_TASK_MIN (" + std::to_string(*lo) +
                                  ") is above SLURM_ARRAY_TASK_MAX (" + std::to_string(*hi) +
                                  "): not a Slurm array; pass --shard K/N");
    n = (*hi - base) / step + 1;
  } else {
    throw std::invalid_argument(
        "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor "
        "SLURM_ARRAY_TASK_MIN/MAX are: pass --shard K/N");
  }
  // Tasks are base, base + step, ...: the shard is the task's position in that list.
  if (task < base || (task - base) % step != 0 || (task - base) / step >= n)
    throw std::invalid_argument("SLURM_ARRAY_TASK_ID " + id_text + " lies outside the array (" +
                                std::to_string(n) + " tasks from " + std::to_string(base) +
                                " in steps of " + std::to_string(step) + "); pass --shard K/N");
  return {(task - base) / step, n};
}

}  // namespace sdgen
