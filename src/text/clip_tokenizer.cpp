// CLIP byte-level BPE tokenizer, reproducing openai/CLIP clip/simple_tokenizer.py
// (SimpleTokenizer.encode) exactly, except for ftfy.fix_text (see clip_text_clean.h):
// the vocabulary, its loading and the BPE merges.
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
#include "sdgen/util/utf8.h"
#include "text/clip_text_clean.h"

namespace sdgen {
namespace {

namespace fs = std::filesystem;

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
        utf8::append(symbol[b], static_cast<char32_t>(b));
      } else {
        utf8::append(symbol[b], static_cast<char32_t>(256 + n++));
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
  if (!utf8::is_valid(text, &bad)) {
    fail(label + " is not valid UTF-8 (bad byte at offset " + std::to_string(bad) +
         "); is it the right file?");
  }
}

}  // namespace

// ---------------------------------------------------------------- public helpers

std::string ClipTokenizer::clean_text(const std::string& text) {
  return utf8::encode(clip_text::clean_text(text));
}

std::string ClipTokenizer::html_unescape(const std::string& text) {
  return utf8::encode(clip_text::unescape_html(utf8::decode(text)));
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
  if (!data.empty() && data[0] == '{') {
    tok->load_vocab_json(path, (p.parent_path() / "merges.txt").string());
    return tok;
  }
  return from_merges_bytes(std::move(data), "'" + path + "'");
}

std::unique_ptr<ClipTokenizer> ClipTokenizer::from_merges_bytes(std::string data,
                                                                const std::string& label) {
  if (data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0x1F &&
      static_cast<unsigned char>(data[1]) == 0x8B)
    data = gunzip(data, label);
  std::unique_ptr<ClipTokenizer> tok(new ClipTokenizer());
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
  for (const std::string& piece : clip_text::words(clip_text::clean_text(text))) bpe(piece, ids);
  return ids;
}

}  // namespace sdgen
