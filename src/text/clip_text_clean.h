// The text side of openai/CLIP's SimpleTokenizer.encode (internal to src/text): what happens
// to a prompt before the BPE merges. ftfy.fix_text is not applied (see clean_text).
#pragma once
#include <string>
#include <vector>

namespace sdgen::clip_text {

// Python's html.unescape.
std::u32string unescape_html(const std::u32string& s);
// basic_clean (html.unescape twice, strip; ftfy.fix_text left out: it changes no token id of
// the reference prompts) + whitespace_clean (runs of Unicode whitespace -> one space, strip) +
// lower().
std::u32string clean_text(const std::string& text);
// SimpleTokenizer's splitting regex over cleaned text, as UTF-8 pieces.
std::vector<std::string> words(const std::u32string& cleaned);

}  // namespace sdgen::clip_text
