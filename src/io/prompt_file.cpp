#include "sdgen/io/prompt_file.h"

#include <cmath>
#include <fstream>
#include <iostream>
#include <map>

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

int64_t parse_int(const std::string& s, const std::string& label, int line,
                  const std::string& key) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size())
    fail(label, line, key + " must be a whole number, got '" + s + "'");
  return v;
}

double parse_float(const std::string& s, const std::string& label, int line,
                   const std::string& key) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size() || !std::isfinite(v))
    fail(label, line, key + " must be a number, got '" + s + "'");
  return v;
}

int positive(int64_t v, const std::string& label, int line, const std::string& key) {
  if (v < 1 || v > 1000000)
    fail(label, line, key + " must be between 1 and 1000000, got " + std::to_string(v));
  return static_cast<int>(v);
}

int64_t seed_value(int64_t v, const std::string& label, int line) {
  if (v < -1) fail(label, line, "seed must be -1 (random) or >= 0, got " + std::to_string(v));
  return v;
}

void set_size(JobSpec& j, const std::string& text, const std::string& label, int line) {
  try {
    auto [w, h] = parse_size_text(text);
    j.width = w;
    j.height = h;
  } catch (const std::invalid_argument& e) {
    fail(label, line, e.what());
  }
}

JobSpec parse_jsonl_line(const std::string& text, const std::string& label, int line) {
  nlohmann::json obj;
  try {
    obj = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(label, line, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!obj.is_object())
    fail(label, line, "expected a JSON object {...}, got " + std::string(obj.type_name()));
  JobSpec j;
  j.line = line;
  auto type_error = [&](const std::string& key, const char* want, const nlohmann::json& v) {
    fail(label, line, "'" + key + "' must be " + want + ", got " + v.type_name() + " " + v.dump());
  };
  auto str = [&](const std::string& key, const nlohmann::json& v) {
    if (!v.is_string()) type_error(key, "a string", v);
    return v.get<std::string>();
  };
  auto integer = [&](const std::string& key, const nlohmann::json& v) -> int64_t {
    if (!v.is_number_integer()) type_error(key, "an integer", v);
    return v.get<int64_t>();
  };
  for (const auto& [key, v] : obj.items()) {
    if (key == "prompt") {
      j.prompt = str(key, v);
    } else if (key == "negative_prompt") {
      j.negative_prompt = str(key, v);
    } else if (key == "sampler") {
      j.sampler = str(key, v);
    } else if (key == "scheduler") {
      j.scheduler = str(key, v);
    } else if (key == "output") {
      j.output = str(key, v);
    } else if (key == "size") {
      set_size(j, str(key, v), label, line);
    } else if (key == "seed") {
      if (v.is_number_unsigned()) {
        j.seed = static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), INT64_MAX));
      } else {
        j.seed = seed_value(integer(key, v), label, line);
      }
    } else if (key == "steps") {
      j.steps = positive(integer(key, v), label, line, key);
    } else if (key == "batch_count") {
      j.batch_count = positive(integer(key, v), label, line, key);
    } else if (key == "clip_skip") {
      j.clip_skip = positive(integer(key, v), label, line, key);
    } else if (key == "cfg_scale") {
      if (!v.is_number()) type_error(key, "a number", v);
      j.cfg_scale = v.get<double>();
    } else {
      fail(label, line,
           "unknown key '" + key +
               "'; known: prompt, negative_prompt, seed, steps, cfg_scale, size, sampler, "
               "scheduler, batch_count, clip_skip, output");
    }
  }
  return j;
}

// A1111 scripts/prompts_from_file.py: "--tag value" pairs; --prompt and --negative_prompt take
// every following word up to the next "--".
JobSpec parse_a1111_line(const std::string& text, const std::string& label, int line) {
  JobSpec j;
  j.line = line;
  std::vector<std::string> args;
  try {
    args = shell_split(text);
  } catch (const std::invalid_argument& e) {
    fail(label, line, e.what());
  }
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
  int n_iter = 1, batch_size = 1;
  bool count_given = false;
  size_t pos = 0;
  while (pos < args.size()) {
    const std::string& arg = args[pos];
    if (arg.rfind("--", 0) != 0)
      fail(label, line, "expected an option starting with \"--\", got '" + arg + "'");
    if (pos + 1 >= args.size()) fail(label, line, "missing value for " + arg);
    const std::string tag = arg.substr(2);
    if (tag == "prompt" || tag == "negative_prompt") {
      std::string value = args[++pos];
      ++pos;
      while (pos < args.size() && args[pos].rfind("--", 0) != 0) value += " " + args[pos++];
      (tag == "prompt" ? j.prompt : j.negative_prompt) = value;
      continue;
    }
    const std::string& val = args[pos + 1];
    if (tag == "seed") {
      j.seed = seed_value(parse_int(val, label, line, tag), label, line);
    } else if (tag == "steps") {
      j.steps = positive(parse_int(val, label, line, tag), label, line, tag);
    } else if (tag == "cfg_scale") {
      j.cfg_scale = parse_float(val, label, line, tag);
    } else if (tag == "width") {
      j.width = positive(parse_int(val, label, line, tag), label, line, tag);
    } else if (tag == "height") {
      j.height = positive(parse_int(val, label, line, tag), label, line, tag);
    } else if (tag == "sampler_name") {
      j.sampler = val;  // an A1111 label such as "DPM++ 2M Karras"; resolved with the samplers
    } else if (tag == "n_iter") {
      n_iter = positive(parse_int(val, label, line, tag), label, line, tag);
      count_given = true;
    } else if (tag == "batch_size") {
      batch_size = positive(parse_int(val, label, line, tag), label, line, tag);
      count_given = true;
    } else if (auto it = ignored.find(tag); it != ignored.end()) {
      j.warnings.push_back("--" + tag + " ignored (" + it->second + ")");
    } else {
      fail(label, line, "unknown option --" + tag);
    }
    pos += 2;
  }
  // A1111 makes n_iter batches of batch_size images: that many images of this prompt.
  if (count_given) j.batch_count = n_iter * batch_size;
  return j;
}

}  // namespace

std::pair<int, int> parse_size_text(const std::string& s) {
  const size_t x = s.find_first_of("xX");
  auto digits = [](const std::string& t) {
    return !t.empty() && t.size() <= 6 && t.find_first_not_of("0123456789") == std::string::npos;
  };
  if (x == std::string::npos || !digits(s.substr(0, x)) || !digits(s.substr(x + 1)))
    throw std::invalid_argument("size must be WIDTHxHEIGHT, e.g. 512x768, not '" + s + "'");
  return {std::stoi(s.substr(0, x)), std::stoi(s.substr(x + 1))};
}

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

std::vector<JobSpec> parse_prompt_file(std::istream& in, PromptFormat format,
                                       const std::string& label) {
  std::vector<JobSpec> jobs;
  std::string raw;
  int line = 0;
  while (std::getline(in, raw)) {
    ++line;
    if (line == 1 && raw.rfind("\xEF\xBB\xBF", 0) == 0) raw.erase(0, 3);  // UTF-8 BOM
    const std::string text = trim(raw);
    if (text.empty()) continue;
    switch (format) {
      case PromptFormat::Jsonl:
        jobs.push_back(parse_jsonl_line(text, label, line));
        break;
      case PromptFormat::Txt:
      case PromptFormat::A1111:
        if (text[0] == '#') continue;
        // As A1111: a line with option syntax is options; any other line is a prompt.
        if (text.rfind("--", 0) == 0) {
          jobs.push_back(parse_a1111_line(text, label, line));
        } else {
          JobSpec j;
          j.line = line;
          j.prompt = text;
          jobs.push_back(j);
        }
        break;
    }
  }
  if (in.bad()) throw PromptFileError(label + ": read error");
  if (jobs.empty())
    throw PromptFileError(label + ": no prompts (every line is blank or a comment)");
  return jobs;
}

std::vector<JobSpec> read_prompt_file(const std::string& path, const std::string& format) {
  const PromptFormat f = prompt_format(path, format);
  if (path == "-") return parse_prompt_file(std::cin, f, "<stdin>");
  std::ifstream in(path);
  if (!in) throw PromptFileError(path + ": cannot open the prompt file");
  return parse_prompt_file(in, f, path);
}

}  // namespace sdgen
