// The parameter schema's building blocks, shared by the files that declare parameters
// (params.cpp, params_image.cpp). Private to src/job.
#pragma once
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sdgen/job/params.h"

namespace sdgen::params_detail {

using json = nlohmann::json;
using Fields = std::vector<std::pair<std::string, std::string>>;

[[noreturn]] inline void bad(const std::string& what) { throw std::invalid_argument(what); }

inline int64_t whole_number(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || std::isspace(s[0]))
    bad("must be a whole number, got '" + s + "'");
  return v;
}

inline double finite_number(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || std::isspace(s[0]))
    bad("must be a number, got '" + s + "'");
  return v;
}

// Text as a parameter takes it: anything but NUL bytes (which C strings, file names and the
// PNG text chunk cannot hold).
inline const std::string& text_value(const std::string& t) {
  if (t.find('\0') != std::string::npos) bad("must not contain a NUL byte");
  return t;
}

inline int in_range(int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    bad("must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
        std::to_string(v));
  return static_cast<int>(v);
}

// The JSON value as the text set_text reads, after checking its type.
inline std::string json_text(ParamType type, const json& v) {
  auto wrong = [&](const char* want) {
    const std::string text = v.dump();
    std::string got = v.type_name();
    if (text != got) got += " " + (text.size() > 60 ? text.substr(0, 57) + "..." : text);
    bad(std::string("must be ") + want + ", got " + got);  // "got null", "got string \"7\""
  };
  switch (type) {
    case ParamType::kInt:
    case ParamType::kSeed:
      if (!v.is_number_integer()) wrong("an integer");
      return v.dump();
    case ParamType::kNumber:
      if (!v.is_number()) wrong("a number");
      return v.dump();
    case ParamType::kText:
    case ParamType::kName:
    case ParamType::kSize:
      if (!v.is_string()) wrong("a string");
      return v.get<std::string>();
  }
  return "";
}

struct SpecBuilder {
  ParamSpec s;
  SpecBuilder(std::string name, ParamType type, std::string cli, std::string help) {
    s.name = std::move(name);
    s.type = type;
    s.cli = std::move(cli);
    s.help = std::move(help);
  }
  SpecBuilder& short_flag(std::string f) { return s.cli_short = std::move(f), *this; }
  SpecBuilder& a1111(std::vector<std::string> names) { return s.a1111 = std::move(names), *this; }
  SpecBuilder& json_key(std::string k) { return s.json = std::move(k), *this; }
  SpecBuilder& infotext(std::string label) { return s.infotext = std::move(label), *this; }
  SpecBuilder& default_text(std::string d) { return s.default_text = std::move(d), *this; }
  ParamSpec done() {
    const ParamType type = s.type;
    auto set_text = s.set_text;
    const std::string name = s.name;
    if (!s.set_json)
      s.set_json = [type, set_text, name](JobParams& j, const json& v) {
        std::string text;
        try {
          text = json_text(type, v);
        } catch (const std::invalid_argument& e) {
          bad("'" + name + "' " + e.what());
        }
        try {
          set_text(j, text);
        } catch (const std::invalid_argument& e) {
          bad(name + " " + e.what());
        }
      };
    if (!s.set_a1111)
      s.set_a1111 = [set_text](JobParams& j, const std::string&, const std::string& text) {
        set_text(j, text);
      };
    if (!s.check) s.check = [](const GenerationParams&) {};
    return s;
  }
};

// An int field of GenerationParams in [lo, hi].
inline void int_field(SpecBuilder& b, int GenerationParams::*field, int lo, int hi) {
  b.s.set_text = [=](JobParams& j, const std::string& t) {
    j.image.*field = in_range(whole_number(t), lo, hi);
  };
  b.s.check = [=](const GenerationParams& p) { in_range(p.*field, lo, hi); };
  b.s.to_json = [=](const GenerationParams& p) { return json(p.*field); };
}

inline bool same_eta(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

inline std::string size_text(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

// "AxB" (or "AXB") as two whole numbers of at most `max_digits` digits each; false when the
// text is not of that form. The one reader of sdgen's pair values (sizes, crops).
inline bool parse_number_pair(const std::string& s, std::pair<int, int>& out,
                              size_t max_digits = 6) {
  const size_t x = s.find_first_of("xX");
  auto digits = [&](const std::string& t) {
    return !t.empty() && t.size() <= max_digits &&
           t.find_first_not_of("0123456789") == std::string::npos;
  };
  if (x == std::string::npos || !digits(s.substr(0, x)) || !digits(s.substr(x + 1))) return false;
  out = {std::stoi(s.substr(0, x)), std::stoi(s.substr(x + 1))};
  return true;
}

inline std::pair<int, int> parse_size(const std::string& s) {
  std::pair<int, int> wh;
  if (!parse_number_pair(s, wh)) bad("must be WIDTHxHEIGHT, e.g. 512x768, not '" + s + "'");
  if (wh.first < 1 || wh.second < 1) bad("must be at least 1 pixel on each side, not '" + s + "'");
  return wh;
}

// The specs of img2img, inpainting and the hires fix (params_image.cpp), each group at its
// place in A1111's infotext order.
void add_image_input_specs(std::vector<ParamSpec>& v);        // denoising strength (after the size)
void add_inpaint_and_hires_specs(std::vector<ParamSpec>& v);  // mask blur ... hires

}  // namespace sdgen::params_detail
