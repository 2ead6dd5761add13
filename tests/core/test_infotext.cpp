#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "sdgen/io/infotext.h"

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

sdgen::InfoText example() {
  sdgen::InfoText info;
  info.prompt = "a photo of a cat, best quality";
  info.negative_prompt = "blurry, lowres";
  info.fields = {
      {"Steps", "30"},      {"Sampler", "Euler a"}, {"CFG scale", sdgen::format_number(7.5)},
      {"Seed", "42"},       {"Size", "512x512"},    {"Model hash", "da1c81e326"},
      {"Model", "tiny-sd1"}};
  return info;
}

TEST(Infotext, FormatFullExample) {
  EXPECT_EQ(sdgen::format_infotext(example()),
            "a photo of a cat, best quality\n"
            "Negative prompt: blurry, lowres\n"
            "Steps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, "
            "Model hash: da1c81e326, Model: tiny-sd1");
}

TEST(Infotext, FormatWithoutNegativeAndQuotedValues) {
  sdgen::InfoText info;
  info.prompt = "  lighthouse at dusk";  // the whole text is stripped, as A1111 does
  info.fields = {{"Steps", "6"},
                 {"CFG scale", sdgen::format_number(7.0)},
                 {"Seed", "13"},
                 {"Model", "my, model: v2"},
                 {"Tiling", "Tiling"}};  // a value equal to its key is written bare
  EXPECT_EQ(sdgen::format_infotext(info),
            "lighthouse at dusk\nSteps: 6, CFG scale: 7, Seed: 13, Model: \"my, model: v2\", "
            "Tiling");

  sdgen::InfoText empty;
  empty.prompt = "only a prompt";
  EXPECT_EQ(sdgen::format_infotext(empty), "only a prompt");
}

TEST(Infotext, QuoteLikeA1111) {
  EXPECT_EQ(sdgen::infotext_quote("Euler a"), "Euler a");
  EXPECT_EQ(sdgen::infotext_quote(""), "");
  // Quotes and backslashes alone do not trigger quoting (A1111 checks , : and newline only).
  EXPECT_EQ(sdgen::infotext_quote("say \"hi\" \\o/"), "say \"hi\" \\o/");
  EXPECT_EQ(sdgen::infotext_quote("a, b"), "\"a, b\"");
  EXPECT_EQ(sdgen::infotext_quote("k: v"), "\"k: v\"");
  EXPECT_EQ(sdgen::infotext_quote("line1\nline2"), "\"line1\\nline2\"");
  // json.dumps(ensure_ascii=False): escapes " \ and control characters, keeps UTF-8.
  EXPECT_EQ(sdgen::infotext_quote("say \"hi\", ok\\ \x01\n\t\xc3\xa9 \xe2\x80\x94"),
            "\"say \\\"hi\\\", ok\\\\ \\u0001\\n\\t\xc3\xa9 \xe2\x80\x94\"");
  EXPECT_EQ(sdgen::infotext_quote("a:\r\b\f\x1f\x7f"), "\"a:\\r\\b\\f\\u001f\x7f\"");
}

TEST(Infotext, FormatNumberLikePythonStrWithoutTrailingZero) {
  EXPECT_EQ(sdgen::format_number(7.0), "7");
  EXPECT_EQ(sdgen::format_number(12.0), "12");
  EXPECT_EQ(sdgen::format_number(0.0), "0");
  EXPECT_EQ(sdgen::format_number(-2.0), "-2");
  EXPECT_EQ(sdgen::format_number(7.5), "7.5");
  EXPECT_EQ(sdgen::format_number(6.5), "6.5");
  EXPECT_EQ(sdgen::format_number(0.1), "0.1");
  EXPECT_EQ(sdgen::format_number(-3.25), "-3.25");
  EXPECT_EQ(sdgen::format_number(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(sdgen::format_number(123.456), "123.456");
  EXPECT_EQ(sdgen::format_number(12345678.9), "12345678.9");
  EXPECT_EQ(sdgen::format_number(0.0001), "0.0001");
  EXPECT_EQ(sdgen::format_number(0.00012), "0.00012");
  EXPECT_EQ(sdgen::format_number(1e-05), "1e-05");
  EXPECT_EQ(sdgen::format_number(1.5e-07), "1.5e-07");
  EXPECT_EQ(sdgen::format_number(1e15 + 0.5), "1000000000000000.5");
  EXPECT_EQ(sdgen::format_number(1e15), "1000000000000000");
  EXPECT_EQ(sdgen::format_number(1e16), "1e+16");
  EXPECT_EQ(sdgen::format_number(2.5e20), "2.5e+20");
  EXPECT_EQ(sdgen::format_number(1e22), "1e+22");
  EXPECT_EQ(sdgen::format_number(-1e-100), "-1e-100");
  EXPECT_EQ(sdgen::format_number(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(sdgen::format_number(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(sdgen::format_number(-std::numeric_limits<double>::infinity()), "-inf");
  // Shortest round trip.
  for (double v : {0.1 + 0.2, 4.35, 1e-300, 5e-324, 1.7976931348623157e308, 299792.458}) {
    EXPECT_EQ(std::strtod(sdgen::format_number(v).c_str(), nullptr), v) << sdgen::format_number(v);
  }
  EXPECT_EQ(sdgen::format_number(0.1 + 0.2), "0.30000000000000004");
}

TEST(Infotext, ParseA1111Docstring) {
  const sdgen::InfoText info = sdgen::parse_infotext(
      "girl with an artist's beret, determined, blue eyes, ((eyeshadow)), (coquettish)\n"
      "Negative prompt: ugly, fat, (((deformed))), [blurry], bad anatomy\n"
      "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: "
      "45dee52b");
  EXPECT_EQ(info.prompt,
            "girl with an artist's beret, determined, blue eyes, ((eyeshadow)), (coquettish)");
  EXPECT_EQ(info.negative_prompt, "ugly, fat, (((deformed))), [blurry], bad anatomy");
  EXPECT_EQ(info.fields, (Fields{{"Steps", "20"},
                                 {"Sampler", "Euler a"},
                                 {"CFG scale", "7"},
                                 {"Seed", "965400086"},
                                 {"Size", "512x512"},
                                 {"Model hash", "45dee52b"}}));
}

TEST(Infotext, RoundTripMultiLineAndQuoted) {
  sdgen::InfoText info;
  info.prompt = "a castle on a hill, (masterpiece:1.2)\nsecond line: with colon\nthird, \"quoted\"";
  info.negative_prompt = "lowres, bad hands\nNegative second line";
  info.fields = {{"Steps", "30"},
                 {"Sampler", "DPM++ 2M Karras"},
                 {"CFG scale", "7.5"},
                 {"Seed", "3999999999"},
                 {"Size", "64x96"},
                 {"Model", "name, with: punctuation"},
                 {"Lora hashes", "\"a: 1, b: 2\""},
                 {"Notes", "multi\nline \\ back\\slash \"q\", \xe2\x80\x94 \xc3\xab"},
                 {"Ctrl", "bell\x07:"},
                 {"Version", "v1.2-3/x"}};
  const std::string text = sdgen::format_infotext(info);
  const sdgen::InfoText back = sdgen::parse_infotext(text);
  EXPECT_EQ(back.prompt, info.prompt);
  EXPECT_EQ(back.negative_prompt, info.negative_prompt);
  EXPECT_EQ(back.fields, info.fields);
  EXPECT_EQ(sdgen::format_infotext(back), text);

  const sdgen::InfoText ex = sdgen::parse_infotext(sdgen::format_infotext(example()));
  EXPECT_EQ(ex.prompt, example().prompt);
  EXPECT_EQ(ex.negative_prompt, example().negative_prompt);
  EXPECT_EQ(ex.fields, example().fields);
}

TEST(Infotext, ParseEdgeCases) {
  // Fewer than three fields on the last line: it belongs to the prompt (as in A1111).
  sdgen::InfoText info = sdgen::parse_infotext("a cat\nSteps: 20, Seed: 1");
  EXPECT_EQ(info.prompt, "a cat\nSteps: 20, Seed: 1");
  EXPECT_TRUE(info.fields.empty());

  // Lines are stripped; whitespace around values stays as A1111 leaves it (after the comma).
  info = sdgen::parse_infotext("  a cat  \n Negative prompt:   dog \nA: 1,B2: x y ,Cc:z, Dd:");
  EXPECT_EQ(info.prompt, "a cat");
  EXPECT_EQ(info.negative_prompt, "dog");
  // "B2" has two characters; "Dd:" with an empty value is dropped like A1111 does.
  EXPECT_EQ(info.fields, (Fields{{"B2", "x y "}, {"Cc", "z"}}));

  // Malformed quoted value: kept raw; an unterminated quote falls back to [^,]*.
  info = sdgen::parse_infotext("p\nAa: 1, Bb: \"x\\q\", Cc: \"open, Dd: 4");
  EXPECT_EQ(info.fields, (Fields{{"Aa", "1"}, {"Bb", "\"x\\q\""}, {"Cc", "\"open"}, {"Dd", "4"}}));

  // A quoted value that is not followed by a comma is not a quoted value.
  info = sdgen::parse_infotext("p\nAa: \"x\"y, Bb: 2, Cc: 3");
  EXPECT_EQ(info.fields, (Fields{{"Aa", "\"x\"y"}, {"Bb", "2"}, {"Cc", "3"}}));

  // Keys may hold spaces, '-' and '/'; text before a key that does not fit is skipped.
  info = sdgen::parse_infotext("p\n(x) Hires upscale: 2, Face-restore/model: GFP, Seed: 5");
  EXPECT_EQ(info.fields,
            (Fields{{"Hires upscale", "2"}, {"Face-restore/model", "GFP"}, {"Seed", "5"}}));

  // Unicode escapes, surrogate pairs.
  info = sdgen::parse_infotext("p\nAa: \"\\u00e9\\ud83d\\ude00, ok\", Bb: 2, Cc: 3");
  EXPECT_EQ(info.fields[0].second, "\xc3\xa9\xf0\x9f\x98\x80, ok");

  // Empty text, only whitespace.
  info = sdgen::parse_infotext(" \n ");
  EXPECT_EQ(info.prompt, "");
  EXPECT_EQ(info.negative_prompt, "");
  EXPECT_TRUE(info.fields.empty());

  // No prompt line at all.
  info = sdgen::parse_infotext("Steps: 1, Sampler: Euler, Seed: 2");
  EXPECT_EQ(info.prompt, "");
  EXPECT_EQ(info.fields.size(), 3u);
}

}  // namespace
