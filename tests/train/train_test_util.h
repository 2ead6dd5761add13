// Shared pieces of the sdgen-train tests: a temporary folder and a small trained tokenizer.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sdgen/data/scenes.h"
#include "sdgen/text/sentencepiece_tokenizer.h"

#ifndef SDGEN_HAVE_SPM
#define SDGEN_HAVE_SPM 0
#endif

// SentencePiece tests fail when libsdgen_spm.so was built but does not load, and are skipped
// when the build had no SentencePiece to build it from.
#define SDGEN_REQUIRE_SPM()                                                                  \
  do {                                                                                       \
    if (!::sdgen::SentencePieceTokenizer::available()) {                                     \
      if (SDGEN_HAVE_SPM) FAIL() << "libsdgen_spm.so was built but does not load";           \
      GTEST_SKIP() << "no SentencePiece in this build (libsentencepiece-dev not installed)"; \
    }                                                                                        \
  } while (0)

namespace sdgen::testing {

// Folders made by temp_dir, removed when the test program exits.
struct TempDirs {
  std::vector<std::filesystem::path> dirs;
  ~TempDirs() {
    std::error_code ec;
    for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
  }
};
inline TempDirs g_temp_dirs;

inline std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("sdgen-train-test-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::create_directories(dir);
  g_temp_dirs.dirs.push_back(dir);
  return dir.string();
}

inline std::vector<std::string> caption_corpus(int count, uint64_t seed) {
  std::vector<std::string> out;
  data::DatasetOptions o;
  o.seed = seed;
  for (int i = 0; i < count; ++i) {
    data::Rng rng(seed * 1000003 + static_cast<uint64_t>(i));
    out.push_back(data::caption(data::sample_scene(rng, data::Split::kTrain, o), rng));
  }
  return out;
}

// A tokenizer trained once per process on 1500 captions (vocab 128).
inline std::shared_ptr<SentencePieceTokenizer> small_tokenizer() {
  static std::shared_ptr<SentencePieceTokenizer> tok = [] {
    const auto prefix = temp_dir("tok") + "/tok";
    SentencePieceTokenizer::train(caption_corpus(1500, 1), prefix, 128);
    return std::shared_ptr<SentencePieceTokenizer>(
        SentencePieceTokenizer::from_file(prefix + ".model"));
  }();
  return tok;
}

}  // namespace sdgen::testing
