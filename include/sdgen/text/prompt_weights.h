// A1111 prompt emphasis: "(x)" x1.1, "((x))" x1.21, "(x:1.3)", "[x]" /1.1, escapes "\(" "\)"
// "\[" "\]" "\\", and BREAK. Behaves like AUTOMATIC1111/stable-diffusion-webui
// modules/prompt_parser.py parse_prompt_attention (same runs, same float64 weights, bit for
// bit), on UTF-8 text.
#pragma once
#include <string>
#include <vector>

namespace sdgen {

// One run of prompt text and its attention weight.
struct PromptRun {
  std::string text;
  double weight = 1.0;
  bool operator==(const PromptRun& o) const { return text == o.text && weight == o.weight; }
};

// As A1111: a BREAK is the run {"BREAK", -1.0}. Brackets around a BREAK multiply its weight
// like any run's, and then (as in A1111) it is no longer a break but the word "BREAK".
bool is_break(const PromptRun& run);

// A1111's parse_prompt_attention:
// * "(" ... ")" multiplies the enclosed runs by 1.1, "[" ... "]" by 1/1.1, "(" ... ":w)" by w
//   (w = [+-]?[.0-9]+ with optional whitespace around it; a ":w)" with no "(" open is text).
// * "\(" "\)" "\[" "\]" "\\" are the literal characters; a lone "\" vanishes.
// * ")" or "]" with nothing to close is text; brackets left open at the end are closed there
//   (the round ones first, in the order they were opened).
// * In text, "\s*\bBREAK\b\s*" becomes a break run (the word BREAK with word boundaries
//   around it, whitespace on either side swallowed).
// * Adjacent runs with equal weights are merged; an empty prompt gives {{"", 1.0}}.
// Throws std::invalid_argument for a weight that is not a number (e.g. "(x:1.2.3)"), where
// A1111 fails with a ValueError.
std::vector<PromptRun> parse_prompt_attention(const std::string& text);

// How brackets in prompts are read (A1111's "Emphasis" option).
enum class Emphasis {
  kA1111,  // A1111 "Original": parse_prompt_attention, weights applied with the mean restored
  kNone,   // A1111 "None": the whole prompt is one run of plain text with weight 1
};

// "a1111" (or A1111's name "Original") and "none"; case-insensitive. Throws
// std::invalid_argument naming the valid values.
Emphasis parse_emphasis(const std::string& name);
// "a1111" or "none".
const char* emphasis_name(Emphasis e);
// The value A1111 writes for "Emphasis" in its infotext: "Original" or "None".
const char* emphasis_a1111_label(Emphasis e);

// The runs of `prompt` under `mode`: parse_prompt_attention, or {{prompt, 1.0}}.
std::vector<PromptRun> parse_prompt(const std::string& prompt, Emphasis mode);

}  // namespace sdgen
