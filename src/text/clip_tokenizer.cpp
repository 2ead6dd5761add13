// CLIP byte-level BPE tokenizer, reproducing openai/CLIP clip/simple_tokenizer.py
// (SimpleTokenizer.encode) exactly, except for ftfy.fix_text (see clean_text_u32).
#include "sdgen/text/clip_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "sdgen/util/gzip.h"
#include "text/unicode.h"

namespace sdgen {
namespace {

namespace fs = std::filesystem;

struct HtmlEntity {
  const char* name;   // with or without the trailing ';'
  const char* value;  // UTF-8
};
struct CodeRange {
  uint32_t lo, hi;
};

#include "text/html_entities.inc"

constexpr const char* kStartOfText = "<|startoftext|>";
constexpr const char* kEndOfText = "<|endoftext|>";
constexpr const char* kEndOfWord = "</w>";
// SimpleTokenizer keeps merges[1 : 49152 - 256 - 2 + 1] of the merges file.
constexpr size_t kClipMerges = 49152 - 256 - 2;
constexpr size_t kCacheLimit = 1 << 16;

const char* const kAccepted =
    "pass bpe_simple_vocab_16e6.txt.gz (openai/CLIP), its unzipped .txt, a diffusers "
    "tokenizer/vocab.json with merges.txt beside it, or a folder holding one of them";

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("CLIP tokenizer: " + what);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open '" + path + "' for reading");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("error while reading '" + path + "'");
  return ss.str();
}

// bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 + n in byte order. `order` lists the bytes in the function's dict order (the order of
// the first 256 vocabulary entries).
struct ByteEncoder {
  std::string symbol[256];  // UTF-8 of the code point for byte b
  int order[256];
  ByteEncoder() {
    bool printable[256] = {};
    int k = 0;
    auto add = [&](int lo, int hi) {
      for (int b = lo; b <= hi; ++b) {
        printable[b] = true;
        order[k++] = b;
      }
    };
    add('!', '~');
    add(0xA1, 0xAC);
    add(0xAE, 0xFF);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      if (printable[b]) {
        unicode::append_utf8(symbol[b], static_cast<char32_t>(b));
      } else {
        unicode::append_utf8(symbol[b], static_cast<char32_t>(256 + n++));
        order[k++] = b;
      }
    }
  }
};

const ByteEncoder& byte_encoder() {
  static const ByteEncoder enc;
  return enc;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (true) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? nl : nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return lines;
}

// Splits on runs of ASCII whitespace (the symbols of a byte-level vocabulary contain none).
std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  const size_t n = line.size();
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  while (i < n) {
    while (i < n && space(line[i])) ++i;
    size_t j = i;
    while (j < n && !space(line[j])) ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

void check_utf8(const std::string& text, const std::string& label) {
  size_t bad = 0;
  if (!unicode::is_valid_utf8(text, &bad)) {
    fail(label + " is not valid UTF-8 (bad byte at offset " + std::to_string(bad) +
         "); is it the right file?");
  }
}

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

void append_utf8_string(std::u32string& out, const char* utf8) {
  out += unicode::decode_utf8(utf8);
}

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
  std::u32string t = unicode::decode_utf8(text);
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
    pieces.push_back(unicode::encode_utf8(t.substr(i, len)));
    i += len;
  }
  return pieces;
}

}  // namespace

// ---------------------------------------------------------------- public helpers

std::string ClipTokenizer::clean_text(const std::string& text) {
  return unicode::encode_utf8(clean_text_u32(text));
}

std::string ClipTokenizer::html_unescape(const std::string& text) {
  return unicode::encode_utf8(html_unescape_u32(unicode::decode_utf8(text)));
}

// ---------------------------------------------------------------- loading

void ClipTokenizer::add_merge(int32_t left, int32_t right, int32_t merged, int32_t rank) {
  const uint64_t key =
      (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  merges_[key] = {rank, merged};  // a repeated pair keeps its last rank, like Python's dict
}

void ClipTokenizer::load_merges_text(const std::string& text, const std::string& label) {
  check_utf8(text, label);
  const std::vector<std::string> lines = split_lines(text);
  std::vector<std::pair<std::string, std::string>> merges;
  // line 0 is a version comment
  for (size_t i = 1; i < lines.size() && merges.size() < kClipMerges; ++i) {
    const std::vector<std::string> f = split_fields(lines[i]);
    if (f.empty() && i + 1 == lines.size()) break;  // the final newline
    if (f.size() != 2) {
      fail(label + " line " + std::to_string(i + 1) + ": expected two symbols 'left right', got '" +
           lines[i].substr(0, 80) + "'; " + kAccepted);
    }
    merges.emplace_back(f[0], f[1]);
  }
  if (merges.empty()) fail(label + " holds no merges; " + kAccepted);

  const ByteEncoder& enc = byte_encoder();
  id_to_token_.clear();
  id_to_token_.reserve(512 + merges.size() + 2);
  for (int k = 0; k < 256; ++k) id_to_token_.push_back(enc.symbol[enc.order[k]]);
  for (int k = 0; k < 256; ++k) id_to_token_.push_back(enc.symbol[enc.order[k]] + kEndOfWord);
  for (const auto& m : merges) id_to_token_.push_back(m.first + m.second);
  id_to_token_.push_back(kStartOfText);
  id_to_token_.push_back(kEndOfText);

  token_to_id_.clear();
  token_to_id_.reserve(id_to_token_.size());
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    token_to_id_[id_to_token_[id]] = static_cast<int32_t>(id);  // the last id wins, as in Python
  }
  merges_.clear();
  merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    auto l = token_to_id_.find(merges[r].first);
    auto rr = token_to_id_.find(merges[r].second);
    if (l == token_to_id_.end() || rr == token_to_id_.end()) continue;  // can never apply
    add_merge(l->second, rr->second, token_to_id_.at(merges[r].first + merges[r].second),
              static_cast<int32_t>(r));
  }
  finish(label);
}

void ClipTokenizer::load_vocab_json(const std::string& vocab_path, const std::string& merges_path) {
  const std::string vlabel = "'" + vocab_path + "'";
  const std::string mlabel = "'" + merges_path + "'";
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_file(vocab_path));
  } catch (const nlohmann::json::exception& e) {
    fail(vlabel + " is not valid JSON (" + e.what() + "); " + kAccepted);
  }
  if (!vocab.is_object() || vocab.empty()) {
    fail(vlabel + " must be a JSON object mapping tokens to ids; " + kAccepted);
  }
  id_to_token_.clear();
  token_to_id_.clear();
  token_to_id_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) {
      fail(vlabel + ": the id of token '" + it.key() + "' is not an integer");
    }
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (int64_t(1) << 24)) {
      fail(vlabel + ": token '" + it.key() + "' has the out-of-range id " + std::to_string(id));
    }
    if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(id + 1);
    id_to_token_[id] = it.key();
    token_to_id_[it.key()] = static_cast<int32_t>(id);
  }

  if (!fs::is_regular_file(merges_path)) {
    fail("'" + merges_path +
         "' not found; a vocab.json needs the merges.txt of the same "
         "tokenizer beside it");
  }
  const std::string text = read_file(merges_path);
  check_utf8(text, mlabel);
  const std::vector<std::string> lines = split_lines(text);
  merges_.clear();
  int32_t rank = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == 0 && lines[i].rfind("#version", 0) == 0) continue;
    const std::vector<std::string> f = split_fields(lines[i]);
    if (f.empty()) continue;
    if (f.size() != 2) {
      fail(mlabel + " line " + std::to_string(i + 1) +
           ": expected two symbols 'left right', got '" + lines[i].substr(0, 80) + "'");
    }
    auto l = token_to_id_.find(f[0]);
    auto r = token_to_id_.find(f[1]);
    auto m = token_to_id_.find(f[0] + f[1]);
    if (l == token_to_id_.end() || r == token_to_id_.end() || m == token_to_id_.end()) {
      fail(mlabel + " line " + std::to_string(i + 1) + ": the merge '" + f[0] + " " + f[1] +
           "' uses or makes a token that " + vlabel +
           " lacks; vocab.json and merges.txt must come from the same tokenizer");
    }
    add_merge(l->second, r->second, m->second, rank++);
  }
  if (merges_.empty()) fail(mlabel + " holds no merges; " + kAccepted);
  finish(vlabel);
}

void ClipTokenizer::finish(const std::string& label) {
  const ByteEncoder& enc = byte_encoder();
  for (int b = 0; b < 256; ++b) {
    auto a = token_to_id_.find(enc.symbol[b]);
    auto e = token_to_id_.find(enc.symbol[b] + kEndOfWord);
    if (a == token_to_id_.end() || e == token_to_id_.end()) {
      fail(label + " lacks the byte symbol of byte " + std::to_string(b) +
           "; it is not a CLIP byte-level BPE vocabulary");
    }
    byte_id_[b] = a->second;
    byte_end_id_[b] = e->second;
  }
  auto s = token_to_id_.find(kStartOfText);
  auto e = token_to_id_.find(kEndOfText);
  if (s == token_to_id_.end() || e == token_to_id_.end()) {
    fail(label + " lacks <|startoftext|> or <|endoftext|>; it is not a CLIP vocabulary");
  }
  bos_ = s->second;
  eos_ = e->second;
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cache_.clear();
}

std::unique_ptr<ClipTokenizer> ClipTokenizer::from_path(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (path.empty() || !fs::exists(p, ec)) fail("'" + path + "' does not exist; " + kAccepted);

  if (fs::is_directory(p, ec)) {
    const char* const kFiles[] = {"vocab.json", "bpe_simple_vocab_16e6.txt.gz",
                                  "bpe_simple_vocab_16e6.txt", "merges.txt"};
    for (const char* name : kFiles) {
      if (fs::is_regular_file(p / name, ec)) return from_path((p / name).string());
    }
    std::vector<fs::path> gz;
    for (const auto& entry : fs::directory_iterator(p, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file(ec) && name.size() > 7 &&
          name.compare(name.size() - 7, 7, ".txt.gz") == 0) {
        gz.push_back(entry.path());
      }
    }
    if (gz.size() == 1) return from_path(gz[0].string());
    if (fs::is_directory(p / "tokenizer", ec)) return from_path((p / "tokenizer").string());
    fail("the folder '" + path +
         "' holds no vocab.json, merges.txt or bpe_simple_vocab_16e6.txt.gz (nor a "
         "tokenizer/ folder with one); " +
         kAccepted);
  }

  std::unique_ptr<ClipTokenizer> tok(new ClipTokenizer());
  const std::string name = p.filename().string();
  const bool json = name.size() >= 5 && name.compare(name.size() - 5, 5, ".json") == 0;
  if (json) {
    tok->load_vocab_json(path, (p.parent_path() / "merges.txt").string());
    return tok;
  }
  std::string data = read_file(path);
  const std::string label = "'" + path + "'";
  if (data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0x1F &&
      static_cast<unsigned char>(data[1]) == 0x8B) {
    data = gunzip(data, label);
  } else if (!data.empty() && data[0] == '{') {
    tok->load_vocab_json(path, (p.parent_path() / "merges.txt").string());
    return tok;
  }
  tok->load_merges_text(data, label);
  return tok;
}

// ---------------------------------------------------------------- encoding

std::string ClipTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) {
    throw std::out_of_range("CLIP tokenizer: id " + std::to_string(id) +
                            " is outside the vocabulary of " + std::to_string(id_to_token_.size()) +
                            " tokens");
  }
  return id_to_token_[id];
}

void ClipTokenizer::bpe(const std::string& piece, std::vector<int64_t>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(piece);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int64_t> ids;
  if (piece == kStartOfText) {  // SimpleTokenizer's cache starts with the two special tokens
    ids.push_back(bos_);
  } else if (piece == kEndOfText) {
    ids.push_back(eos_);
  } else {
    std::vector<int32_t> word;
    word.reserve(piece.size());
    for (size_t k = 0; k < piece.size(); ++k) {
      const unsigned char b = static_cast<unsigned char>(piece[k]);
      word.push_back(k + 1 < piece.size() ? byte_id_[b] : byte_end_id_[b]);
    }
    std::vector<int32_t> next;
    next.reserve(word.size());
    while (word.size() > 1) {
      int32_t best_rank = INT32_MAX, left = -1, right = -1, merged = -1;
      for (size_t k = 0; k + 1 < word.size(); ++k) {
        const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(word[k])) << 32) |
                             static_cast<uint32_t>(word[k + 1]);
        auto it = merges_.find(key);
        if (it != merges_.end() && it->second.first < best_rank) {
          best_rank = it->second.first;
          merged = it->second.second;
          left = word[k];
          right = word[k + 1];
        }
      }
      if (merged < 0) break;
      next.clear();
      for (size_t k = 0; k < word.size();) {
        if (k + 1 < word.size() && word[k] == left && word[k + 1] == right) {
          next.push_back(merged);
          k += 2;
        } else {
          next.push_back(word[k]);
          k += 1;
        }
      }
      word.swap(next);
    }
    ids.assign(word.begin(), word.end());
  }
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheLimit) cache_.clear();
  cache_.emplace(piece, std::move(ids));
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& piece : split_words(clean_text_u32(text))) bpe(piece, ids);
  return ids;
}

}  // namespace sdgen
