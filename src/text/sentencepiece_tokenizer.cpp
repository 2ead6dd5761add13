#include "sdgen/text/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "sdgen/text/spm_shim.h"

#ifndef SDGEN_SPM_BUILD_DIR
#define SDGEN_SPM_BUILD_DIR ""
#endif
#ifndef SDGEN_SPM_INSTALL_LIBDIR
#define SDGEN_SPM_INSTALL_LIBDIR ""
#endif

namespace sdgen {
namespace {

constexpr const char* kLibName = "libsdgen_spm.so";

struct Api {
  void* handle = nullptr;
  std::string path;
  decltype(&sdgen_spm_abi_version) abi_version = nullptr;
  decltype(&sdgen_spm_load) load = nullptr;
  decltype(&sdgen_spm_free) free = nullptr;
  decltype(&sdgen_spm_encode) encode = nullptr;
  decltype(&sdgen_spm_decode) decode = nullptr;
  decltype(&sdgen_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&sdgen_spm_vocab_size) vocab_size = nullptr;
  decltype(&sdgen_spm_special_id) special_id = nullptr;
  decltype(&sdgen_spm_train) train = nullptr;
  decltype(&sdgen_spm_last_error) last_error = nullptr;
};

std::string exe_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string s(buf, static_cast<size_t>(n));
  return s.substr(0, s.rfind('/'));
}

bool file_exists(const std::string& p) { return ::access(p.c_str(), R_OK) == 0; }

template <typename F>
void bind(void* h, const char* name, F& out, std::string& missing) {
  out = reinterpret_cast<F>(::dlsym(h, name));
  if (!out) missing += std::string(missing.empty() ? "" : ", ") + name;
}

// Loads the shim once; throws SentencePieceUnavailable (every later call too) when it cannot.
const Api& api() {
  static std::once_flag once;
  static Api a;
  static std::string error;
  std::call_once(once, [] {
    std::string tried;
    for (const auto& path : SentencePieceTokenizer::library_candidates()) {
      const bool bare = path.find('/') == std::string::npos;
      if (!bare && !file_exists(path)) continue;
      void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (!h) {
        const char* e = ::dlerror();
        tried += "\n  " + path + ": " + (e ? e : "dlopen failed");
        continue;
      }
      std::string missing;
      bind(h, "sdgen_spm_abi_version", a.abi_version, missing);
      bind(h, "sdgen_spm_load", a.load, missing);
      bind(h, "sdgen_spm_free", a.free, missing);
      bind(h, "sdgen_spm_encode", a.encode, missing);
      bind(h, "sdgen_spm_decode", a.decode, missing);
      bind(h, "sdgen_spm_id_to_piece", a.id_to_piece, missing);
      bind(h, "sdgen_spm_vocab_size", a.vocab_size, missing);
      bind(h, "sdgen_spm_special_id", a.special_id, missing);
      bind(h, "sdgen_spm_train", a.train, missing);
      bind(h, "sdgen_spm_last_error", a.last_error, missing);
      if (missing.empty() && a.abi_version() != SDGEN_SPM_ABI_VERSION)
        missing = "ABI version " + std::to_string(a.abi_version()) + " (want " +
                  std::to_string(SDGEN_SPM_ABI_VERSION) + ")";
      if (!missing.empty()) {
        tried += "\n  " + path + ": lacks " + missing;
        ::dlclose(h);
        a = Api{};
        continue;
      }
      a.handle = h;
      a.path = path;
      return;
    }
    error = std::string("SentencePiece is not available: ") + kLibName +
            " (sdgen's SentencePiece shim, built when libsentencepiece-dev is installed) was "
            "not found or did not load; set SDGEN_SPM_LIBRARY to its path" +
            (tried.empty() ? std::string() : "; tried:" + tried);
  });
  if (!a.handle) throw SentencePieceUnavailable(error);
  return a;
}

std::string last_error() {
  const char* e = api().last_error();
  return e && *e ? e : "unknown error";
}

}  // namespace

std::vector<std::string> SentencePieceTokenizer::library_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("SDGEN_SPM_LIBRARY"); env && *env) out.emplace_back(env);
  const std::string exe = exe_dir();
  if (!exe.empty()) {
    out.push_back(exe + "/" + kLibName);
    out.push_back(exe + "/../lib/" + kLibName);
  }
  if (*SDGEN_SPM_BUILD_DIR) out.push_back(std::string(SDGEN_SPM_BUILD_DIR) + "/" + kLibName);
  if (*SDGEN_SPM_INSTALL_LIBDIR)
    out.push_back(std::string(SDGEN_SPM_INSTALL_LIBDIR) + "/" + kLibName);
  out.emplace_back(kLibName);  // LD_LIBRARY_PATH, the loader's cache
  return out;
}

bool SentencePieceTokenizer::available() {
  try {
    api();
    return true;
  } catch (const SentencePieceUnavailable&) {
    return false;
  }
}

std::string SentencePieceTokenizer::library_path() { return available() ? api().path : ""; }

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_file(
    const std::string& model_path) {
  const Api& a = api();
  std::unique_ptr<SentencePieceTokenizer> t(new SentencePieceTokenizer());
  t->handle_ = a.load(model_path.c_str());
  if (!t->handle_)
    throw std::runtime_error(model_path + ": not a SentencePiece model (" + last_error() + ")");
  t->vocab_size_ = static_cast<size_t>(a.vocab_size(t->handle_));
  t->unk_ = a.special_id(t->handle_, 0);
  t->bos_ = a.special_id(t->handle_, 1);
  t->eos_ = a.special_id(t->handle_, 2);
  t->pad_ = a.special_id(t->handle_, 3);
  if (t->bos_ < 0 || t->eos_ < 0)
    throw std::runtime_error(model_path +
                             ": the SentencePiece model has no BOS or EOS piece; sdgen frames "
                             "prompts as BOS + tokens + EOS (train it with --bos_id/--eos_id)");
  return t;
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (handle_) api().free(handle_);
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text) const {
  const Api& a = api();
  std::vector<int> ids(text.size() + 8);
  int n = a.encode(handle_, text.data(), text.size(), ids.data(), static_cast<int>(ids.size()));
  if (n > static_cast<int>(ids.size())) {
    ids.resize(static_cast<size_t>(n));
    n = a.encode(handle_, text.data(), text.size(), ids.data(), n);
  }
  if (n < 0) throw std::runtime_error("SentencePiece encode: " + last_error());
  return std::vector<int64_t>(ids.begin(), ids.begin() + n);
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  const Api& a = api();
  std::vector<int> v(ids.begin(), ids.end());
  std::string out(64, '\0');
  int n = a.decode(handle_, v.data(), static_cast<int>(v.size()), out.data(), out.size());
  if (n >= static_cast<int>(out.size())) {
    out.assign(static_cast<size_t>(n) + 1, '\0');
    n = a.decode(handle_, v.data(), static_cast<int>(v.size()), out.data(), out.size());
  }
  if (n < 0) throw std::runtime_error("SentencePiece decode: " + last_error());
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  const Api& a = api();
  if (id < 0 || id >= static_cast<int64_t>(vocab_size_))
    throw std::out_of_range("SentencePiece id " + std::to_string(id) + " out of range");
  std::string out(64, '\0');
  int n = a.id_to_piece(handle_, static_cast<int>(id), out.data(), out.size());
  if (n >= static_cast<int>(out.size())) {
    out.assign(static_cast<size_t>(n) + 1, '\0');
    n = a.id_to_piece(handle_, static_cast<int>(id), out.data(), out.size());
  }
  if (n < 0) throw std::runtime_error("SentencePiece id_to_piece: " + last_error());
  out.resize(static_cast<size_t>(n));
  return out;
}

void SentencePieceTokenizer::train(const std::vector<std::string>& sentences,
                                   const std::string& model_prefix, int vocab_size,
                                   const std::string& extra_args) {
  const Api& a = api();
  if (sentences.empty()) throw std::invalid_argument("SentencePiece training needs sentences");
  std::vector<const char*> ptrs;
  ptrs.reserve(sentences.size());
  for (const auto& s : sentences) ptrs.push_back(s.c_str());
  // A single thread and a fixed seed order keep the model the same from run to run.
  std::string args = "--model_prefix=" + model_prefix +
                     " --vocab_size=" + std::to_string(vocab_size) +
                     " --model_type=unigram --normalization_rule_name=nmt_nfkc_cf"
                     " --character_coverage=1.0 --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=3"
                     " --num_threads=1 --input_sentence_size=0 --shuffle_input_sentence=false"
                     " --hard_vocab_limit=false --minloglevel=1";
  if (!extra_args.empty()) args += " " + extra_args;
  if (a.train(args.c_str(), ptrs.data(), ptrs.size()) != 0)
    throw std::runtime_error("SentencePiece training failed: " + last_error());
}

}  // namespace sdgen
