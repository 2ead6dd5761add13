// Textual-inversion embeddings: reading files (dtypes, shapes, SDXL pairs, widths, legacy .pt,
// hashes), matching names in prompts (multi-token names, longest first, emphasis runs) and the
// chunk layouts of A1111's tokenize_line around chunk boundaries and comma back-off.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sdgen/io/safetensors.h"
#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/text/embeddings.h"
#include "sdgen/text/prompt_chunks.h"
#include "sdgen/util/sha256.h"

#ifndef SDGEN_REFERENCE_DIR
#error "SDGEN_REFERENCE_DIR must be defined"
#endif

namespace sdgen {
namespace {

namespace fs = std::filesystem;

const std::string kConformance =
    std::string(SDGEN_REFERENCE_DIR) + "/../conformance/lora/embeddings";

constexpr int64_t kBos = 9998, kEos = 9997, kComma = 9999;

// Each space-separated word is its decimal id; "," is kComma.
class ToyTokenizer : public Tokenizer {
 public:
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> ids;
    std::string word;
    auto flush = [&]() {
      if (!word.empty()) ids.push_back(std::stoll(word));
      word.clear();
    };
    for (char c : text) {
      if (c == ',' || c == ' ') flush();
      if (c == ',') ids.push_back(kComma);
      if (c != ',' && c != ' ') word += c;
    }
    flush();
    return ids;
  }
  int64_t bos_id() const override { return kBos; }
  int64_t eos_id() const override { return kEos; }
  size_t vocab_size() const override { return 10000; }
  std::string id_to_token(int64_t id) const override { return std::to_string(id); }
};

Embedding fake(const std::string& name, int64_t rows, int64_t width = 4) {
  Embedding e;
  e.name = name;
  e.path = name + ".safetensors";
  e.hash = "h-" + name;
  e.vectors[""] = {rows, width, std::vector<float>(static_cast<size_t>(rows * width), 0.5f)};
  return e;
}

// "1 2 3 ... n" from `first`
std::string words(int first, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " : "") + std::to_string(first + i);
  return s;
}

std::vector<PromptChunk> toy_chunks(const std::string& prompt, const EmbeddingDatabase& db) {
  ToyTokenizer tok;
  EmbeddingMatcher m(db, tok);
  return tokenize_prompt(prompt, tok, Emphasis::kA1111, ChunkOptions{}, &m);
}

TEST(EmbeddingMatch, MultiTokenNameLongestFirstAndLoadOrderOnTies) {
  EmbeddingDatabase db;
  ASSERT_TRUE(db.add(fake("500", 1)));
  ASSERT_TRUE(db.add(fake("500 501", 2)));
  ASSERT_TRUE(db.add(fake("500  501", 3)));  // the same tokens: the first loaded wins
  ASSERT_FALSE(db.add(fake("500", 4)));      // a taken name
  ToyTokenizer tok;
  EmbeddingMatcher m(db, tok);
  const std::vector<int64_t> t = {7, 500, 501, 502, 500, 502};
  EXPECT_EQ(m.at(t, 0).embedding, nullptr);
  EXPECT_EQ(m.at(t, 1).embedding->name, "500 501");
  EXPECT_EQ(m.at(t, 1).tokens, 2u);
  EXPECT_EQ(m.at(t, 4).embedding->name, "500");
  EXPECT_EQ(m.at(t, 4).tokens, 1u);
  EXPECT_EQ(m.at({500}, 0).embedding->name, "500");  // a longer name running past the end
  EXPECT_EQ(m.at(t, 6).embedding, nullptr);
}

TEST(EmbeddingMatch, SlotsCarryTheEmphasisRunsWeightAndNamesDoNotSpanRuns) {
  EmbeddingDatabase db;
  db.add(fake("500 501", 2));
  auto c = toy_chunks("7 (500 501:1.3) 8", db);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(std::vector<int64_t>(c[0].ids.begin(), c[0].ids.begin() + 5),
            (std::vector<int64_t>{kBos, 7, 0, 0, 8}));
  EXPECT_EQ(std::vector<double>(c[0].weights.begin(), c[0].weights.begin() + 5),
            (std::vector<double>{1.0, 1.0, 1.3, 1.3, 1.0}));
  ASSERT_EQ(c[0].fixes.size(), 1u);
  EXPECT_EQ(c[0].fixes[0].offset, 1u);
  EXPECT_EQ(c[0].prompt_tokens, 4u);
  // "500 (501)": two runs, so no match
  c = toy_chunks("500 (501)", db);
  EXPECT_TRUE(c[0].fixes.empty());
  EXPECT_EQ(c[0].ids[1], 500);
  // Emphasis "none": the whole prompt is one run, brackets included as text
  ToyTokenizer tok;
  EmbeddingMatcher m(db, tok);
  c = tokenize_prompt("7 500 501", tok, Emphasis::kNone, ChunkOptions{}, &m);
  ASSERT_EQ(c[0].fixes.size(), 1u);
}

// The layouts below are what A1111's tokenize_line (sd_hijack_clip.py, 1.10) gives for the same
// token lists, run in Python with this toy tokenizer's ids.
TEST(EmbeddingChunks, AnEmbeddingThatDoesNotFitStartsTheNextChunk) {
  EmbeddingDatabase db;
  db.add(fake("500 501", 3));
  // 74 tokens, then 3 slots: 77 > 75, so chunk 1 closes with 74 tokens
  auto c = toy_chunks(words(1, 74) + " 500 501 9", db);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_TRUE(c[0].fixes.empty());
  EXPECT_EQ(c[0].prompt_tokens, 74u);
  EXPECT_EQ(c[0].ids[75], kEos);
  ASSERT_EQ(c[1].fixes.size(), 1u);
  EXPECT_EQ(c[1].fixes[0].offset, 0u);
  EXPECT_EQ(std::vector<int64_t>(c[1].ids.begin(), c[1].ids.begin() + 6),
            (std::vector<int64_t>{kBos, 0, 0, 0, 9, kEos}));
  // 72 tokens + 3 slots fit exactly; the next token opens chunk 2
  c = toy_chunks(words(1, 72) + " 500 501 9", db);
  ASSERT_EQ(c.size(), 2u);
  ASSERT_EQ(c[0].fixes.size(), 1u);
  EXPECT_EQ(c[0].fixes[0].offset, 72u);
  EXPECT_EQ(c[0].ids[73], 0);
  EXPECT_EQ(c[0].ids[75], 0);
  EXPECT_EQ(c[1].ids[1], 9);
  // 75 tokens: the full chunk closes before the name is looked at
  c = toy_chunks(words(1, 75) + " 500 501", db);
  ASSERT_EQ(c.size(), 2u);
  ASSERT_EQ(c[1].fixes.size(), 1u);
  EXPECT_EQ(c[1].fixes[0].offset, 0u);
  EXPECT_EQ(c[1].prompt_tokens, 3u);
  // an embedding of more vectors than a chunk holds
  EmbeddingDatabase big;
  big.add(fake("500", 76));
  EXPECT_THROW(toy_chunks("500", big), std::invalid_argument);
}

TEST(EmbeddingChunks, CommaBackoffMovesTheSlotsButLeavesTheFixBehindAsA1111) {
  EmbeddingDatabase db;
  db.add(fake("500 501", 3));
  // 60 words, ",", the embedding (slots 61..63), 11 words: 75 tokens; then "9" finds the chunk
  // full with its last comma 15 from the end: tokens 61.. move on, the fix (offset 61) stays
  auto c = toy_chunks(words(1, 60) + ", 500 501 " + words(100, 11) + " 9", db);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].prompt_tokens, 61u);
  ASSERT_EQ(c[0].fixes.size(), 1u);
  EXPECT_EQ(c[0].fixes[0].offset, 61u);
  EXPECT_EQ(c[0].ids[61], kComma);
  EXPECT_EQ(c[0].ids[62], kEos);  // where the vectors will go: the closed chunk's padding
  EXPECT_TRUE(c[1].fixes.empty());
  EXPECT_EQ(std::vector<int64_t>(c[1].ids.begin(), c[1].ids.begin() + 5),
            (std::vector<int64_t>{kBos, 0, 0, 0, 100}));
  EXPECT_EQ(c[1].prompt_tokens, 15u);
}

TEST(EmbeddingChunks, UsedEmbeddingsInChunkOrderOnceEachAndTiHashesOrder) {
  EmbeddingDatabase db;
  db.add(fake("500", 1));
  db.add(fake("600", 1));
  const auto c = toy_chunks("600 7 500 600 BREAK 500", db);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(used_embeddings(c), (EmbeddingHashes{{"600", "h-600"}, {"500", "h-500"}}));
  EXPECT_EQ(ti_hash_name("a:b,c"), "abc");
  // negative encoded first, the prompt's list put in front of it
  EXPECT_EQ(ti_hashes({{"p", "1"}}, {{"n", "2"}, {"p", "1"}}),
            (EmbeddingHashes{{"p", "1"}, {"n", "2"}, {"p", "1"}}));
}

TEST(EmbeddingChunks, ConformanceEmbeddingWithTheClipTokenizer) {
  // emb_prompt: "mossy-glow" is four CLIP tokens; its 2 vectors take slots 7..8 of the chunk
  // (after BOS), as the case's notes say
  const auto tok = ClipTokenizer::from_path(std::string(SDGEN_REFERENCE_DIR) +
                                            "/clip_vocab/bpe_simple_vocab_16e6.txt.gz");
  EXPECT_EQ(tok->encode("mossy-glow").size(), 4u);
  EmbeddingDatabase db;
  db.add(read_embedding_file(kConformance + "/mossy-glow.safetensors"));
  db.add(read_embedding_file(kConformance + "/crookedhands.safetensors"));
  EmbeddingMatcher m(db, *tok);
  auto c = tokenize_prompt("an ancient stone well covered in mossy-glow vines", *tok,
                           Emphasis::kA1111, ChunkOptions{}, &m);
  ASSERT_EQ(c.size(), 1u);
  ASSERT_EQ(c[0].fixes.size(), 1u);
  EXPECT_EQ(c[0].fixes[0].offset, 6u);
  EXPECT_EQ(c[0].ids[7], 0);
  EXPECT_EQ(c[0].ids[8], 0);
  EXPECT_NE(c[0].ids[9], 0);
  EXPECT_EQ(used_embeddings(c), (EmbeddingHashes{{"mossy-glow", "06d0b040e62a"}}));
  c = tokenize_prompt("crookedhands, lowres", *tok, Emphasis::kA1111, ChunkOptions{}, &m);
  ASSERT_EQ(c[0].fixes.size(), 1u);
  EXPECT_EQ(c[0].fixes[0].offset, 0u);
  EXPECT_EQ(used_embeddings(c), (EmbeddingHashes{{"crookedhands", "053f6a105f82"}}));
}

class EmbeddingFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sdgen-embeddings-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  void write(const std::string& rel, const std::vector<TensorBlob>& blobs) {
    fs::create_directories(fs::path(path(rel)).parent_path());
    write_safetensors(path(rel), blobs);
  }
  void write_f32(const std::string& rel, const std::string& name, std::vector<int64_t> shape,
                 const std::vector<float>& v) {
    write(rel, {{name, DType::F32, shape, v.data(), v.size() * 4}});
  }
  fs::path dir_;
};

TEST_F(EmbeddingFiles, DtypesWidenExactlyAndShapes) {
  const std::vector<float> v = {0.5f, -1.25f, 3.0f, 1e-3f, 7.0f, -0.0f, 2.5f, 65504.0f};
  write_f32("a/f32.safetensors", "emb_params", {2, 4}, v);
  std::vector<uint16_t> h, b;
  for (float x : v) {
    h.push_back(float_to_half(x));
    b.push_back(float_to_bf16(x));
  }
  write("a/f16.safetensors", {{"emb_params", DType::F16, {2, 4}, h.data(), h.size() * 2}});
  write("a/bf16.safetensors", {{"string", DType::BF16, {8}, b.data(), b.size() * 2}});
  auto e = read_embedding_file(path("a/f32.safetensors"));
  EXPECT_EQ(e.name, "f32");
  EXPECT_EQ(e.slots(), 2);
  EXPECT_EQ(e.vectors.at("").values, v);
  e = read_embedding_file(path("a/f16.safetensors"));
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(e.vectors.at("").values[i], half_to_float(h[i]));
  e = read_embedding_file(path("a/bf16.safetensors"));  // 1-D: one vector of 8
  EXPECT_EQ(e.vectors.at("").rows, 1);
  EXPECT_EQ(e.vectors.at("").width, 8);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(e.vectors.at("").values[i], bf16_to_float(b[i]));
  EXPECT_EQ(e.hash, sha256_file_hex(path("a/bf16.safetensors")).substr(0, 12));
  // the public file's hash as A1111 writes it (TI hashes: "mossy-glow: 06d0b040e62a")
  EXPECT_EQ(read_embedding_file(kConformance + "/mossy-glow.safetensors").hash, "06d0b040e62a");
  const std::vector<int32_t> ints(4, 1);
  write("a/int.safetensors", {{"emb_params", DType::I32, {1, 4}, ints.data(), 16}});
  EXPECT_THROW(read_embedding_file(path("a/int.safetensors")), std::runtime_error);
  write_f32("a/3d.safetensors", "emb_params", {1, 2, 4}, v);
  EXPECT_THROW(read_embedding_file(path("a/3d.safetensors")), std::runtime_error);
}

TEST_F(EmbeddingFiles, DatabaseSkipsWithWarnings) {
  const std::vector<float> v4(4, 1.0f), v8(8, 1.0f), v6(6, 2.0f);
  write_f32("d1/good.safetensors", "emb_params", {1, 4}, v4);
  write_f32("d1/sub/deep.safetensors", "emb_params", {2, 2}, v4);  // width 2: mismatch
  write_f32("d1/wide.safetensors", "emb_params", {1, 8}, v8);
  write("d1/two.safetensors",
        {{"a", DType::F32, {1, 4}, v4.data(), 16}, {"b", DType::F32, {1, 4}, v4.data(), 16}});
  write("d1/xl.safetensors", {{"clip_l", DType::F32, {1, 4}, v4.data(), 16},
                              {"clip_g", DType::F32, {1, 6}, v6.data(), 24}});
  std::ofstream(path("d1/legacy.pt")) << "PK\x03\x04 pickle";
  std::ofstream(path("d1/empty.safetensors"));  // empty: skipped without a word, as A1111
  std::ofstream(path("d1/notes.txt")) << "not an embedding";
  write_f32("d2/good.safetensors", "emb_params", {1, 4}, v4);  // name taken by d1's
  write_f32("d2/other.safetensors", "emb_params", {3, 4}, std::vector<float>(12, 0.25f));

  std::vector<std::string> warnings;
  EmbeddingTarget target{{{"", 4}}, 75};
  const auto db = EmbeddingDatabase::load({path("d1"), path("d2")}, target,
                                          [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_EQ(db.size(), 2u);
  EXPECT_EQ(db.all()[0]->name, "good");
  EXPECT_EQ(db.all()[0]->path, path("d1/good.safetensors"));
  EXPECT_EQ(db.all()[1]->name, "other");
  EXPECT_EQ(db.find("other")->slots(), 3);
  auto warned = [&](const std::string& file, std::vector<std::string> parts) {
    for (const auto& w : warnings) {
      if (w.find(path(file)) == std::string::npos) continue;
      bool all = true;
      for (const auto& p : parts) all = all && w.find(p) != std::string::npos;
      if (all) return true;
    }
    return false;
  };
  EXPECT_TRUE(warned("d1/wide.safetensors", {"skipped", "width 8", "4"}));
  EXPECT_TRUE(warned("d1/sub/deep.safetensors", {"width 2", "4"}));
  EXPECT_TRUE(warned("d1/two.safetensors", {"2 tensors"}));
  EXPECT_TRUE(warned("d1/xl.safetensors", {"SDXL"}));
  EXPECT_TRUE(warned("d1/legacy.pt", {"not read", ".safetensors"}));
  EXPECT_TRUE(warned("d2/good.safetensors", {"taken by " + path("d1/good.safetensors")}));
  EXPECT_EQ(warnings.size(), 6u);

  // SDXL: the pair is read, the one-tensor files are not
  warnings.clear();
  const auto xl = EmbeddingDatabase::load({path("d1")}, {{{"clip_l", 4}, {"clip_g", 6}}, 75},
                                          [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_EQ(xl.size(), 1u);
  EXPECT_EQ(xl.all()[0]->name, "xl");
  EXPECT_EQ(xl.all()[0]->slots(), 1);
  EXPECT_EQ(xl.all()[0]->vectors.at("clip_g").values, v6);
  EXPECT_TRUE(warned("d1/good.safetensors", {"SD 1.x / 2.x embedding"}));

  // more vectors than a chunk holds
  warnings.clear();
  const auto small = EmbeddingDatabase::load({path("d2")}, {{{"", 4}}, 2},
                                             [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_EQ(small.size(), 1u);
  EXPECT_TRUE(warned("d2/other.safetensors", {"3 vectors"}));

  try {
    EmbeddingDatabase::load({path("missing")}, target, {});
    FAIL() << "a missing folder must throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(path("missing")), std::string::npos) << e.what();
  }
  EXPECT_THROW(EmbeddingDatabase::load({path("d1/notes.txt")}, target, {}), std::invalid_argument);
}

}  // namespace
}  // namespace sdgen
