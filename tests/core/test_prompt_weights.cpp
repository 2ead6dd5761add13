// A1111 emphasis parser against the results of AUTOMATIC1111/stable-diffusion-webui
// modules/prompt_parser.py parse_prompt_attention (its doctest and further cases whose
// expected runs were computed with that function, weights compared exactly).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/text/prompt_weights.h"

namespace {

using sdgen::Emphasis;
using sdgen::parse_prompt_attention;
using sdgen::PromptRun;
using Runs = std::vector<PromptRun>;

std::string show(const Runs& runs) {
  std::string s;
  for (const auto& r : runs) {
    char w[40];
    std::snprintf(w, sizeof(w), "%.17g", r.weight);
    s += "['" + r.text + "', " + w + "] ";
  }
  return s;
}

void expect_runs(const std::string& prompt, const Runs& want) {
  const auto got = parse_prompt_attention(prompt);
  EXPECT_EQ(got, want) << "prompt: " << prompt << "\n got: " << show(got)
                       << "\nwant: " << show(want);
}

TEST(PromptWeights, A1111Doctest) {
  expect_runs("normal text", {{"normal text", 1.0}});
  expect_runs("an (important) word", {{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}});
  expect_runs("(unbalanced", {{"unbalanced", 1.1}});
  expect_runs("\\(literal\\]", {{"(literal]", 1.0}});
  expect_runs("(unnecessary)(parens)", {{"unnecessaryparens", 1.1}});
  expect_runs("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", {{"a ", 1.0},
                                                                      {"house", 1.5730000000000004},
                                                                      {" ", 1.1},
                                                                      {"on", 1.0},
                                                                      {" a ", 1.1},
                                                                      {"hill", 0.55},
                                                                      {", sun, ", 1.1},
                                                                      {"sky", 1.4641000000000006},
                                                                      {".", 1.1}});
}

TEST(PromptWeights, DocumentedExampleRounded) {
  const auto runs = parse_prompt_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).");
  auto weight_of = [&](const std::string& text) {
    for (const auto& r : runs)
      if (r.text == text) return r.weight;
    ADD_FAILURE() << "no run " << text;
    return 0.0;
  };
  EXPECT_NEAR(weight_of("house"), 1.573, 1e-12);
  EXPECT_NEAR(weight_of("hill"), 0.55, 1e-12);
  EXPECT_NEAR(weight_of("sky"), 1.4641, 1e-12);
  // "[on]" alone is 1/1.1 = 0.909; inside the unclosed "(" of "(((house" it is back at 1.0
  EXPECT_EQ(weight_of("on"), 1.0);
  EXPECT_NEAR(parse_prompt_attention("[on]")[0].weight, 0.909, 1e-3);
}

TEST(PromptWeights, Nesting) {
  expect_runs("((a))", {{"a", 1.2100000000000002}});
  expect_runs("[[a]]", {{"a", 0.8264462809917354}});
  expect_runs("((a) b)", {{"a", 1.2100000000000002}, {" b", 1.1}});
  expect_runs("[(a)]", {{"a", 1.0}});
  expect_runs("((a:1.3) b)", {{"a", 1.4300000000000002}, {" b", 1.1}});
  expect_runs("(a:1.1)(b)", {{"ab", 1.1}});  // equal weights merge
  expect_runs("[a] (b:0.9090909090909091)",
              {{"a", 0.9090909090909091}, {" ", 1.0}, {"b", 0.9090909090909091}});
}

TEST(PromptWeights, NumbersWithSignsAndSpaces) {
  expect_runs("(a:1.3)", {{"a", 1.3}});
  expect_runs("(a: 1.3 )", {{"a", 1.3}});
  expect_runs("(a:\t1.5\n)", {{"a", 1.5}});
  expect_runs("(a:+1.5)", {{"a", 1.5}});
  expect_runs("(a:-0.5)", {{"a", -0.5}});
  expect_runs("(a:.5)", {{"a", 0.5}});
  expect_runs("(a:2.)", {{"a", 2.0}});
  expect_runs("a (b:0) c", {{"a ", 1.0}, {"b", 0.0}, {" c", 1.0}});
  // "1e3" is not [.0-9]+: the ':' and the number are text, the ')' closes with 1.1
  expect_runs("(a:1e3)", {{"a:1e3", 1.1}});
  // a weight with no "(" open is text
  expect_runs("a:1.2)", {{"a:1.2)", 1.0}});
  expect_runs("[a:1.2)]", {{"a:1.2)", 0.9090909090909091}});
  expect_runs("(a:1.2", {{"a:1.2", 1.1}});
  expect_runs("(a:b)", {{"a:b", 1.1}});
  // A1111 fails with a ValueError on these
  EXPECT_THROW(parse_prompt_attention("(a:1.2.3)"), std::invalid_argument);
  EXPECT_THROW(parse_prompt_attention("(a:.)"), std::invalid_argument);
  EXPECT_THROW(parse_prompt_attention("(a:-.)"), std::invalid_argument);
  EXPECT_NO_THROW(parse_prompt_attention("a:1.2.3)"));  // not a weight: never parsed
}

TEST(PromptWeights, Escapes) {
  expect_runs("\\(a\\)", {{"(a)", 1.0}});
  expect_runs("\\[x\\]", {{"[x]", 1.0}});
  expect_runs("a\\\\b", {{"a\\b", 1.0}});
  expect_runs("a\\b", {{"ab", 1.0}});  // a lone backslash vanishes
  expect_runs("a\\", {{"a", 1.0}});
  expect_runs("(\\(a\\))", {{"(a)", 1.1}});
  expect_runs("\\\\(a)", {{"\\", 1.0}, {"a", 1.1}});
}

TEST(PromptWeights, Unbalanced) {
  expect_runs("a)", {{"a)", 1.0}});
  expect_runs("a]", {{"a]", 1.0}});
  expect_runs("((a)", {{"a", 1.2100000000000002}});
  expect_runs("[a", {{"a", 0.9090909090909091}});
  // the round brackets close first, then the square ones: 1.1 * (1 / 1.1) == 1.0
  expect_runs("(a [b", {{"a ", 1.1}, {"b", 1.0}});
  expect_runs("a) (b", {{"a) ", 1.0}, {"b", 1.1}});
}

TEST(PromptWeights, Empty) {
  expect_runs("", {{"", 1.0}});
  expect_runs("()", {{"", 1.0}});
  expect_runs("(", {{"", 1.0}});
  expect_runs("[]", {{"", 1.0}});
}

TEST(PromptWeights, Break) {
  const PromptRun brk{"BREAK", -1.0};
  expect_runs("a BREAK b", {{"a", 1.0}, brk, {"b", 1.0}});
  expect_runs("a  \n BREAK\t\tb", {{"a", 1.0}, brk, {"b", 1.0}});
  expect_runs("a,BREAK,b", {{"a,", 1.0}, brk, {",b", 1.0}});  // word boundaries suffice
  expect_runs("BREAK", {{"", 1.0}, brk, {"", 1.0}});
  expect_runs("a BREAK BREAK b", {{"a", 1.0}, brk, {"", 1.0}, brk, {"b", 1.0}});
  expect_runs("(a)BREAK(b)", {{"a", 1.1}, {"", 1.0}, brk, {"", 1.0}, {"b", 1.1}});
  // not a word of its own
  expect_runs("aBREAK b", {{"aBREAK b", 1.0}});
  expect_runs("a BREAKfast", {{"a BREAKfast", 1.0}});
  expect_runs("a_BREAK b", {{"a_BREAK b", 1.0}});
  expect_runs("a break b", {{"a break b", 1.0}});
  expect_runs(
      "\xC3\xA9"
      "BREAK b",
      {{"\xC3\xA9"
        "BREAK b",
        1.0}});  // "é" is a word character
  expect_runs("\xC3\xA9 BREAK b", {{"\xC3\xA9", 1.0}, brk, {"b", 1.0}});
  expect_runs(
      "\xE2\x80\x94"
      "BREAK"
      "\xE2\x80\x94",  // em dashes are not
      {{"\xE2\x80\x94", 1.0}, brk, {"\xE2\x80\x94", 1.0}});
  expect_runs(
      "a\xC2\xA0"
      "BREAK b",
      {{"a", 1.0}, brk, {"b", 1.0}});  // no-break space
  // inside brackets it is weighted like any run, and then no longer a break (as in A1111)
  const auto runs = parse_prompt_attention("(a BREAK b)");
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[1].text, "BREAK");
  EXPECT_EQ(runs[1].weight, -1.1);
  EXPECT_FALSE(sdgen::is_break(runs[1]));
  EXPECT_TRUE(sdgen::is_break(parse_prompt_attention("a BREAK b")[1]));
  expect_runs("(BREAK:0)", {{"BREAK", 0.0}});  // 0.0 == -0.0: the three runs merge
}

TEST(PromptWeights, ConformancePrompts) {
  expect_runs(
      "a (red kite:1.3) high above [green] hills, ((sunny)) sky, (soft clouds: 0.7), a child "
      "running",
      {{"a ", 1.0},
       {"red kite", 1.3},
       {" high above ", 1.0},
       {"green", 0.9090909090909091},
       {" hills, ", 1.0},
       {"sunny", 1.2100000000000002},
       {" sky, ", 1.0},
       {"soft clouds", 0.7},
       {", a child running", 1.0}});
  expect_runs("(blurry:1.2), [text]", {{"blurry", 1.2}, {", ", 1.0}, {"text", 0.9090909090909091}});
}

TEST(PromptWeights, EmphasisNoneIsPlainText) {
  const auto runs = sdgen::parse_prompt("a (b:1.2) BREAK [c]", Emphasis::kNone);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].text, "a (b:1.2) BREAK [c]");
  EXPECT_EQ(runs[0].weight, 1.0);
  EXPECT_FALSE(sdgen::is_break(runs[0]));
  EXPECT_EQ(sdgen::parse_prompt("a (b)", Emphasis::kA1111).size(), 2u);
}

TEST(PromptWeights, EmphasisNames) {
  EXPECT_EQ(sdgen::parse_emphasis("a1111"), Emphasis::kA1111);
  EXPECT_EQ(sdgen::parse_emphasis("Original"), Emphasis::kA1111);
  EXPECT_EQ(sdgen::parse_emphasis("none"), Emphasis::kNone);
  EXPECT_EQ(sdgen::parse_emphasis("None"), Emphasis::kNone);
  EXPECT_THROW(sdgen::parse_emphasis("compel"), std::invalid_argument);
  EXPECT_STREQ(sdgen::emphasis_name(Emphasis::kNone), "none");
  EXPECT_STREQ(sdgen::emphasis_a1111_label(Emphasis::kNone), "None");
  EXPECT_STREQ(sdgen::emphasis_a1111_label(Emphasis::kA1111), "Original");
}

TEST(PromptWeights, ArbitraryBytesDoNotCrash) {
  std::string s;
  for (int i = 0; i < 4000; ++i) s += static_cast<char>((i * 7919 + 13) % 256);
  EXPECT_NO_THROW({
    try {
      parse_prompt_attention(s);
    } catch (const std::invalid_argument&) {
    }
  });
  EXPECT_NO_THROW(parse_prompt_attention(std::string(10000, '(')));
  EXPECT_NO_THROW(parse_prompt_attention("\xE2\x80"));
}

}  // namespace
