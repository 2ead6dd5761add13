// A1111 prompt emphasis parser. The reference is AUTOMATIC1111/stable-diffusion-webui
// modules/prompt_parser.py (re_attention, re_break, parse_prompt_attention); this is a
// hand-written scanner with the same results on UTF-8 text.
#include "sdgen/text/prompt_weights.h"

#include <cctype>
#include <charconv>
#include <stdexcept>
#include <string_view>

#include "sdgen/util/utf8.h"

namespace sdgen {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// The code point that starts at s[i] and its length in bytes; invalid UTF-8 reads as U+FFFD,
// one byte long.
char32_t decode_at(std::string_view s, size_t i, size_t& len) {
  char32_t cp = 0;
  size_t skip = 1;
  len = utf8::sequence(reinterpret_cast<const unsigned char*>(s.data()), s.size(), i, &cp, &skip);
  if (len) return cp;
  len = 1;
  return kReplacement;
}

// The code point that ends just before s[i] (i > 0) and its length in bytes.
char32_t decode_before(std::string_view s, size_t i, size_t& len) {
  size_t start = i - 1;
  while (start > 0 && i - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
    --start;
  size_t n = 0;
  const char32_t cp = decode_at(s, start, n);
  if (start + n == i) {
    len = n;
    return cp;
  }
  len = 1;  // a stray byte
  return kReplacement;
}

// Python's str.isspace(), which is what `\s` matches in a str pattern.
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Python's `\w` for str patterns (alphanumeric in the Unicode sense, or '_'): exact for ASCII
// and Latin-1; above that, the common punctuation and symbol blocks count as non-word and
// everything else as word (letters, digits, ideographs).
bool is_word(char32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  if (c < 0x100)
    return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
           (c >= 0xBC && c <= 0xBE) || (c >= 0xC0 && c != 0xD7 && c != 0xF7);
  if (c >= 0x300 && c <= 0x36F) return false;    // combining diacritical marks
  if (c >= 0x2000 && c <= 0x206F) return false;  // general punctuation, spaces
  if (c >= 0x20A0 && c <= 0x20CF) return false;  // currency symbols
  if (c >= 0x2190 && c <= 0x23FF) return false;  // arrows, mathematical operators, technical
  if (c >= 0x2400 && c <= 0x245F) return false;  // control pictures, OCR
  if (c >= 0x2500 && c <= 0x2775) return false;  // box drawing, shapes, symbols, dingbats
  if (c >= 0x2794 && c <= 0x27BF) return false;  // dingbats (after the circled digits)
  if (c >= 0x2E00 && c <= 0x2E7F) return false;  // supplemental punctuation
  if ((c >= 0x3000 && c <= 0x3004) || (c >= 0x3008 && c <= 0x3020) || c == 0x3030)
    return false;                                // CJK symbols and punctuation
  if (c >= 0xE000 && c <= 0xF8FF) return false;  // private use
  if (c >= 0xFE30 && c <= 0xFE4F) return false;  // CJK compatibility forms
  if ((c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
      (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65))
    return false;  // full-width punctuation
  if (c >= 0x1F000 && c <= 0x1FAFF && !(c >= 0x1F100 && c <= 0x1F10C))
    return false;  // emoji and pictographs
  return c != kReplacement;
}

bool is_special(char c) {
  return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':';
}

bool is_escapable(char c) { return c == '(' || c == ')' || c == '[' || c == ']' || c == '\\'; }

// Appends `text` to `res` with weight 1, split at A1111's re_break (\s*\bBREAK\b\s*) with a
// break run between the parts (so a text holding no BREAK is one run, possibly empty).
void add_text(std::string_view text, std::vector<PromptRun>& res) {
  static constexpr std::string_view kBreak = "BREAK";
  const size_t n = text.size();
  size_t part_start = 0;  // start of the part not yet appended; also where the search resumes
  size_t k = text.find(kBreak, part_start);
  while (k != std::string_view::npos) {
    size_t len = 0;
    const size_t after = k + kBreak.size();
    const bool bound_before = k == 0 || !is_word(decode_before(text, k, len));
    const bool bound_after = after == n || !is_word(decode_at(text, after, len));
    if (!bound_before || !bound_after) {
      k = text.find(kBreak, k + 1);
      continue;
    }
    // The match takes the whitespace on either side (never reaching back before the search
    // start, which is the end of the previous match).
    size_t begin = k;
    while (begin > part_start) {
      const char32_t c = decode_before(text, begin, len);
      if (!is_space(c)) break;
      begin -= len;
    }
    size_t end = after;
    while (end < n) {
      const char32_t c = decode_at(text, end, len);
      if (!is_space(c)) break;
      end += len;
    }
    res.push_back({std::string(text.substr(part_start, begin - part_start)), 1.0});
    res.push_back({"BREAK", -1.0});
    part_start = end;
    k = text.find(kBreak, part_start);
  }
  res.push_back({std::string(text.substr(part_start)), 1.0});
}

// At text[i] == ':', A1111's `:\s*([+-]?[.\d]+)\s*\)`. On a match sets `end` (one past the
// ')') and `number` (the captured group).
bool match_weight(std::string_view text, size_t i, size_t& end, std::string_view& number) {
  const size_t n = text.size();
  size_t j = i + 1, len = 0;
  while (j < n && is_space(decode_at(text, j, len))) j += len;
  const size_t num_begin = j;
  if (j < n && (text[j] == '+' || text[j] == '-')) ++j;
  const size_t digits_begin = j;
  while (j < n && (text[j] == '.' || (text[j] >= '0' && text[j] <= '9'))) ++j;
  if (j == digits_begin) return false;
  const size_t num_end = j;
  while (j < n && is_space(decode_at(text, j, len))) j += len;
  if (j >= n || text[j] != ')') return false;
  end = j + 1;
  number = text.substr(num_begin, num_end - num_begin);
  return true;
}

// Python's float() of a string matching [+-]?[.0-9]+: correctly rounded, and a ValueError
// (here std::invalid_argument) unless there is at most one '.' and at least one digit.
double parse_weight(std::string_view number, std::string_view match) {
  bool negative = false;
  std::string_view body = number;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  size_t dots = 0, digits = 0;
  for (char c : body) (c == '.' ? dots : digits) += 1;
  double v = 0;
  const char* last = body.data() + body.size();
  std::from_chars_result r{};
  if (dots <= 1 && digits >= 1) r = std::from_chars(body.data(), last, v);
  if (dots > 1 || digits == 0 || r.ec != std::errc() || r.ptr != last)
    throw std::invalid_argument("prompt: '" + std::string(match) + "': '" + std::string(number) +
                                "' is not a number (write the weight like (word:1.2))");
  return negative ? -v : v;
}

}  // namespace

bool is_break(const PromptRun& run) { return run.weight == -1.0 && run.text == "BREAK"; }

std::vector<PromptRun> parse_prompt_attention(const std::string& prompt) {
  const std::string_view text = prompt;
  constexpr double kRoundMultiplier = 1.1;
  constexpr double kSquareMultiplier = 1 / 1.1;
  std::vector<PromptRun> res;
  std::vector<size_t> round_brackets, square_brackets;  // indices into res where they opened
  auto multiply_range = [&](size_t start, double multiplier) {
    for (size_t p = start; p < res.size(); ++p) res[p].weight *= multiplier;
  };
  auto pop = [](std::vector<size_t>& stack) {
    const size_t v = stack.back();
    stack.pop_back();
    return v;
  };

  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const char c = text[i];
    if (c == '\\') {  // "\(" "\)" "\[" "\]" "\\" give the character; a lone "\" gives ""
      const bool escape = i + 1 < n && is_escapable(text[i + 1]);
      res.push_back({escape ? std::string(1, text[i + 1]) : std::string(), 1.0});
      i += escape ? 2 : 1;
    } else if (c == '(') {
      round_brackets.push_back(res.size());
      ++i;
    } else if (c == '[') {
      square_brackets.push_back(res.size());
      ++i;
    } else if (c == ':') {
      size_t end = 0;
      std::string_view number;
      if (!match_weight(text, i, end, number)) {
        add_text(":", res);
        ++i;
        continue;
      }
      const std::string_view match = text.substr(i, end - i);
      if (round_brackets.empty()) {
        add_text(match, res);  // ":1.2)" with no "(" open is text
      } else {
        const size_t start = pop(round_brackets);
        multiply_range(start, parse_weight(number, match));
      }
      i = end;
    } else if (c == ')' && !round_brackets.empty()) {
      multiply_range(pop(round_brackets), kRoundMultiplier);
      ++i;
    } else if (c == ']' && !square_brackets.empty()) {
      multiply_range(pop(square_brackets), kSquareMultiplier);
      ++i;
    } else if (c == ')' || c == ']') {  // nothing to close: text
      add_text(text.substr(i, 1), res);
      ++i;
    } else {
      size_t j = i;
      while (j < n && !is_special(text[j])) ++j;
      add_text(text.substr(i, j - i), res);
      i = j;
    }
  }
  // Brackets still open close at the end: the round ones first, outermost first.
  for (size_t pos : round_brackets) multiply_range(pos, kRoundMultiplier);
  for (size_t pos : square_brackets) multiply_range(pos, kSquareMultiplier);

  if (res.empty()) res.push_back({"", 1.0});
  // Merge runs of identical weights.
  std::vector<PromptRun> merged;
  merged.reserve(res.size());
  for (auto& r : res) {
    if (!merged.empty() && merged.back().weight == r.weight)
      merged.back().text += r.text;
    else
      merged.push_back(std::move(r));
  }
  return merged;
}

Emphasis parse_emphasis(const std::string& name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "a1111" || lower == "original") return Emphasis::kA1111;
  if (lower == "none") return Emphasis::kNone;
  throw std::invalid_argument("emphasis must be a1111 or none, not '" + name + "'");
}

const char* emphasis_name(Emphasis e) { return e == Emphasis::kNone ? "none" : "a1111"; }

const char* emphasis_a1111_label(Emphasis e) { return e == Emphasis::kNone ? "None" : "Original"; }

std::vector<PromptRun> parse_prompt(const std::string& prompt, Emphasis mode) {
  if (mode == Emphasis::kNone) return {{prompt, 1.0}};
  return parse_prompt_attention(prompt);
}

}  // namespace sdgen
