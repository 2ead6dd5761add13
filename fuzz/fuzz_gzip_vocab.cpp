// libFuzzer target: the gzip reader (members, stored / fixed / dynamic DEFLATE blocks, CRC-32
// and length trailers), the zlib wrapper, and the CLIP vocabulary (merges file) built from the
// result. Malformed input must be std::runtime_error with a message; an accepted vocabulary
// must encode text into ids inside it.
#include "fuzz_util.h"
#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/util/gzip.h"
#include "sdgen/util/inflate.h"

using sdgen::fuzz::Reader;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(data, size);
  const uint8_t mode = in.byte();
  const std::string bytes = in.rest();
  try {
    if (mode % 3 == 0) {
      const std::string out = sdgen::gunzip(bytes, "fuzz.gz");
      SDGEN_FUZZ_CHECK(out.size() <= (size_t(1) << 30));
    } else if (mode % 3 == 1) {
      const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
      const std::string out = sdgen::inflate_zlib(p, bytes.size(), 1 << 20);
      SDGEN_FUZZ_CHECK(out.size() <= (1u << 20));
    } else {
      // gzip or plain merges text, as a --tokenizer file
      const auto tokenizer = sdgen::ClipTokenizer::from_merges_bytes(bytes, "fuzz.txt");
      const auto vocab = static_cast<int64_t>(tokenizer->vocab_size());
      for (const char* text : {"a red fox, (sitting)", "\xc3\xa9t\xc3\xa9 \xf0\x9f\xa6\x8a 42"}) {
        for (const int64_t id : tokenizer->encode(text)) SDGEN_FUZZ_CHECK(id >= 0 && id < vocab);
      }
    }
  } catch (const std::runtime_error& e) {
    SDGEN_FUZZ_CHECK(e.what()[0] != '\0');
  }
  return 0;
}
