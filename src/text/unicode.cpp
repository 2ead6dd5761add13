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

constexpr char32_t kCapitalSigma = 0x3A3;
constexpr char32_t kSmallSigma = 0x3C3;
constexpr char32_t kFinalSigma = 0x3C2;

bool is_cased(char32_t cp) { return in_ranges(kCasedRanges, cp); }
bool is_case_ignorable(char32_t cp) { return in_ranges(kCaseIgnorableRanges, cp); }

}  // namespace

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
