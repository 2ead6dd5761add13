// UTF-8 coding, shared by the tokenizer (text/), the PNG and infotext writers and the
// safetensors reader (io/). Well-formedness follows the Unicode standard (as Python's decoder
// and Rust's str::from_utf8): no overlong forms, no surrogates, nothing above U+10FFFF.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sdgen::utf8 {

// One step of decoding: the length of the well-formed sequence at s[i] (its code point in
// *cp), or 0 when it is ill-formed, *skip then being the length of the maximal ill-formed
// subpart that one U+FFFD stands for (Python's errors="replace").
size_t sequence(const unsigned char* s, size_t n, size_t i, char32_t* cp, size_t* skip);
// Decodes like Python's bytes.decode("utf-8", errors="replace"): every maximal ill-formed
// subsequence becomes one U+FFFD. Never throws.
std::u32string decode(const std::string& s);
// The offset of the first byte that does not start a well-formed sequence, or `n` when all of
// s[0, n) is well-formed.
size_t first_invalid(const unsigned char* s, size_t n);
inline bool is_valid(const std::string& s, size_t* bad_offset = nullptr) {
  const size_t bad = first_invalid(reinterpret_cast<const unsigned char*>(s.data()), s.size());
  if (bad_offset && bad != s.size()) *bad_offset = bad;
  return bad == s.size();
}
// Appends the UTF-8 form of `cp`; surrogates and values > U+10FFFF become U+FFFD.
void append(std::string& out, char32_t cp);
std::string encode(const std::u32string& s);

}  // namespace sdgen::utf8
