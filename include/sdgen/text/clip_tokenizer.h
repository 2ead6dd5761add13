// CLIP byte-level BPE tokenizer (openai/CLIP simple_tokenizer.py), in plain C++.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sdgen/text/tokenizer.h"

namespace sdgen {

class ClipTokenizer : public Tokenizer {
 public:
  // `path`: bpe_simple_vocab_16e6.txt.gz (or the unzipped .txt) merges file; or a
  // vocab.json (merges.txt beside it); or a folder holding either (diffusers tokenizer/ folder
  // included). Throws std::runtime_error naming the file and what is wrong.
  static std::unique_ptr<ClipTokenizer> from_path(const std::string& path);
  // A merges file's bytes (gzip or plain text, as bpe_simple_vocab_16e6.txt[.gz]); `label`
  // names it in errors.
  static std::unique_ptr<ClipTokenizer> from_merges_bytes(std::string data,
                                                          const std::string& label);

  std::vector<int64_t> encode(const std::string& text) const override;
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  size_t vocab_size() const override { return id_to_token_.size(); }
  std::string id_to_token(int64_t id) const override;
  // The text after basic_clean + whitespace_clean + lower-case (for tests).
  static std::string clean_text(const std::string& text);
  // Python's html.unescape (HTML5 named references, numeric references with its replacement
  // rules) on UTF-8 text; invalid UTF-8 is decoded with U+FFFD replacement first.
  static std::string html_unescape(const std::string& text);

 private:
  ClipTokenizer() = default;
  void load_merges_text(const std::string& text, const std::string& label);
  void load_vocab_json(const std::string& vocab_path, const std::string& merges_path);
  void add_merge(int32_t left, int32_t right, int32_t merged, int32_t rank);
  void finish(const std::string& label);
  // The BPE ids of one pre-token (UTF-8), appended to `out`.
  void bpe(const std::string& piece, std::vector<int64_t>& out) const;

  std::vector<std::string> id_to_token_;
  int64_t bos_ = 49406, eos_ = 49407;
  std::unordered_map<std::string, int32_t> token_to_id_;
  // (left id << 32 | right id) -> (merge rank, id of the merged symbol)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  int32_t byte_id_[256] = {};      // id of bytes_to_unicode()[b]
  int32_t byte_end_id_[256] = {};  // id of bytes_to_unicode()[b] + "</w>"
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

}  // namespace sdgen
