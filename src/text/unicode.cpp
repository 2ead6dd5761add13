#include "text/unicode.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace sdgen {
namespace unicode {
namespace {

struct CodeRange {
  uint32_t lo, hi;
};
// lower(cp) = cp + delta for cp = lo, lo + stride, ..., hi.
struct LowerRun {
  uint32_t lo, hi;
  int32_t delta;
  uint32_t stride;
};
struct LowerMulti {
  uint32_t cp;
  uint32_t to[3];  // zero-terminated
};

#include "text/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t cp) {
  const uint32_t c = static_cast<uint32_t>(cp);
  // first range whose hi >= c
  const CodeRange* it = std::lower_bound(std::begin(table), std::end(table), c,
                                         [](const CodeRange& r, uint32_t v) { return r.hi < v; });
  return it != std::end(table) && it->lo <= c;
}

constexpr char32_t kReplacement = 0xFFFD;
constexpr char32_t kCapitalSigma = 0x3A3;
constexpr char32_t kSmallSigma = 0x3C3;
constexpr char32_t kFinalSigma = 0x3C2;

bool is_cased(char32_t cp) { return in_ranges(kCasedRanges, cp); }
bool is_case_ignorable(char32_t cp) { return in_ranges(kCaseIgnorableRanges, cp); }

}  // namespace

// The length of the well-formed UTF-8 sequence at s[i], or 0 when it is ill-formed; in that
// case *skip is the length of the maximal ill-formed subpart to replace by one U+FFFD.
size_t utf8_sequence(const unsigned char* s, size_t n, size_t i, char32_t* cp, size_t* skip) {
  const unsigned char b0 = s[i];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  char32_t value;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    value = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    value = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    *skip = 1;  // a continuation byte, C0, C1 or F5..FF
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= n) {
      *skip = k;
      return 0;
    }
    const unsigned char b = s[i + k];
    const unsigned char allowed_lo = k == 1 ? lo : 0x80, allowed_hi = k == 1 ? hi : 0xBF;
    if (b < allowed_lo || b > allowed_hi) {
      *skip = k;
      return 0;
    }
    value = (value << 6) | (b & 0x3F);
  }
  *cp = value;
  return len;
}

namespace {}  // namespace

std::u32string decode_utf8(const std::string& str) {
  std::u32string out;
  out.reserve(str.size());
  const auto* s = reinterpret_cast<const unsigned char*>(str.data());
  const size_t n = str.size();
  size_t i = 0;
  while (i < n) {
    char32_t cp = 0;
    size_t skip = 1;
    const size_t len = utf8_sequence(s, n, i, &cp, &skip);
    if (len) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(kReplacement);
      i += skip;
    }
  }
  return out;
}

bool is_valid_utf8(const std::string& str, size_t* bad_offset) {
  const auto* s = reinterpret_cast<const unsigned char*>(str.data());
  const size_t n = str.size();
  size_t i = 0;
  while (i < n) {
    char32_t cp = 0;
    size_t skip = 1;
    const size_t len = utf8_sequence(s, n, i, &cp, &skip);
    if (!len) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

void append_utf8(std::string& out, char32_t cp) {
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = kReplacement;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) append_utf8(out, cp);
  return out;
}

bool is_letter(char32_t cp) { return in_ranges(kLetterRanges, cp); }
bool is_number(char32_t cp) { return in_ranges(kNumberRanges, cp); }
bool is_space(char32_t cp) { return in_ranges(kPySpaceRanges, cp); }
bool is_regex_space(char32_t cp) { return in_ranges(kRegexSpaceRanges, cp); }

char32_t simple_lower(char32_t cp) {
  const uint32_t c = static_cast<uint32_t>(cp);
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  for (const LowerMulti& m : kLowerMulti) {
    if (m.cp == c) return m.to[0];
  }
  const LowerRun* it = std::lower_bound(std::begin(kLowerRuns), std::end(kLowerRuns), c,
                                        [](const LowerRun& r, uint32_t v) { return r.hi < v; });
  if (it == std::end(kLowerRuns) || it->lo > c || (c - it->lo) % it->stride != 0) return cp;
  return static_cast<char32_t>(static_cast<int64_t>(c) + it->delta);
}

std::u32string to_lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    const char32_t c = s[i];
    if (c == kCapitalSigma) {
      // CPython's handle_capital_sigma: \p{cased} \p{case-ignorable}* U+03A3
      // !(\p{case-ignorable}* \p{cased})
      size_t j = i;
      while (j > 0 && is_case_ignorable(s[j - 1])) --j;
      bool final_sigma = j > 0 && is_cased(s[j - 1]);
      if (final_sigma) {
        size_t k = i + 1;
        while (k < n && is_case_ignorable(s[k])) ++k;
        final_sigma = k == n || !is_cased(s[k]);
      }
      out.push_back(final_sigma ? kFinalSigma : kSmallSigma);
      continue;
    }
    bool multi = false;
    if (c >= 0x80) {
      for (const LowerMulti& m : kLowerMulti) {
        if (m.cp == static_cast<uint32_t>(c)) {
          for (uint32_t t : m.to) {
            if (!t) break;
            out.push_back(static_cast<char32_t>(t));
          }
          multi = true;
          break;
        }
      }
    }
    if (!multi) out.push_back(simple_lower(c));
  }
  return out;
}

std::u32string strip(const std::u32string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace unicode
}  // namespace sdgen
