// Prompt chunking as A1111's FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line: 75-token
// chunks, BREAK, comma back-off, framing and padding; on a toy tokenizer and on the CLIP one.
#include <gtest/gtest.h>

#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/text/prompt_chunks.h"

#ifndef SDGEN_REFERENCE_DIR
#error "SDGEN_REFERENCE_DIR must be defined"
#endif

namespace {

using sdgen::chunk_tokens;
using sdgen::ChunkOptions;
using sdgen::Emphasis;
using sdgen::PromptChunk;
using sdgen::TokenRun;

constexpr int64_t kBos = 9998, kEos = 9997, kComma = 9999;

constexpr int64_t kWord = 7777;

// Words are decimal ids (other words kWord), "," is kComma; spaces separate.
class ToyTokenizer : public sdgen::Tokenizer {
 public:
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> ids;
    std::string word;
    auto flush = [&]() {
      if (!word.empty())
        ids.push_back(word.find_first_not_of("0123456789") == std::string::npos ? std::stoll(word)
                                                                                : kWord);
      word.clear();
    };
    for (char c : text) {
      if (c == ',') {
        flush();
        ids.push_back(kComma);
      } else if (c == ' ') {
        flush();
      } else {
        word += c;
      }
    }
    flush();
    return ids;
  }
  int64_t bos_id() const override { return kBos; }
  int64_t eos_id() const override { return kEos; }
  size_t vocab_size() const override { return 10000; }
  std::string id_to_token(int64_t id) const override { return std::to_string(id); }
};

ChunkOptions toy_options() {
  ChunkOptions o;
  o.bos = kBos;
  o.eos = kEos;
  o.pad = kEos;
  o.comma = kComma;
  return o;
}

// ids first, first + 1, ...
std::vector<int64_t> iota(size_t n, int64_t first = 1) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<size_t> sizes(const std::vector<PromptChunk>& chunks) {
  std::vector<size_t> s;
  for (const auto& c : chunks) s.push_back(c.prompt_tokens);
  return s;
}

// The prompt tokens of a chunk (between BOS and the padding).
std::vector<int64_t> body(const PromptChunk& c) {
  return {c.ids.begin() + 1, c.ids.begin() + 1 + static_cast<std::ptrdiff_t>(c.prompt_tokens)};
}

TEST(PromptChunks, EmptyPromptIsOneChunk) {
  auto chunks = chunk_tokens({}, toy_options());
  ASSERT_EQ(chunks.size(), 1u);
  std::vector<int64_t> want(77, kEos);
  want[0] = kBos;
  EXPECT_EQ(chunks[0].ids, want);
  EXPECT_EQ(chunks[0].weights, std::vector<double>(77, 1.0));
  EXPECT_EQ(chunks[0].prompt_tokens, 0u);
  // a run without tokens (the empty prompt's "") is the same
  EXPECT_EQ(chunk_tokens({TokenRun{}}, toy_options())[0].ids, want);
}

TEST(PromptChunks, FramingWeightsAndPadding) {
  TokenRun a{{5, 6}, 1.5, false}, b{{7}, 1.0, false};
  auto chunks = chunk_tokens({a, b}, toy_options());
  ASSERT_EQ(chunks.size(), 1u);
  const auto& c = chunks[0];
  ASSERT_EQ(c.ids.size(), 77u);
  EXPECT_EQ(c.ids[0], kBos);
  EXPECT_EQ(body(c), (std::vector<int64_t>{5, 6, 7}));
  for (size_t i = 4; i < 77; ++i) EXPECT_EQ(c.ids[i], kEos) << i;
  EXPECT_EQ(c.weights[0], 1.0);
  EXPECT_EQ(c.weights[1], 1.5);
  EXPECT_EQ(c.weights[2], 1.5);
  EXPECT_EQ(c.weights[3], 1.0);
  EXPECT_EQ(c.weights[76], 1.0);
  // SD 2.x: after the first EOS everything is the pad id
  auto o = toy_options();
  o.pad = 0;
  const auto sd2 = chunk_tokens({a, b}, o)[0];
  EXPECT_EQ(sd2.ids[4], kEos);
  for (size_t i = 5; i < 77; ++i) EXPECT_EQ(sd2.ids[i], 0) << i;
  EXPECT_EQ(chunk_tokens({}, o)[0].ids[1], kEos);
  EXPECT_EQ(chunk_tokens({}, o)[0].ids[2], 0);
}

TEST(PromptChunks, BoundariesWithoutCommas) {
  auto o = toy_options();
  EXPECT_EQ(sizes(chunk_tokens({{iota(75), 1.0, false}}, o)), (std::vector<size_t>{75}));
  EXPECT_EQ(sizes(chunk_tokens({{iota(76), 1.0, false}}, o)), (std::vector<size_t>{75, 1}));
  EXPECT_EQ(sizes(chunk_tokens({{iota(150), 1.0, false}}, o)), (std::vector<size_t>{75, 75}));
  EXPECT_EQ(sizes(chunk_tokens({{iota(200), 1.0, false}}, o)), (std::vector<size_t>{75, 75, 50}));
  auto chunks = chunk_tokens({{iota(76), 1.0, false}}, o);
  EXPECT_EQ(body(chunks[0]), iota(75));
  EXPECT_EQ(body(chunks[1]), (std::vector<int64_t>{76}));
  EXPECT_EQ(chunks[0].ids[76], kEos);
  // the last chunk stays where the runs end, across runs
  EXPECT_EQ(sizes(chunk_tokens({{iota(40), 1.0, false}, {iota(40, 100), 2.0, false}}, o)),
            (std::vector<size_t>{75, 5}));
}

TEST(PromptChunks, CommaBackOff) {
  auto o = toy_options();
  // comma at index 72 of the first chunk (3 from its end): the 2 tokens after it move on
  auto ids = iota(72);
  ids.push_back(kComma);
  for (int64_t i = 0; i < 47; ++i) ids.push_back(200 + i);
  auto chunks = chunk_tokens({{ids, 1.25, false}}, o);
  EXPECT_EQ(sizes(chunks), (std::vector<size_t>{73, 47}));
  EXPECT_EQ(chunks[0].ids[73], kComma);
  EXPECT_EQ(chunks[0].ids[74], kEos);
  EXPECT_EQ(chunks[0].weights[73], 1.25);
  EXPECT_EQ(chunks[0].weights[74], 1.0);
  EXPECT_EQ(chunks[1].ids[1], 200);
  EXPECT_EQ(chunks[1].weights[1], 1.25);

  // exactly 20 back: moves; 21 back: stays
  auto at = [&](size_t comma_index) {
    auto v = iota(comma_index);
    v.push_back(kComma);
    while (v.size() < 80) v.push_back(500);
    return sizes(chunk_tokens({{v, 1.0, false}}, o));
  };
  EXPECT_EQ(at(55), (std::vector<size_t>{56, 24}));  // 75 - 55 = 20
  EXPECT_EQ(at(54), (std::vector<size_t>{75, 5}));   // 21
  EXPECT_EQ(at(74), (std::vector<size_t>{75, 5}));   // comma last: nothing to move

  // moved tokens keep their own weights, across runs
  auto head = iota(70);
  head.push_back(kComma);
  chunks = chunk_tokens({{head, 1.0, false}, {{300, 301, 302, 303, 304}, 0.5, false}}, o);
  EXPECT_EQ(sizes(chunks), (std::vector<size_t>{71, 5}));
  EXPECT_EQ(body(chunks[1]), (std::vector<int64_t>{300, 301, 302, 303, 304}));
  EXPECT_EQ(chunks[1].weights[1], 0.5);

  // back-off 0 turns it off
  o.comma_backoff = 0;
  EXPECT_EQ(sizes(chunk_tokens({{ids, 1.0, false}}, o)), (std::vector<size_t>{75, 45}));
}

TEST(PromptChunks, CommaThatOpensAChunkIsNotItsLastComma) {
  auto o = toy_options();
  o.length = 10;
  // 10 tokens fill chunk 1; the comma opens chunk 2 but does not count as its comma, so when
  // chunk 2 is full nothing moves (it would if it counted: 10 - 0 <= 20)
  auto ids = iota(10);
  ids.push_back(kComma);
  for (int i = 0; i < 10; ++i) ids.push_back(100 + i);
  auto chunks = chunk_tokens({{ids, 1.0, false}}, o);
  EXPECT_EQ(sizes(chunks), (std::vector<size_t>{10, 10, 1}));
  EXPECT_EQ(chunks[1].ids[1], kComma);
  // a comma that comes while there is room counts
  ids = iota(9);
  ids.push_back(kComma);
  ids.push_back(50);
  chunks = chunk_tokens({{ids, 1.0, false}}, o);
  EXPECT_EQ(sizes(chunks), (std::vector<size_t>{10, 1}));
  ids = {kComma, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(sizes(chunk_tokens({{ids, 1.0, false}}, o)), (std::vector<size_t>{1, 10}));
}

TEST(PromptChunks, Break) {
  auto o = toy_options();
  const TokenRun brk{{}, -1.0, true};
  EXPECT_EQ(sizes(chunk_tokens({{{1, 2}, 1.0, false}, brk, {{3}, 1.0, false}}, o)),
            (std::vector<size_t>{2, 1}));
  // a break at the start closes an empty chunk; one at the end adds nothing
  EXPECT_EQ(sizes(chunk_tokens({brk, {{3}, 1.0, false}}, o)), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(sizes(chunk_tokens({{{1}, 1.0, false}, brk}, o)), (std::vector<size_t>{1}));
  EXPECT_EQ(sizes(chunk_tokens({brk}, o)), (std::vector<size_t>{0}));
  EXPECT_EQ(sizes(chunk_tokens({brk, brk}, o)), (std::vector<size_t>{0, 0}));
  // a full chunk then a break: the break closes it, no empty chunk between
  EXPECT_EQ(sizes(chunk_tokens({{iota(75), 1.0, false}, brk, {{1}, 1.0, false}}, o)),
            (std::vector<size_t>{75, 1}));
  // a break forgets the comma before it
  auto chunks = chunk_tokens({{{kComma}, 1.0, false}, brk, {iota(76, 100), 1.0, false}}, o);
  EXPECT_EQ(sizes(chunks), (std::vector<size_t>{1, 75, 1}));
}

TEST(PromptChunks, TokenizePromptRunsEachRunOnItsOwn) {
  ToyTokenizer tok;
  EXPECT_EQ(sdgen::comma_token(tok), kComma);
  ChunkOptions o;
  auto chunks = sdgen::tokenize_prompt("1 (2 3:1.5) BREAK [4], 5", tok, Emphasis::kA1111, o);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].ids[0], kBos);  // taken from the tokenizer
  EXPECT_EQ(body(chunks[0]), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(chunks[0].weights[2], 1.5);
  EXPECT_EQ(chunks[0].weights[1], 1.0);
  EXPECT_EQ(body(chunks[1]), (std::vector<int64_t>{4, kComma, 5}));
  EXPECT_EQ(chunks[1].weights[1], 1 / 1.1);
  EXPECT_EQ(chunks[1].ids[4], kEos);
  // none: one run of everything; BREAK is a word like any other
  chunks = sdgen::tokenize_prompt("1 BREAK (2)", tok, Emphasis::kNone, o);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(body(chunks[0]), (std::vector<int64_t>{1, kWord, kWord}));
  EXPECT_EQ(sizes(sdgen::tokenize_prompt("1 BREAK 2", tok, Emphasis::kA1111, o)),
            (std::vector<size_t>{1, 1}));
}

TEST(PromptChunks, HasEmphasisBrackets) {
  EXPECT_TRUE(sdgen::has_emphasis_brackets("a (b)"));
  EXPECT_TRUE(sdgen::has_emphasis_brackets("[a"));
  EXPECT_FALSE(sdgen::has_emphasis_brackets("a) b] c"));
}

// ---- with the CLIP tokenizer, on the conformance prompts ----

const sdgen::ClipTokenizer& clip() {
  static auto t = sdgen::ClipTokenizer::from_path(std::string(SDGEN_REFERENCE_DIR) +
                                                  "/clip_vocab/bpe_simple_vocab_16e6.txt.gz");
  return *t;
}

TEST(PromptChunksClip, ConformanceChunkSizes) {
  ChunkOptions o;
  EXPECT_EQ(sdgen::comma_token(clip()), 267);
  auto chunks = sdgen::tokenize_prompt(
      "a (red kite:1.3) high above [green] hills, ((sunny)) sky, (soft clouds: 0.7), a child "
      "running",
      clip(), Emphasis::kA1111, o);
  EXPECT_EQ(sizes(chunks), (std::vector<size_t>{17}));
  const auto& c = chunks[0];
  EXPECT_EQ(c.ids[0], 49406);
  EXPECT_EQ(c.ids[18], 49407);
  EXPECT_EQ(c.ids[76], 49407);
  EXPECT_EQ(clip().id_to_token(c.ids[2]), "red</w>");
  EXPECT_EQ(c.weights[2], 1.3);
  EXPECT_EQ(c.weights[3], 1.3);
  EXPECT_EQ(c.weights[4], 1.0);

  chunks = sdgen::tokenize_prompt(
      "masterpiece, high quality, (an old stone windmill:1.25) beside a tulip field in spring, "
      "rows of red and yellow tulips, [distant farmhouses], a narrow dirt path, puffy white "
      "clouds, bright blue sky, soft morning light, dew on the petals, a flock of geese flying "
      "north, a wooden fence with peeling paint, a bicycle leaning against the fence, ((gentle "
      "breeze)), rolling green hills, dutch countryside, impressionist brush strokes, warm "
      "color palette, (shallow depth of field:1.5), film photograph, kodak portra, faint lens "
      "flare, peaceful atmosphere, on a quiet sunday in april, highly detailed, 4k wallpaper",
      clip(), Emphasis::kA1111, o);
  EXPECT_EQ(sizes(chunks), (std::vector<size_t>{73, 47}));
  EXPECT_EQ(chunks[0].ids[73], 267);  // the chunk ends at its last comma
}

TEST(PromptChunksClip, TwoHundredTokensAreThreeChunks) {
  std::string prompt;
  for (int i = 0; i < 100; ++i) prompt += "red fox ";  // 2 tokens each
  ChunkOptions o;
  auto chunks = sdgen::tokenize_prompt(prompt, clip(), Emphasis::kA1111, o);
  EXPECT_EQ(sizes(chunks), (std::vector<size_t>{75, 75, 50}));
  for (const auto& c : chunks) EXPECT_EQ(c.ids.size(), 77u);
}

TEST(PromptChunksClip, EmphasisNoneTokenizesTheBrackets) {
  ChunkOptions o;
  auto a1111 = sdgen::tokenize_prompt("a (fox:1.2)", clip(), Emphasis::kA1111, o);
  auto none = sdgen::tokenize_prompt("a (fox:1.2)", clip(), Emphasis::kNone, o);
  EXPECT_EQ(a1111[0].prompt_tokens, 2u);
  EXPECT_EQ(none[0].prompt_tokens, clip().encode("a (fox:1.2)").size());
  EXPECT_GT(none[0].prompt_tokens, 2u);
  for (double w : none[0].weights) EXPECT_EQ(w, 1.0);
}

}  // namespace
