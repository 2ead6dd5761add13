// The text side of openai/CLIP's SimpleTokenizer.encode: html.unescape, basic and whitespace
// cleaning, lower-casing, and its splitting regex (clip_text_clean.h).
#include "text/clip_text_clean.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "text/unicode.h"

namespace sdgen::clip_text {
namespace {

struct HtmlEntity {
  const char* name;   // with or without the trailing ';'
  const char* value;  // UTF-8
};
struct CodeRange {
  uint32_t lo, hi;
};

#include "text/html_entities.inc"

// ---------------------------------------------------------------- html.unescape

const char* find_entity(const std::u32string& s, size_t begin, size_t end) {
  std::string name;
  name.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    if (s[i] >= 0x80) return nullptr;  // every entity name is ASCII
    name.push_back(static_cast<char>(s[i]));
  }
  const HtmlEntity* first = std::begin(kHtmlEntities);
  const HtmlEntity* last = std::end(kHtmlEntities);
  const HtmlEntity* it =
      std::lower_bound(first, last, name, [](const HtmlEntity& e, const std::string& key) {
        return std::strcmp(e.name, key.c_str()) < 0;
      });
  if (it != last && name == it->name) return it->value;
  return nullptr;
}

void append_utf8_string(std::u32string& out, const char* utf8) { out += utf8::decode(utf8); }

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char32_t c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char32_t c) {
  if (is_digit(c)) return static_cast<int>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<int>(c - 'a' + 10);
  return static_cast<int>(c - 'A' + 10);
}

// Python's html._replace_charref for a numeric reference with value `num` (saturated).
void append_numeric_charref(std::u32string& out, uint32_t num) {
  for (const auto& r : kHtmlInvalidCharrefs) {
    if (r[0] == num) {
      out.push_back(static_cast<char32_t>(r[1]));
      return;
    }
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(0xFFFD);
    return;
  }
  for (const CodeRange& r : kHtmlInvalidCodepoints) {
    if (num >= r.lo && num <= r.hi) return;  // dropped
  }
  out.push_back(static_cast<char32_t>(num));
}

// Python's html.unescape: every match of
//   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
// is replaced as html._replace_charref does.
std::u32string html_unescape_u32(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    const size_t j = i + 1;
    if (j < n && s[j] == U'#') {
      size_t k = j + 1;
      const bool hex =
          k < n && (s[k] == U'x' || s[k] == U'X') && k + 1 < n && is_hex_digit(s[k + 1]);
      const bool dec = k < n && is_digit(s[k]);
      if (!dec && !hex) {  // "&#" followed by no digits: no reference here
        out.push_back(s[i++]);
        continue;
      }
      const uint32_t kBig = 0x110000;  // anything above U+10FFFF behaves the same
      uint32_t num = 0;
      if (dec) {
        for (; k < n && is_digit(s[k]); ++k) {
          num = std::min<uint32_t>(kBig, num * 10 + static_cast<uint32_t>(s[k] - U'0'));
        }
      } else {
        for (k += 1; k < n && is_hex_digit(s[k]); ++k) {
          num = std::min<uint32_t>(kBig, num * 16 + static_cast<uint32_t>(hex_value(s[k])));
        }
      }
      if (k < n && s[k] == U';') ++k;
      append_numeric_charref(out, num);
      i = k;
      continue;
    }
    // named reference: [^\t\n\f <&#;]{1,32};?
    size_t k = j;
    while (k < n && k - j < 32 && s[k] != U'\t' && s[k] != U'\n' && s[k] != U'\f' && s[k] != U' ' &&
           s[k] != U'<' && s[k] != U'&' && s[k] != U'#' && s[k] != U';') {
      ++k;
    }
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < n && s[k] == U';') ++k;
    // s[j, k) is the name, with its ';' if any
    if (const char* value = find_entity(s, j, k)) {
      append_utf8_string(out, value);
    } else {
      // the longest prefix that is a name (as the HTML5 standard and Python do)
      bool found = false;
      for (size_t x = k - j - 1; x >= 2; --x) {
        if (const char* v = find_entity(s, j, j + x)) {
          append_utf8_string(out, v);
          out.append(s, j + x, k - (j + x));
          found = true;
          break;
        }
      }
      if (!found) out.append(s, i, k - i);
    }
    i = k;
  }
  return out;
}

// ---------------------------------------------------------------- cleaning and splitting

std::u32string clean_text_u32(const std::string& text) {
  std::u32string t = utf8::decode(text);
  // basic_clean: ftfy.fix_text(text) is skipped on purpose (no C++ ftfy). Every case of the
  // reference data is unaffected: their ids are the same with and without ftfy (ftfy would
  // also unescape HTML, which happens next anyway). It differs for mojibake, curly quotes,
  // full-width forms, ligatures, non-NFC text and control characters.
  t = html_unescape_u32(html_unescape_u32(t));
  t = unicode::strip(t);
  // whitespace_clean: regex.sub(r'\s+', ' ', text).strip()
  std::u32string collapsed;
  collapsed.reserve(t.size());
  for (size_t i = 0; i < t.size();) {
    if (unicode::is_regex_space(t[i])) {
      while (i < t.size() && unicode::is_regex_space(t[i])) ++i;
      collapsed.push_back(U' ');
    } else {
      collapsed.push_back(t[i++]);
    }
  }
  // lower()
  return unicode::to_lower(unicode::strip(collapsed));
}

enum class CharClass { kSkip, kLetter, kNumber, kOther };

CharClass classify(char32_t c) {
  // With IGNORECASE the `regex` module matches U+0345 (combining ypogegrammeni, whose case
  // partners are letters) with none of [\p{L}], [\p{N}], [^\s\p{L}\p{N}]: it is dropped.
  if (c == 0x345 || unicode::is_regex_space(c)) return CharClass::kSkip;
  if (unicode::is_letter(c)) return CharClass::kLetter;
  if (unicode::is_number(c)) return CharClass::kNumber;
  return CharClass::kOther;
}

// Case-insensitive match of the ASCII literal `lit` at s[i] with the `regex` module's simple
// case folding (after lower() only U+017F LONG S and U+212A KELVIN SIGN can still matter).
size_t match_literal(const std::u32string& s, size_t i, const char* lit) {
  const size_t len = std::strlen(lit);
  if (i + len > s.size()) return 0;
  for (size_t k = 0; k < len; ++k) {
    const char32_t c = s[i + k];
    const char32_t p = static_cast<unsigned char>(lit[k]);
    if (c == p) continue;
    if (p >= 'a' && p <= 'z') {
      if (c == p - 32) continue;
      if (p == 's' && c == 0x17F) continue;
      if (p == 'k' && c == 0x212A) continue;
    }
    return 0;
  }
  return len;
}

// regex.findall(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"
//               r"[^\s\p{L}\p{N}]+", text, regex.IGNORECASE), as UTF-8 pieces.
std::vector<std::string> split_words(const std::u32string& t) {
  static const char* const kLiterals[] = {
      "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::string> pieces;
  const size_t n = t.size();
  size_t i = 0;
  while (i < n) {
    size_t len = 0;
    if (t[i] == U'<' || t[i] == U'\'') {
      for (const char* lit : kLiterals) {
        if ((len = match_literal(t, i, lit)) != 0) break;
      }
    }
    if (!len) {
      const CharClass cls = classify(t[i]);
      if (cls == CharClass::kSkip) {
        ++i;
        continue;
      }
      size_t j = i + 1;
      if (cls != CharClass::kNumber) {  // every digit is its own piece
        while (j < n && classify(t[j]) == cls) ++j;
      }
      len = j - i;
    }
    pieces.push_back(utf8::encode(t.substr(i, len)));
    i += len;
  }
  return pieces;
}

}  // namespace

std::u32string unescape_html(const std::u32string& s) { return html_unescape_u32(s); }
std::u32string clean_text(const std::string& text) { return clean_text_u32(text); }
std::vector<std::string> words(const std::u32string& cleaned) { return split_words(cleaned); }

}  // namespace sdgen::clip_text
