// A SentencePiece model (tokenizer.model, as SentencePiece's trainer writes it) behind the
// Tokenizer interface. SentencePiece runs in libsdgen_spm.so (spm_shim.h), loaded on first use
// with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND), so its bundled protobuf never meets the
// one libtorch links.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/text/tokenizer.h"

struct sdgen_spm;

namespace sdgen {

// libsdgen_spm.so could not be found or loaded, or lacks a function.
class SentencePieceUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Loads `model_path`. Throws SentencePieceUnavailable when the shim is missing, and
  // std::runtime_error (naming the file) when the model does not load. The model must define
  // BOS and EOS (sdgen-train's tokenizer models do: unk 0, bos 1, eos 2, pad 3).
  static std::unique_ptr<SentencePieceTokenizer> from_file(const std::string& model_path);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(const std::string& text) const override;
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  size_t vocab_size() const override { return vocab_size_; }
  std::string id_to_token(int64_t id) const override;
  std::string decode(const std::vector<int64_t>& ids) const;
  int64_t unk_id() const { return unk_; }
  int64_t pad_id() const { return pad_; }

  // Trains a model on `sentences` with SentencePiece's trainer; writes
  // `<model_prefix>.model` and `<model_prefix>.vocab`. `extra_args` are more trainer flags
  // ("--model_type=bpe ..."), after sdgen's defaults (unigram, nmt_nfkc_cf case folding,
  // unk 0 / bos 1 / eos 2 / pad 3, full character coverage), so they override them.
  static void train(const std::vector<std::string>& sentences, const std::string& model_prefix,
                    int vocab_size, const std::string& extra_args = "");

  // Where the shim is looked for, in order: $SDGEN_SPM_LIBRARY; libsdgen_spm.so beside the
  // executable, in ../lib from it; the build folder; the install lib folder; the loader's path.
  static std::vector<std::string> library_candidates();
  // Whether the shim can be loaded (loads it on first call).
  static bool available();
  // The path it was loaded from (empty when not loaded).
  static std::string library_path();

 private:
  SentencePieceTokenizer() = default;
  sdgen_spm* handle_ = nullptr;
  int64_t bos_ = -1, eos_ = -1, unk_ = -1, pad_ = -1;
  size_t vocab_size_ = 0;
};

}  // namespace sdgen
