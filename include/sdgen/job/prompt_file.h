// Prompt files for batch runs: txt (a prompt a line), jsonl (an object a line) and A1111's
// "prompts from file" option lines, each line read over the command line's parameters through
// the parameter schema (params.h). Parsing needs no model: a bad file fails before loading.
#pragma once
#include <istream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/job/params.h"

namespace sdgen {

// One line: the command line's parameters with what the line sets over them.
struct JobLine {
  int line = 0;  // 1-based line number in the file
  JobParams params;
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

std::vector<JobLine> parse_prompt_file(std::istream& in, PromptFormat format,
                                       const std::string& label, const JobParams& defaults);
// Reads `path` ("-": standard input).
std::vector<JobLine> read_prompt_file(const std::string& path, const std::string& format,
                                      const JobParams& defaults);

// POSIX shell-like splitting as Python's shlex.split (quotes, backslash escapes). Throws
// std::invalid_argument on an unterminated quote or a trailing backslash.
std::vector<std::string> shell_split(const std::string& line);

}  // namespace sdgen
