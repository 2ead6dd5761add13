// SentencePiece through libsdgen_spm.so, in a process that also runs libtorch: the shim's
// protobuf must not clash with libtorch's (the reason for the dlopen with RTLD_DEEPBIND).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <torch/torch.h>

#include "sdgen/text/prompt_chunks.h"
#include "train_test_util.h"

namespace sdgen {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(SentencePiece, ShimLoadsBesideLibtorch) {
  // libtorch is live in this process before and after the shim is loaded
  EXPECT_EQ(torch::ones({2, 3}).sum().item<float>(), 6.0f);
  SDGEN_REQUIRE_SPM();
  EXPECT_FALSE(SentencePieceTokenizer::library_path().empty());
  EXPECT_EQ(torch::matmul(torch::eye(3), torch::ones({3, 1})).sum().item<float>(), 3.0f);
}

TEST(SentencePiece, TrainEncodeDecodeRoundTrip) {
  SDGEN_REQUIRE_SPM();
  auto tok = testing::small_tokenizer();
  EXPECT_EQ(tok->unk_id(), 0);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->pad_id(), 3);
  EXPECT_GT(tok->vocab_size(), 40u);
  EXPECT_LE(tok->vocab_size(), 128u);
  for (const std::string text :
       {"a small red circle in the top left corner on a white background",
        "two shapes: a tiny blue star on the left, a big green square on the right, on grey",
        "a picture of an orange triangle of large size in the middle on beige"}) {
    const auto ids = tok->encode(text);
    ASSERT_FALSE(ids.empty());
    for (auto id : ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, static_cast<int64_t>(tok->vocab_size()));
      EXPECT_NE(id, tok->unk_id()) << text;
    }
    EXPECT_EQ(tok->decode(ids), text);
    EXPECT_EQ(tok->encode(text), ids);  // stable
  }
  // case folding (nmt_nfkc_cf): capitals read as the lower-case captions
  EXPECT_EQ(tok->encode("A Small RED Circle"), tok->encode("a small red circle"));
  EXPECT_FALSE(tok->id_to_token(tok->encode("red").back()).empty());
  EXPECT_THROW(tok->id_to_token(100000), std::out_of_range);
}

TEST(SentencePiece, TrainingIsReproducible) {
  SDGEN_REQUIRE_SPM();
  const auto dir = testing::temp_dir("repro");
  const auto corpus = testing::caption_corpus(800, 5);
  SentencePieceTokenizer::train(corpus, dir + "/a", 96);
  SentencePieceTokenizer::train(corpus, dir + "/b", 96);
  // the files differ only in the model_prefix they record
  EXPECT_EQ(read_all(dir + "/a.vocab"), read_all(dir + "/b.vocab"));
  auto a = SentencePieceTokenizer::from_file(dir + "/a.model");
  auto b = SentencePieceTokenizer::from_file(dir + "/b.model");
  ASSERT_EQ(a->vocab_size(), b->vocab_size());
  for (size_t i = 0; i < a->vocab_size(); ++i)
    ASSERT_EQ(a->id_to_token(static_cast<int64_t>(i)), b->id_to_token(static_cast<int64_t>(i)));
  const std::string text = "a big purple diamond at the bottom right on a black background";
  EXPECT_EQ(a->encode(text), b->encode(text));
}

TEST(SentencePiece, FramesPromptsForThePipeline) {
  SDGEN_REQUIRE_SPM();
  auto tok = testing::small_tokenizer();
  ChunkOptions o;
  o.length = 22;
  o.pad = tok->eos_id();
  const auto chunks = tokenize_prompt("a (red) circle", *tok, Emphasis::kA1111, o);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].ids.size(), 24u);
  EXPECT_EQ(chunks[0].ids.front(), tok->bos_id());
  EXPECT_DOUBLE_EQ(*std::max_element(chunks[0].weights.begin(), chunks[0].weights.end()), 1.1);
}

TEST(SentencePiece, ErrorsNameTheFile) {
  SDGEN_REQUIRE_SPM();
  const auto dir = testing::temp_dir("bad");
  std::ofstream(dir + "/bad.model") << "not a model";
  try {
    SentencePieceTokenizer::from_file(dir + "/bad.model");
    FAIL() << "loaded a broken model";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sdgen
