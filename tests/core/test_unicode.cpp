// Unicode helpers of the CLIP tokenizer (src/text/unicode.h, a private header of sdgen_core).
#include <gtest/gtest.h>

#include <string>

#include "../../src/text/unicode.h"

namespace u = sdgen::unicode;

TEST(Unicode, Letters) {
  EXPECT_TRUE(u::is_letter(U'a'));
  EXPECT_TRUE(u::is_letter(U'Z'));
  EXPECT_TRUE(u::is_letter(U'\u00C4'));      // Ä
  EXPECT_TRUE(u::is_letter(U'\u00DF'));      // ß
  EXPECT_TRUE(u::is_letter(U'\u03A9'));      // Ω
  EXPECT_TRUE(u::is_letter(U'\u6771'));      // 東 (CJK, Lo)
  EXPECT_TRUE(u::is_letter(U'\u3042'));      // あ
  EXPECT_TRUE(u::is_letter(U'\u02B0'));      // ʰ (Lm)
  EXPECT_TRUE(u::is_letter(U'\U00020000'));  // CJK extension B
  EXPECT_FALSE(u::is_letter(U'1'));
  EXPECT_FALSE(u::is_letter(U'_'));
  EXPECT_FALSE(u::is_letter(U'\u0301'));      // combining acute (Mn)
  EXPECT_FALSE(u::is_letter(U'\U0001F431'));  // 🐱
  EXPECT_FALSE(u::is_letter(U'\u2160'));      // Ⅰ is Nl, a number
}

TEST(Unicode, Numbers) {
  EXPECT_TRUE(u::is_number(U'0'));
  EXPECT_TRUE(u::is_number(U'9'));
  EXPECT_TRUE(u::is_number(U'\u0663'));  // ٣ ARABIC-INDIC DIGIT THREE
  EXPECT_TRUE(u::is_number(U'\u00BD'));  // ½ (No)
  EXPECT_TRUE(u::is_number(U'\u2160'));  // Ⅰ (Nl)
  EXPECT_TRUE(u::is_number(U'\uFF13'));  // full-width 3
  EXPECT_FALSE(u::is_number(U'a'));
  EXPECT_FALSE(u::is_number(U'.'));
  EXPECT_FALSE(u::is_number(U'\u4E00'));  // 一 is a letter
}

TEST(Unicode, Whitespace) {
  for (char32_t c : {U' ', U'\t', U'\n', U'\v', U'\f', U'\r', U'\u0085', U'\u00A0', U'\u1680',
                     U'\u2000', U'\u200A', U'\u2028', U'\u2029', U'\u202F', U'\u205F', U'\u3000'}) {
    EXPECT_TRUE(u::is_space(c)) << std::hex << uint32_t(c);
    EXPECT_TRUE(u::is_regex_space(c)) << std::hex << uint32_t(c);
  }
  for (char32_t c : {U'\u001C', U'\u001F'}) {  // str.isspace() only
    EXPECT_TRUE(u::is_space(c));
    EXPECT_FALSE(u::is_regex_space(c));
  }
  for (char32_t c : {U'a', U'\u200B', U'\u180E', U'\uFEFF', U'\0'}) {
    EXPECT_FALSE(u::is_space(c)) << std::hex << uint32_t(c);
    EXPECT_FALSE(u::is_regex_space(c)) << std::hex << uint32_t(c);
  }
}

TEST(Unicode, Lower) {
  auto lower = [](const std::string& s) {
    return sdgen::utf8::encode(u::to_lower(sdgen::utf8::decode(s)));
  };
  EXPECT_EQ(lower("ABC xyz 123"), "abc xyz 123");
  EXPECT_EQ(lower("\xC3\x84"), "\xC3\xA4");                  // Ä -> ä
  EXPECT_EQ(lower("\xC4\xB0"), "i\xCC\x87");                 // İ -> i + U+0307
  EXPECT_EQ(lower("\xC3\x9F"), "\xC3\x9F");                  // ß stays
  EXPECT_EQ(lower("\xE1\xBA\x9E"), "\xC3\x9F");              // ẞ -> ß
  EXPECT_EQ(lower("\xC7\x85"), "\xC7\x86");                  // ǅ -> ǆ
  EXPECT_EQ(lower("\xE2\x84\xAA"), "k");                     // KELVIN SIGN -> k
  EXPECT_EQ(lower("\xD0\x96\xD0\x98"), "\xD0\xB6\xD0\xB8");  // ЖИ -> жи
  EXPECT_EQ(lower("\xE6\x9D\xB1"), "\xE6\x9D\xB1");          // 東 has no case
  EXPECT_EQ(lower("\xF0\x90\x90\x80"), "\xF0\x90\x90\xA8");  // DESERET CAPITAL LONG I
  // Greek, with the final sigma rule: ΟΔΟΣ ΣΑΣ. Σ -> οδος σας. σ
  EXPECT_EQ(lower("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xCE\xA3\xCE\x91\xCE\xA3. \xCE\xA3"),
            "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82 \xCF\x83\xCE\xB1\xCF\x82. \xCF\x83");
  // a case-ignorable apostrophe is skipped on both sides: ΑΣ'Σ -> ασ'ς
  EXPECT_EQ(lower("\xCE\x91\xCE\xA3'\xCE\xA3"), "\xCE\xB1\xCF\x83'\xCF\x82");
  EXPECT_EQ(u::simple_lower(U'\u0130'), U'i');
  EXPECT_EQ(u::simple_lower(U'\u03A3'), U'\u03C3');
}

TEST(Unicode, Utf8DecodeLikePythonReplace) {
  // Python: bytes.decode("utf-8", "replace")
  EXPECT_EQ(sdgen::utf8::decode("a\xC3\xA9z"), U"a\u00E9z");
  EXPECT_EQ(sdgen::utf8::decode("\xF0\x9F\x90\xB1"), U"\U0001F431");
  EXPECT_EQ(sdgen::utf8::decode("\xFF"), U"\uFFFD");
  EXPECT_EQ(sdgen::utf8::decode("\xC0\xAF"), U"\uFFFD\uFFFD");                      // overlong
  EXPECT_EQ(sdgen::utf8::decode("\xE0\x80\x80"), U"\uFFFD\uFFFD\uFFFD");            // overlong
  EXPECT_EQ(sdgen::utf8::decode("\xED\xA0\x80"), U"\uFFFD\uFFFD\uFFFD");            // surrogate
  EXPECT_EQ(sdgen::utf8::decode("\xF4\x90\x80\x80"), U"\uFFFD\uFFFD\uFFFD\uFFFD");  // > U+10FFFF
  EXPECT_EQ(sdgen::utf8::decode("\xF0\x9F\x90x"), U"\uFFFDx");  // truncated: one U+FFFD
  EXPECT_EQ(sdgen::utf8::decode("\xE2\x82"), U"\uFFFD");
  EXPECT_EQ(sdgen::utf8::decode(std::string("a\0b", 3)), std::u32string(U"a\0b", 3));
  size_t bad = 0;
  EXPECT_TRUE(sdgen::utf8::is_valid("plain \xC3\xA9"));
  EXPECT_FALSE(sdgen::utf8::is_valid("ok\xC3", &bad));
  EXPECT_EQ(bad, 2u);
}

TEST(Unicode, Utf8Encode) {
  EXPECT_EQ(sdgen::utf8::encode(U"a\u00E9\u6771\U0001F431"),
            "a\xC3\xA9\xE6\x9D\xB1\xF0\x9F\x90\xB1");
  std::string s;
  sdgen::utf8::append(s, 0xD800);
  EXPECT_EQ(s, "\xEF\xBF\xBD");
}

TEST(Unicode, Strip) {
  EXPECT_EQ(u::strip(U" \t\u3000\u001C a b \n\u0085"), U"a b");
  EXPECT_EQ(u::strip(U"   "), U"");
}
