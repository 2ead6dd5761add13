// libFuzzer target: A1111's prompt syntax (emphasis, BREAK) and the 75-token chunker over the
// CLIP tokenizer sdgen ships. Malformed prompts must be std::invalid_argument; accepted ones
// must chunk into framed chunks of finite weights and ids inside the vocabulary.
#include <cmath>
#include <memory>

#include "fuzz_util.h"
#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/text/prompt_chunks.h"

using sdgen::fuzz::Reader;

namespace {
std::unique_ptr<sdgen::ClipTokenizer> g_tokenizer;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_tokenizer = sdgen::ClipTokenizer::from_path(SDGEN_FUZZ_VOCAB);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  const uint8_t mode = in.byte();
  const sdgen::Emphasis emphasis = mode & 1 ? sdgen::Emphasis::kNone : sdgen::Emphasis::kA1111;
  const std::string prompt = in.rest();
  std::vector<sdgen::PromptRun> runs;
  try {
    runs = sdgen::parse_prompt(prompt, emphasis);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  for (const auto& r : runs) SDGEN_FUZZ_CHECK(std::isfinite(r.weight));
  sdgen::ChunkOptions options;
  options.length = mode & 0x80 ? 75 : 5;  // short chunks reach the comma back-off often
  options.comma_backoff = mode & 0x40 ? 20 : 2;
  const auto chunks = sdgen::tokenize_prompt(prompt, *g_tokenizer, emphasis, options);
  SDGEN_FUZZ_CHECK(!chunks.empty());
  const auto vocab = static_cast<int64_t>(g_tokenizer->vocab_size());
  for (const auto& c : chunks) {
    SDGEN_FUZZ_CHECK(c.ids.size() == options.length + 2);
    SDGEN_FUZZ_CHECK(c.weights.size() == c.ids.size());
    SDGEN_FUZZ_CHECK(c.prompt_tokens <= options.length);
    SDGEN_FUZZ_CHECK(c.ids.front() == g_tokenizer->bos_id());
    for (size_t i = 0; i < c.ids.size(); ++i) {
      SDGEN_FUZZ_CHECK(c.ids[i] >= 0 && c.ids[i] < vocab);
      SDGEN_FUZZ_CHECK(std::isfinite(c.weights[i]));
    }
  }
  return 0;
}
