// Textual-inversion embeddings through the text encoders: a prompt naming an embedding encodes
// exactly as the same prompt with ordinary words in its place whose token-embedding rows were set
// to the embedding's vectors (SD 1.x CLIP, SD 2.x OpenCLIP, SDXL's two encoders; emphasis and
// several chunks included); the prompt cache; the hashes an image reports; the command line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli_test_util.h"
#include "sdgen/io/infotext.h"
#include "sdgen/io/png.h"
#include "sdgen/io/safetensors.h"
#include "sdgen/pipeline/sdxl_conditioner.h"
#include "sdgen/text/clip_tokenizer.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

namespace fs = std::filesystem;

const std::string kVocab = "clip_vocab/bpe_simple_vocab_16e6.txt.gz";
const std::string kEmbeddings = "../conformance/lora/embeddings";

std::shared_ptr<const Tokenizer> tokenizer() {
  static std::shared_ptr<const Tokenizer> t = ClipTokenizer::from_path(ref(kVocab));
  return t;
}

// Each test loads its own model: the token-embedding rows are changed and put back.
LoadedModel load(const std::string& rel) {
  LoadOptions o;
  o.model_path = ref(rel);
  return load_model(o);
}

torch::Tensor& token_embedding(TextEncoder& encoder) {
  for (auto& p : encoder.module().named_parameters())
    if (p.key().size() >= 22 && p.key().rfind("token_embedding.weight") == p.key().size() - 22)
      return p.value();
  throw std::runtime_error("no token_embedding.weight");
}

// Sets rows `ids` of the encoder's token embeddings to `vectors` [n, C] until destroyed.
class PatchedRows {
 public:
  PatchedRows(TextEncoder& encoder, const std::vector<int64_t>& ids, const torch::Tensor& vectors)
      : weight_(token_embedding(encoder)), ids_(torch::tensor(ids, torch::kLong)) {
    torch::NoGradGuard no_grad;
    saved_ = weight_.index_select(0, ids_).clone();
    weight_.index_copy_(0, ids_, vectors.to(weight_.dtype()));
  }
  ~PatchedRows() {
    torch::NoGradGuard no_grad;
    weight_.index_copy_(0, ids_, saved_);
  }

 private:
  torch::Tensor weight_, ids_, saved_;
};

EmbeddingVectors random_vectors(int64_t rows, int64_t width, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto t = torch::randn({rows, width}, gen, torch::TensorOptions().dtype(torch::kFloat));
  return {rows, width, std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel())};
}

torch::Tensor as_tensor(const EmbeddingVectors& v) {
  return torch::tensor(v.values).view({v.rows, v.width});
}

// The single token of `word` in the CLIP vocabulary.
int64_t token_of(const std::string& word) {
  const auto ids = tokenizer()->encode(word);
  if (ids.size() != 1) throw std::runtime_error(word + " is not one token");
  return ids[0];
}

const std::string kFiller = [] {
  std::string s;
  for (int i = 0; i < 76; ++i) s += "stone ";
  return s;
}();

// Prompts naming the embeddings "mossy-glow" (2 vectors) and "crookedhands" (1), and the same
// prompts with the words "cat dog" and "sun" in their places (the same token layout).
const std::vector<std::pair<std::string, std::string>> kPrompts = {
    {"an ancient stone well covered in mossy-glow vines",
     "an ancient stone well covered in cat dog vines"},
    {"a (mossy-glow:1.3) well, [crookedhands]", "a (cat dog:1.3) well, [sun]"},
    {kFiller + "mossy-glow, crookedhands", kFiller + "cat dog, sun"},  // in the second chunk
};

TEST(EmbeddingInjection, ClipAndOpenClipEncodeTheVectorsAtTheirSlots) {
  for (const std::string model : {"tiny-sd1.safetensors", "sd2/tiny-sd2.safetensors"}) {
    SCOPED_TRACE(model);
    LoadedModel m = load(model);
    const int64_t width = m.config.text.width;
    EmbeddingDatabase db;
    Embedding mossy{"mossy-glow", "", "aaaaaaaaaaaa", {{"", random_vectors(2, width, 1)}}};
    Embedding crooked{"crookedhands", "", "bbbbbbbbbbbb", {{"", random_vectors(1, width, 2)}}};
    db.add(mossy);
    db.add(crooked);
    TextContextConditioner with(m.text, tokenizer(), torch::kCPU);
    TextContextConditioner plain(m.text, tokenizer(), torch::kCPU);
    with.set_embeddings(std::make_shared<const EmbeddingDatabase>(std::move(db)));
    const PatchedRows rows(
        *m.text, {token_of("cat"), token_of("dog"), token_of("sun")},
        torch::cat({as_tensor(mossy.vectors[""]), as_tensor(crooked.vectors[""])}));
    for (const auto& [named, worded] : kPrompts) {
      SCOPED_TRACE(named);
      const auto got = with.encode(named, ConditionRequest(1)).context;
      const auto want = plain.encode(worded, ConditionRequest(1)).context;
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(torch::equal(got, want)) << max_abs_diff(got, want);
      // and the embedding changes the context: without the database the name is its words
      EXPECT_GT(max_abs_diff(plain.encode(named, ConditionRequest(1)).context, got), 1e-3);
    }
  }
}

TEST(EmbeddingInjection, SdxlGivesEachEncoderItsOwnVectors) {
  LoadedModel m = load("sdxl/tiny-sdxl.safetensors");
  const int64_t wl = m.config.text.width, wg = m.config.text_2.width;
  Embedding mossy{"mossy-glow",
                  "",
                  "aaaaaaaaaaaa",
                  {{"clip_l", random_vectors(2, wl, 3)}, {"clip_g", random_vectors(2, wg, 4)}}};
  Embedding crooked{"crookedhands",
                    "",
                    "bbbbbbbbbbbb",
                    {{"clip_l", random_vectors(1, wl, 5)}, {"clip_g", random_vectors(1, wg, 6)}}};
  auto db = std::make_shared<EmbeddingDatabase>();
  db->add(mossy);
  db->add(crooked);
  SdxlConditioner with(m, tokenizer(), torch::kCPU), plain(m, tokenizer(), torch::kCPU);
  with.set_embeddings(db);
  const std::vector<int64_t> ids = {token_of("cat"), token_of("dog"), token_of("sun")};
  auto both = [&](const char* key) {
    return torch::cat({as_tensor(mossy.vectors[key]), as_tensor(crooked.vectors[key])});
  };
  const PatchedRows l(*m.text, ids, both("clip_l")), g(*m.text_2, ids, both("clip_g"));
  GenerationParams at;
  at.width = at.height = 64;
  const ConditionRequest r = condition_request(at, false);
  for (const auto& [named, worded] : kPrompts) {
    SCOPED_TRACE(named);
    const auto got = with.encode(named, r), want = plain.encode(worded, r);
    EXPECT_TRUE(torch::equal(got.context, want.context)) << max_abs_diff(got.context, want.context);
    EXPECT_TRUE(torch::equal(got.vector, want.vector)) << max_abs_diff(got.vector, want.vector);
    EXPECT_GT(max_abs_diff(plain.encode(named, r).context, got.context), 1e-3);
  }
}

TEST(EmbeddingInjection, FixesAreClippedToTheSequenceAsA1111) {
  // A1111: emb_len = min(T - offset - 1, n)
  const auto x = torch::zeros({2, 5, 3});
  const auto v = torch::ones({4, 3});
  const auto y = apply_token_fixes(x, {{1, 3, v}});
  EXPECT_EQ(y.sum().item<float>(), 6.0f);  // positions 3 and 4 of row 1
  EXPECT_EQ(y[1][3].sum().item<float>(), 3.0f);
  EXPECT_EQ(x.sum().item<float>(), 0.0f);  // the input is not changed
  EXPECT_THROW(apply_token_fixes(x, {{0, 1, torch::ones({1, 4})}}), std::invalid_argument);
}

// The public embeddings (width 32, as tiny-sd1's text encoder).
EmbeddingDatabase conformance_embeddings() {
  return EmbeddingDatabase::load({ref(kEmbeddings)}, {{{"", 32}}, 75}, {});
}

TEST(EmbeddingInjection, TheCacheAndTheHashesAnImageReports) {
  LoadedModel m = load("tiny-sd1.safetensors");
  ASSERT_EQ(m.config.text.width, 32);
  Pipeline p(m, tokenizer(), torch::kCPU, torch::kFloat);
  const std::string prompt = "a jazz pianist, mossy-glow";
  const auto before = p.prompts().cached(prompt, ConditionRequest(1)).context;
  auto db = std::make_shared<const EmbeddingDatabase>(conformance_embeddings());
  ASSERT_EQ(db->size(), 2u);
  p.prompts().set_embeddings(db);
  EmbeddingHashes used;
  const auto after = p.prompts().cached(prompt, ConditionRequest(1), &used).context;
  EXPECT_GT(max_abs_diff(before, after), 1e-3);  // not the cached encoding without embeddings
  EXPECT_EQ(used, (EmbeddingHashes{{"mossy-glow", "06d0b040e62a"}}));
  p.prompts().cached(prompt, ConditionRequest(1), &used);  // from the cache: the same list
  EXPECT_EQ(used, (EmbeddingHashes{{"mossy-glow", "06d0b040e62a"}}));

  GenerationParams g;
  g.prompt = "mossy-glow, crookedhands";
  g.negative_prompt = "crookedhands, lowres";
  g.steps = 1;
  g.width = g.height = 64;
  g.seed = 3;
  const Image image = p.generate(g);
  // the prompt's list (in prompt order), then the negative prompt's: a name in both twice
  EXPECT_EQ(image.embeddings, (EmbeddingHashes{{"mossy-glow", "06d0b040e62a"},
                                               {"crookedhands", "053f6a105f82"},
                                               {"crookedhands", "053f6a105f82"}}));
  const std::string info = format_infotext(image_infotext(image, {"tiny-sd1", "", ""}));
  EXPECT_NE(info.find("TI hashes: \"mossy-glow: 06d0b040e62a, crookedhands: 053f6a105f82, "
                      "crookedhands: 053f6a105f82\""),
            std::string::npos)
      << info;
}

class EmbeddingCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sdgen-embcli-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  RunResult run(std::vector<std::string> extra) {
    auto args = check_args(ref("tiny-sd1.safetensors"), ref(kVocab), "mossy-glow well",
                           (dir_ / "out.png").string());
    args.insert(args.end(), {"--steps", "1"});
    args.insert(args.end(), extra.begin(), extra.end());
    SdgenProcess proc(args, dir_);
    return proc.wait();
  }
  fs::path dir_;
};

TEST_F(EmbeddingCli, MissingFolderIsAUsageError) {
  const auto r = run({"--embedding-dir", (dir_ / "nope").string()});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find((dir_ / "nope").string()), std::string::npos) << r.err;
}

TEST_F(EmbeddingCli, WarnsOfSkippedFilesAndReportsTheHashes) {
  fs::create_directories(dir_ / "emb");
  fs::copy_file(ref(kEmbeddings) + "/mossy-glow.safetensors", dir_ / "emb/mossy-glow.safetensors");
  std::ofstream(dir_ / "emb/legacy.pt") << "not read";
  const std::vector<float> wide(7, 1.0f);
  write_safetensors((dir_ / "emb/wide.safetensors").string(),
                    {{"emb_params", DType::F32, {1, 7}, wide.data(), 28}});
  const auto r = run({"--embedding-dir", (dir_ / "emb").string(), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("legacy.pt not read"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("wide.safetensors skipped: width 7 does not match the text encoder's 32"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("\"embeddings\":{\"mossy-glow\":\"06d0b040e62a\"}"), std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace sdgen::test
