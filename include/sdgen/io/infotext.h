// A1111 "infotext": the generation parameters as the webuis write them into a PNG's
// `parameters` chunk, and read them back.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sdgen {

struct InfoText {
  std::string prompt;
  std::string negative_prompt;  // no "Negative prompt:" line when empty
  // Ordered "key: value" fields of the last line, e.g. {"Steps","30"}, {"Sampler","Euler a"},
  // {"CFG scale","7.5"}, {"Seed","42"}, {"Size","512x512"}, {"Model hash","abcdef0123"} ...
  std::vector<std::pair<std::string, std::string>> fields;
};

// A1111's quoting: a value holding ',', ':' or a newline is JSON-quoted (UTF-8 kept).
std::string infotext_quote(const std::string& value);
std::string format_infotext(const InfoText& info);
// The inverse of format_infotext (A1111's parse_generation_parameters), for tests and tools.
// As in A1111: a last line with fewer than 3 "key: value" matches is part of the prompt, and
// fields with an empty value are dropped.
InfoText parse_infotext(const std::string& text);
// Shortest decimal that reads back as the same double, A1111 style for floats: 7.0 -> "7",
// 7.5 -> "7.5" (Python's str() of a float without a trailing ".0").
std::string format_number(double v);

}  // namespace sdgen
