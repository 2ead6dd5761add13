// libsdgen_spm.so: SentencePiece behind the C interface of include/sdgen/text/spm_shim.h.
// Built with hidden visibility: only the sdgen_spm_* functions are exported, so nothing of
// SentencePiece's bundled protobuf can leak into the process that dlopen()s it.
#include "sdgen/text/spm_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace sentencepiece::logging {
void SetMinLogLevel(int v);  // exported by libsentencepiece (common.h is not installed)
}

#define SDGEN_SPM_EXPORT extern "C" __attribute__((visibility("default")))

struct sdgen_spm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

thread_local std::string g_error;

int fail(const std::string& message) {
  g_error = message;
  return -1;
}

// Copies `s` into out[0..capacity) NUL-terminated when it fits; returns its length.
int copy_out(const std::string& s, char* out, size_t capacity) {
  if (out && capacity > s.size()) std::memcpy(out, s.c_str(), s.size() + 1);
  return static_cast<int>(s.size());
}

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  VectorIterator(const char* const* sentences, size_t n) : sentences_(sentences), n_(n) {
    if (n_) value_ = sentences_[0];
  }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    if (++i_ < n_) value_ = sentences_[i_];
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const char* const* sentences_;
  size_t n_, i_ = 0;
  std::string value_;
};

// Loaded with RTLD_DEEPBIND, this library and SentencePiece bind std::cout, std::cerr and
// std::clog to libstdc++'s own definitions. When the executable holds copy-relocated instances
// of them (any program that names std::cerr), libstdc++ constructed those and left its own as
// zeroed storage, and SentencePiece's first log line would crash. Construct the shadowed
// streams over the executable's stream buffers (stdio-synchronised, so output interleaves).
void repair_stream(std::ostream& ours, const char* symbol) {
  auto* global = static_cast<std::ostream*>(::dlsym(RTLD_DEFAULT, symbol));
  if (global && global != &ours) new (&ours) std::ostream(global->rdbuf());
}

__attribute__((constructor)) void repair_streams() {
  repair_stream(std::cout, "_ZSt4cout");
  repair_stream(std::cerr, "_ZSt4cerr");
  repair_stream(std::clog, "_ZSt4clog");
}

}  // namespace

SDGEN_SPM_EXPORT int sdgen_spm_abi_version(void) { return SDGEN_SPM_ABI_VERSION; }

SDGEN_SPM_EXPORT sdgen_spm* sdgen_spm_load(const char* path) {
  try {
    auto p = std::make_unique<sdgen_spm>();
    const auto status = p->processor.Load(path ? path : "");
    if (!status.ok()) {
      fail(std::string(path ? path : "(null)") + ": " + status.ToString());
      return nullptr;
    }
    return p.release();
  } catch (const std::exception& e) {
    fail(e.what());
    return nullptr;
  } catch (...) {
    fail("unknown error in sdgen_spm_load");
    return nullptr;
  }
}

SDGEN_SPM_EXPORT void sdgen_spm_free(sdgen_spm* p) { delete p; }

SDGEN_SPM_EXPORT int sdgen_spm_encode(const sdgen_spm* p, const char* text, size_t len, int* ids,
                                      int capacity) {
  if (!p || (!text && len)) return fail("sdgen_spm_encode: null argument");
  try {
    std::vector<int> out;
    const auto status = p->processor.Encode(std::string(text ? text : "", len), &out);
    if (!status.ok()) return fail(status.ToString());
    for (int i = 0; i < capacity && i < static_cast<int>(out.size()); ++i) ids[i] = out[i];
    return static_cast<int>(out.size());
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unknown error in sdgen_spm_encode");
  }
}

SDGEN_SPM_EXPORT int sdgen_spm_decode(const sdgen_spm* p, const int* ids, int n, char* out,
                                      size_t capacity) {
  if (!p || (!ids && n > 0) || n < 0) return fail("sdgen_spm_decode: bad argument");
  try {
    const int size = p->processor.GetPieceSize();
    for (int i = 0; i < n; ++i)
      if (ids[i] < 0 || ids[i] >= size)
        return fail("sdgen_spm_decode: id " + std::to_string(ids[i]) + " out of range");
    std::string text;
    const auto status = p->processor.Decode(std::vector<int>(ids, ids + n), &text);
    if (!status.ok()) return fail(status.ToString());
    return copy_out(text, out, capacity);
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unknown error in sdgen_spm_decode");
  }
}

SDGEN_SPM_EXPORT int sdgen_spm_id_to_piece(const sdgen_spm* p, int id, char* out, size_t capacity) {
  if (!p) return fail("sdgen_spm_id_to_piece: null processor");
  if (id < 0 || id >= p->processor.GetPieceSize())
    return fail("sdgen_spm_id_to_piece: id " + std::to_string(id) + " out of range");
  try {
    return copy_out(p->processor.IdToPiece(id), out, capacity);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

SDGEN_SPM_EXPORT int sdgen_spm_vocab_size(const sdgen_spm* p) {
  if (!p) return fail("sdgen_spm_vocab_size: null processor");
  return p->processor.GetPieceSize();
}

SDGEN_SPM_EXPORT int sdgen_spm_special_id(const sdgen_spm* p, int which) {
  if (!p) return fail("sdgen_spm_special_id: null processor");
  switch (which) {
    case 0:
      return p->processor.unk_id();
    case 1:
      return p->processor.bos_id();
    case 2:
      return p->processor.eos_id();
    case 3:
      return p->processor.pad_id();
    default:
      return fail("sdgen_spm_special_id: which must be 0..3");
  }
}

SDGEN_SPM_EXPORT int sdgen_spm_train(const char* args, const char* const* sentences,
                                     size_t n_sentences) {
  if (!args || (!sentences && n_sentences)) return fail("sdgen_spm_train: null argument");
  try {
    // INFO lines only with --minloglevel=0 in args (SentencePiece's own flag, read here)
    const std::string a(args);
    sentencepiece::logging::SetMinLogLevel(a.find("--minloglevel=0") != std::string::npos ? 0 : 1);
    std::string rest;
    for (size_t i = 0; i < a.size();) {  // the trainer does not know the flag: drop it
      const size_t end = std::min(a.find(' ', i), a.size());
      const std::string word = a.substr(i, end - i);
      if (!word.empty() && word.rfind("--minloglevel=", 0) != 0) rest += word + " ";
      i = end + 1;
    }
    VectorIterator it(sentences, n_sentences);
    const auto status =
        sentencepiece::SentencePieceTrainer::Train(rest, n_sentences ? &it : nullptr);
    if (!status.ok()) return fail("SentencePiece trainer: " + status.ToString());
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("unknown error in sdgen_spm_train");
  }
}

SDGEN_SPM_EXPORT const char* sdgen_spm_last_error(void) { return g_error.c_str(); }
