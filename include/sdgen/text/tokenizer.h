// Tokenizer interface shared by CLIP BPE and SentencePiece tokenizers.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sdgen {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text`, without BOS/EOS and without truncation.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  virtual size_t vocab_size() const = 0;
  // The text of one id (for logs and tests).
  virtual std::string id_to_token(int64_t id) const = 0;
};

// The tokenizer stored at `path`: a SentencePiece model for paths ending in ".model", else a
// CLIP BPE vocabulary (ClipTokenizer::from_path). Throws std::runtime_error naming the path.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& path);

// BOS + ids[:length-2] + EOS, right-padded with pad_id to `length`.
std::vector<int64_t> frame_ids(const std::vector<int64_t>& ids, int64_t bos, int64_t eos,
                               int64_t pad_id, size_t length);

}  // namespace sdgen
