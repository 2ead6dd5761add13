#include "sdgen/util/utf8.h"

namespace sdgen::utf8 {
namespace {
constexpr char32_t kReplacement = 0xFFFD;
}  // namespace

size_t sequence(const unsigned char* s, size_t n, size_t i, char32_t* cp, size_t* skip) {
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

std::u32string decode(const std::string& str) {
  std::u32string out;
  out.reserve(str.size());
  const auto* s = reinterpret_cast<const unsigned char*>(str.data());
  const size_t n = str.size();
  for (size_t i = 0; i < n;) {
    char32_t cp = 0;
    size_t skip = 1;
    if (const size_t len = sequence(s, n, i, &cp, &skip)) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(kReplacement);
      i += skip;
    }
  }
  return out;
}

size_t first_invalid(const unsigned char* s, size_t n) {
  for (size_t i = 0; i < n;) {
    char32_t cp = 0;
    size_t skip = 1;
    const size_t len = sequence(s, n, i, &cp, &skip);
    if (!len) return i;
    i += len;
  }
  return n;
}

void append(std::string& out, char32_t cp) {
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

std::string encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) append(out, cp);
  return out;
}

}  // namespace sdgen::utf8
