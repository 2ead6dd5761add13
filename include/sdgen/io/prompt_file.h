// Prompt files for batch runs: txt (a prompt a line), jsonl (an object a line) and A1111's
// "prompts from file" option lines. Parsing needs no model: a bad file fails before loading.
#pragma once
#include <cstdint>
#include <istream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdgen {

// One line's settings; unset fields take the command line's values.
struct JobSpec {
  int line = 0;  // 1-based line number in the file
  std::optional<std::string> prompt, negative_prompt, sampler, scheduler, output;
  std::optional<int> width, height, steps, batch_count, clip_skip;
  std::optional<int64_t> seed;
  std::optional<double> cfg_scale;
  std::vector<std::string> warnings;  // e.g. A1111 options sdgen does not use
};

enum class PromptFormat { Txt, Jsonl, A1111 };

// "--prompt-format" value or, when empty, the file's extension (.jsonl -> Jsonl, anything else
// -> Txt; a txt file whose lines start with "--" is read as A1111 lines, as A1111 does).
PromptFormat prompt_format(const std::string& path, const std::string& explicit_format);

// Errors read "<label>:<line>: <what>".
class PromptFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::vector<JobSpec> parse_prompt_file(std::istream& in, PromptFormat format,
                                       const std::string& label);
// Reads `path` ("-": standard input).
std::vector<JobSpec> read_prompt_file(const std::string& path, const std::string& format);

// POSIX shell-like splitting as Python's shlex.split (quotes, backslash escapes). Throws
// std::invalid_argument on an unterminated quote or a trailing backslash.
std::vector<std::string> shell_split(const std::string& line);
// "512x768" -> {512, 768}; std::invalid_argument otherwise.
std::pair<int, int> parse_size_text(const std::string& s);

}  // namespace sdgen
