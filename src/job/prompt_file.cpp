#include "sdgen/job/prompt_file.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

namespace sdgen {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n\f\v");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n\f\v") - b + 1);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

[[noreturn]] void fail(const std::string& label, int line, const std::string& what) {
  throw PromptFileError(label + ":" + std::to_string(line) + ": " + what);
}

// Paths a line gives (init image, mask) are relative to the prompt file's folder, so that a
// file and its images move together; standard input's are relative to the working folder.
void rebase_paths(JobParams& p, const std::set<std::string>& set_here, const std::string& label) {
  if (label == "<stdin>") return;
  const std::string base = std::filesystem::path(label).parent_path().string();
  for (const auto& s : param_specs())
    if (s.rebase_path && set_here.count(s.name)) s.rebase_path(p, base);
}

// A line that names a sampler but no scheduler lets an A1111 sampler label choose the
// schedule, whatever the command line said (the line's sampler replaced the command line's).
void note_sampler_level(JobParams& p, const std::set<std::string>& set_here) {
  if (set_here.count("sampler") && !set_here.count("scheduler")) p.scheduler_explicit = false;
}

JobLine parse_jsonl_line(const std::string& text, const std::string& label, int line,
                         const JobParams& defaults) {
  nlohmann::json obj;
  try {
    obj = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // without the library's "[json.exception.parse_error.101] " tag; a number beyond double
    // range ("1e400") is an out_of_range error there
    std::string what = e.what();
    if (what.rfind("[json.exception.", 0) == 0 && what.find("] ") != std::string::npos)
      what = what.substr(what.find("] ") + 2);
    if (e.id == 406) what += "; numbers must fit in a 64-bit float";
    fail(label, line, "not valid JSON: " + what);
  }
  if (!obj.is_object())
    fail(label, line, "expected a JSON object {...}, got " + std::string(obj.type_name()));
  JobLine j{line, defaults, {}};
  std::set<std::string> set_here;
  for (const auto& [key, v] : obj.items()) {
    const ParamSpec* spec = nullptr;
    for (const auto& s : param_specs())
      if (s.name == key) spec = &s;
    if (!spec) fail(label, line, "unknown key '" + key + "'; known: " + jsonl_keys());
    try {
      spec->set_json(j.params, v);
    } catch (const std::invalid_argument& e) {
      fail(label, line, e.what());
    }
    set_here.insert(key);
  }
  note_sampler_level(j.params, set_here);
  rebase_paths(j.params, set_here, label);
  return j;
}

// Why `args` is not an A1111 option line, as scripts/prompts_from_file.py's cmdargs() asserts:
// every option starts with "--" and has a value, and is one it knows. Empty when it is one.
std::string not_an_option_line(const std::vector<std::string>& args,
                               const std::map<std::string, const char*>& ignored) {
  for (size_t pos = 0; pos < args.size();) {
    const std::string& arg = args[pos];
    if (arg.rfind("--", 0) != 0) return "'" + arg + "' does not start with \"--\"";
    if (pos + 1 >= args.size()) return "no value after " + arg;
    const std::string tag = arg.substr(2);
    if (tag == "prompt" || tag == "negative_prompt") {
      for (pos += 2; pos < args.size() && args[pos].rfind("--", 0) != 0;) ++pos;
      continue;
    }
    bool known = tag == "n_iter" || tag == "batch_size" || ignored.count(tag);
    for (const auto& s : param_specs())
      for (const auto& name : s.a1111) known |= name == tag;
    if (!known) return "unknown option " + arg;
    pos += 2;
  }
  return "";
}

// A1111 scripts/prompts_from_file.py: "--tag value" pairs; --prompt and --negative_prompt take
// every following word up to the next "--". A line that is not an option line there (no value
// after an option, an unknown option, a word without "--", unbalanced quotes) is a prompt, the
// whole line, with the reason logged: so it is here, with a warning. A bad value of a known
// option is an error (A1111 would render the line as a prompt instead).
JobLine parse_a1111_line(const std::string& text, const std::string& label, int line,
                         const JobParams& defaults) {
  JobLine j{line, defaults, {}};
  static const std::map<std::string, const char*> ignored = {
      {"sd_model", "the model is chosen with --model"},
      {"outpath_samples", "use -o"},
      {"outpath_grids", "sdgen writes no grids"},
      {"prompt_for_display", "not used"},
      {"styles", "styles are not supported"},
      {"subseed", "variation seeds are not supported"},
      {"subseed_strength", "variation seeds are not supported"},
      {"seed_resize_from_h", "not supported"},
      {"seed_resize_from_w", "not supported"},
      {"restore_faces", "not supported"},
      {"tiling", "not supported"},
      {"do_not_save_samples", "not used"},
      {"do_not_save_grid", "not used"},
      {"sampler_index", "use --sampler_name"}};
  std::vector<std::string> args;
  std::string why_not;
  try {
    args = shell_split(text);
    why_not = not_an_option_line(args, ignored);
  } catch (const std::invalid_argument& e) {
    why_not = e.what();
  }
  if (!why_not.empty()) {
    j.params.image.prompt = text;
    j.warnings.push_back("not an option line (" + why_not +
                         "): the whole line is the prompt, as in A1111's prompts_from_file");
    return j;
  }
  std::set<std::string> set_here;
  int n_iter = 1, batch_size = 1;
  bool count_given = false;
  auto set = [&](const std::string& option, const std::string& value) {
    for (const auto& s : param_specs()) {
      for (const auto& name : s.a1111) {
        if (name != option) continue;
        try {
          s.set_a1111(j.params, option, value);
        } catch (const std::invalid_argument& e) {
          fail(label, line, "--" + option + " " + e.what());
        }
        set_here.insert(s.name);
        return;
      }
    }
  };
  for (size_t pos = 0; pos < args.size();) {
    const std::string tag = args[pos].substr(2);
    if (tag == "prompt" || tag == "negative_prompt") {
      std::string value = args[++pos];
      ++pos;
      while (pos < args.size() && args[pos].rfind("--", 0) != 0) value += " " + args[pos++];
      set(tag, value);
      continue;
    }
    const std::string& val = args[pos + 1];
    if (tag == "n_iter" || tag == "batch_size") {
      // A1111 makes n_iter batches of batch_size images: that many images of this prompt.
      JobParams count;
      try {
        param_spec("batch_count").set_text(count, val);
      } catch (const std::invalid_argument& e) {
        fail(label, line, "--" + tag + " " + e.what());
      }
      (tag == "n_iter" ? n_iter : batch_size) = count.batch_count;
      count_given = true;
    } else if (auto it = ignored.find(tag); it != ignored.end()) {
      j.warnings.push_back("--" + tag + " ignored (" + it->second + ")");
    } else {
      set(tag, val);
    }
    pos += 2;
  }
  if (count_given) {
    if (static_cast<int64_t>(n_iter) * batch_size > 1000000)
      fail(label, line,
           "--n_iter x --batch_size is " + std::to_string(int64_t(n_iter) * batch_size) +
               " images; at most 1000000 per line");
    j.params.batch_count = n_iter * batch_size;
  }
  note_sampler_level(j.params, set_here);
  rebase_paths(j.params, set_here, label);
  return j;
}

}  // namespace

std::vector<std::string> shell_split(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) out.push_back(cur);
      cur.clear();
      in_word = false;
    } else if (c == '\\') {
      if (i + 1 >= line.size()) throw std::invalid_argument("a trailing backslash escapes nothing");
      cur += line[++i];
      in_word = true;
    } else if (c == '\'') {
      const size_t end = line.find('\'', i + 1);
      if (end == std::string::npos) throw std::invalid_argument("no closing quotation (')");
      cur += line.substr(i + 1, end - i - 1);
      i = end;
      in_word = true;
    } else if (c == '"') {
      size_t j = i + 1;
      for (;; ++j) {
        if (j >= line.size()) throw std::invalid_argument("no closing quotation (\")");
        if (line[j] == '"') break;
        // inside double quotes a backslash escapes only \ " $ ` (POSIX, as shlex)
        if (line[j] == '\\' && j + 1 < line.size() &&
            std::string("\\\"$`").find(line[j + 1]) != std::string::npos)
          ++j;
        cur += line[j];
      }
      i = j;
      in_word = true;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(cur);
  return out;
}

PromptFormat prompt_format(const std::string& path, const std::string& explicit_format) {
  if (explicit_format == "txt") return PromptFormat::Txt;
  if (explicit_format == "jsonl") return PromptFormat::Jsonl;
  if (explicit_format == "a1111") return PromptFormat::A1111;
  if (!explicit_format.empty())
    throw std::invalid_argument("--prompt-format must be txt, jsonl or a1111, not '" +
                                explicit_format + "'");
  return ends_with(path, ".jsonl") || ends_with(path, ".ndjson") ? PromptFormat::Jsonl
                                                                 : PromptFormat::Txt;
}

std::vector<JobLine> parse_prompt_file(std::istream& in, PromptFormat format,
                                       const std::string& label, const JobParams& defaults) {
  std::vector<JobLine> jobs;
  std::string raw;
  int line = 0;
  while (std::getline(in, raw)) {
    ++line;
    if (line == 1 && raw.rfind("\xEF\xBB\xBF", 0) == 0) raw.erase(0, 3);  // UTF-8 BOM
    const std::string text = trim(raw);
    if (text.empty()) continue;
    // (a binary file given by mistake; no prompt, path or JSON string holds one)
    if (text.find('\0') != std::string::npos)
      fail(label, line, "holds a NUL byte: is this a text file of prompts?");
    switch (format) {
      case PromptFormat::Jsonl:
        jobs.push_back(parse_jsonl_line(text, label, line, defaults));
        break;
      case PromptFormat::Txt:
      case PromptFormat::A1111:
        if (text[0] == '#') continue;
        // As A1111: a line with option syntax is options; any other line is a prompt.
        if (text.rfind("--", 0) == 0) {
          jobs.push_back(parse_a1111_line(text, label, line, defaults));
        } else {
          JobLine j{line, defaults, {}};
          j.params.image.prompt = text;
          jobs.push_back(std::move(j));
        }
        break;
    }
  }
  if (in.bad()) throw PromptFileError(label + ": read error");
  if (jobs.empty())
    throw PromptFileError(label + ": no prompts (every line is blank or a comment)");
  return jobs;
}

std::vector<JobLine> read_prompt_file(const std::string& path, const std::string& format,
                                      const JobParams& defaults) {
  const PromptFormat f = prompt_format(path, format);
  if (path == "-") return parse_prompt_file(std::cin, f, "<stdin>", defaults);
  std::ifstream in(path);
  if (!in) throw PromptFileError(path + ": cannot open the prompt file");
  return parse_prompt_file(in, f, path, defaults);
}

}  // namespace sdgen
