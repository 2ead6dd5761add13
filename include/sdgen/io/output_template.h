// Output file names from templates ("outputs/{index:05}-{seed}.png") and batch sharding.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace sdgen {

struct TemplateValues {
  uint64_t index = 0;  // position in the expanded job list (prompt x batch_count)
  uint64_t seed = 0;
  int line = 0;  // line of the prompt file (0 without one)
  std::string prompt;
};

// Placeholders {index} {seed} {line} {prompt}, with Python-style specs for numbers
// ({index:05} zero-pads to 5, {index:5} space-pads) and a length limit for the prompt slug
// ({prompt:30}; default 60). "{{" and "}}" are literal braces. Throws std::invalid_argument
// naming an unknown placeholder or a malformed spec.
std::string expand_output_template(const std::string& tmpl, const TemplateValues& v);
// Throws like expand_output_template when `tmpl` is malformed (checked before any work).
void validate_output_template(const std::string& tmpl);

// A file-name-safe slug: ASCII letters and digits kept, every other run of characters becomes
// one '-', no leading/trailing '-', at most `max_len` bytes (cut at a '-' when possible);
// "untitled" when nothing is left.
std::string slugify(const std::string& text, size_t max_len = 60);

struct Shard {
  uint64_t index = 0, count = 1;
  bool contains(uint64_t job) const { return job % count == index; }
};
// "K/N" with 0 <= K < N; std::invalid_argument otherwise.
Shard parse_shard(const std::string& s);
// From SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT, or with SLURM_ARRAY_TASK_MIN/MAX;
// {0, 1} when not in a Slurm array. `getenv` is injectable for tests.
Shard shard_from_environment(const std::function<const char*(const char*)>& getenv_fn = {});

}  // namespace sdgen
