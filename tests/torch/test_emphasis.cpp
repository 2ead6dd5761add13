// Prompt emphasis and long prompts through the pipeline on the tiny SD1 checkpoint: chunked
// encoding, A1111's EmphasisOriginal (weights, mean restored per chunk), cond/uncond padding,
// the infotext, and the --emphasis option of the binary.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "sdgen/io/png.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/text/clip_tokenizer.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

Pipeline& pipeline() {
  static Pipeline p(tiny_sd1(),
                    ClipTokenizer::from_path(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz")),
                    torch::kCPU, torch::kFloat);
  return p;
}

// The plain encoding of a list of 77 ids: the text encoder alone.
torch::Tensor plain(const std::vector<int64_t>& ids, int clip_skip = 1) {
  torch::NoGradGuard g;
  return pipeline().model().text->forward(torch::tensor(ids, torch::kLong).unsqueeze(0), clip_skip);
}

std::string long_prompt(int pairs) {
  std::string s;
  for (int i = 0; i < pairs; ++i) s += "red fox ";  // two tokens each
  return s;
}

TEST(Emphasis, TwoHundredTokensGiveThreeChunksAnd231Tokens) {
  auto& p = pipeline();
  const auto prompt = long_prompt(100);
  const auto chunks = p.prompts().chunks(prompt);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[2].prompt_tokens, 50u);
  EXPECT_EQ(p.prompts().token_ids(prompt).size(), 231u);
  const auto z = p.prompts().encode(prompt, {1}).context;
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{1, 231, p.config().text.width}));
  // every chunk is encoded on its own
  for (int k = 0; k < 3; ++k)
    EXPECT_TRUE(torch::equal(z.slice(1, 77 * k, 77 * (k + 1)), plain(chunks[k].ids))) << k;
}

TEST(Emphasis, UnitWeightsGiveExactlyThePlainEncoding) {
  auto& p = pipeline();
  const std::string prompt = "a red fox sitting in a snowy forest, digital art";
  const auto tok = ClipTokenizer::from_path(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"));
  const auto ids = frame_ids(tok->encode(prompt), 49406, 49407, 49407, 77);
  EXPECT_EQ(p.prompts().token_ids(prompt), ids);
  EXPECT_TRUE(torch::equal(p.prompts().encode(prompt, {1}).context, plain(ids)));
  EXPECT_TRUE(torch::equal(p.prompts().encode(prompt, {2}).context, plain(ids, 2)));
  // brackets whose weights cancel out, and escaped brackets under "none"
  EXPECT_TRUE(torch::equal(
      p.prompts().encode("a red fox [(sitting)] in a snowy forest, digital art", {1}).context,
      plain(ids)));
  const auto literal = frame_ids(tok->encode("a (fox:1.5)"), 49406, 49407, 49407, 77);
  EXPECT_TRUE(torch::equal(p.prompts().encode("a (fox:1.5)", {1, Emphasis::kNone}).context,
                           plain(literal)));
  // apply_emphasis with all weights 1 is the identity, bit for bit
  const auto z = plain(ids);
  EXPECT_TRUE(torch::equal(apply_emphasis(z, std::vector<double>(77, 1.0)), z));
}

TEST(Emphasis, WeightsMultiplyAndTheMeanIsRestored) {
  auto& p = pipeline();
  const std::string prompt = "a (red:1.5) fox [in] the snow";
  const auto chunks = p.prompts().chunks(prompt);
  ASSERT_EQ(chunks.size(), 1u);
  const auto& w = chunks[0].weights;
  EXPECT_EQ(w[2], 1.5);      // "red"
  EXPECT_EQ(w[4], 1 / 1.1);  // "in"
  const auto z0 = plain(chunks[0].ids).to(torch::kDouble);
  const auto z = p.prompts().encode(prompt, {1}).context.to(torch::kDouble);
  // z = z0 * w * s with one scale s = mean(z0) / mean(z0 * w) for the whole chunk
  EXPECT_NEAR(z.mean().item<double>(), z0.mean().item<double>(),
              1e-6 * z0.abs().mean().item<double>());
  const auto wt = torch::tensor(std::vector<double>(w.begin(), w.end()), torch::kDouble)
                      .to(torch::kFloat)
                      .to(torch::kDouble)
                      .view({1, -1, 1});
  const double s = z0.mean().item<double>() / (z0 * wt).mean().item<double>();
  EXPECT_NE(s, 1.0);
  EXPECT_LT(max_abs_diff(z, z0 * wt * s), 1e-5 * z0.abs().max().item<double>());
  // "red" moved relative to its neighbours by 1.5
  const auto ratio = z.select(1, 2) / z0.select(1, 2);
  const auto ratio_bos = z.select(1, 0) / z0.select(1, 0);
  EXPECT_NEAR(ratio.mean().item<double>() / ratio_bos.mean().item<double>(), 1.5, 1e-4);
}

TEST(Emphasis, MeanIsRestoredPerChunk) {
  auto& p = pipeline();
  // chunk 1 weighted, chunk 2 plain: chunk 2 must be its plain encoding, untouched by chunk 1
  const std::string prompt = "(" + long_prompt(30) + ":1.4) BREAK a fox";
  const auto chunks = p.prompts().chunks(prompt);
  ASSERT_EQ(chunks.size(), 2u);
  const auto z = p.prompts().encode(prompt, {1}).context;
  ASSERT_EQ(z.size(1), 154);
  EXPECT_TRUE(torch::equal(z.slice(1, 77, 154), plain(chunks[1].ids)));
  const auto z0 = plain(chunks[0].ids).to(torch::kDouble);
  const auto z1 = z.slice(1, 0, 77).to(torch::kDouble);
  EXPECT_NEAR(z1.mean().item<double>(), z0.mean().item<double>(),
              1e-6 * z0.abs().mean().item<double>());
  EXPECT_FALSE(torch::allclose(z1, z0));
}

TEST(Emphasis, PadContextAppendsEmptyChunks) {
  auto& p = pipeline();
  const auto empty = p.prompts().encode("", {1}).context;
  const auto cond = p.prompts().encode(long_prompt(100), {1}).context;  // 3 chunks
  const auto uncond = p.prompts().encode("blurry", {1}).context;        // 1 chunk
  const auto padded = pad_tokens(Conditioning(uncond), cond.size(1), Conditioning(empty)).context;
  ASSERT_EQ(padded.sizes(), cond.sizes());
  EXPECT_TRUE(torch::equal(padded.slice(1, 0, 77), uncond));
  EXPECT_TRUE(torch::equal(padded.slice(1, 77, 154), empty));
  EXPECT_TRUE(torch::equal(padded.slice(1, 154, 231), empty));
  EXPECT_TRUE(torch::equal(
      pad_tokens(Conditioning(cond), cond.size(1), Conditioning(empty)).context, cond));
  EXPECT_THROW(pad_tokens(Conditioning(uncond), 100, Conditioning(empty)), std::invalid_argument);
}

TEST(Emphasis, GenerateBatchesPromptsOfDifferentLengths) {
  auto& p = pipeline();
  GenerationParams params;
  params.steps = 2;
  params.width = params.height = 64;
  params.seed = 7;
  params.prompt = long_prompt(60) + ", (fox:1.2)";  // 2 chunks
  params.negative_prompt = "blurry";                // 1 chunk
  const auto a = p.generate(params);
  EXPECT_EQ(a.rgb.size(), 64u * 64 * 3);
  std::swap(params.prompt, params.negative_prompt);
  EXPECT_EQ(p.generate(params).rgb.size(), 64u * 64 * 3);
  // padding the one-chunk negative with the empty prompt is what the reference does: the same
  // image as when the negative is written out as two chunks with an empty second one
  std::swap(params.prompt, params.negative_prompt);
  params.negative_prompt = "blurry BREAK";
  EXPECT_EQ(p.prompts().chunks(params.negative_prompt).size(), 1u);  // a trailing BREAK adds none
  params.negative_prompt = "blurry BREAK BREAK";
  ASSERT_EQ(p.prompts().chunks(params.negative_prompt).size(), 2u);
  EXPECT_EQ(p.generate(params).rgb, a.rgb);
  params.emphasis = "bogus";
  EXPECT_THROW(p.resolve(params), std::invalid_argument);
}

TEST(Emphasis, Infotext) {
  GenerationParams params;
  params.prompt = "a (fox:1.2)";
  params.steps = 20;
  params.seed = 1;
  params.width = params.height = 512;
  auto text = format_infotext(make_infotext(params, {"m", "", ""}));
  EXPECT_EQ(text.find("Emphasis"), std::string::npos) << text;  // the default is not written
  params.emphasis = "none";
  params.clip_skip = 2;
  text = format_infotext(make_infotext(params, {"m", "", ""}));
  EXPECT_NE(text.find("Clip skip: 2, Emphasis: None,"), std::string::npos) << text;
  params.prompt = "a fox";  // A1111 writes it only when a prompt holds '(' or '['
  EXPECT_EQ(format_infotext(make_infotext(params, {"m", "", ""})).find("Emphasis"),
            std::string::npos);
  params.negative_prompt = "[blurry]";
  EXPECT_NE(format_infotext(make_infotext(params, {"m", "", ""})).find("Emphasis: None"),
            std::string::npos);
}

// ---- the --emphasis option of the binary ----

int run_binary(const std::vector<std::string>& extra, const std::string& out,
               const std::string& err_file) {
  std::string cmd = std::string("'") + SDGEN_BINARY + "' --model '" + ref("tiny-sd1.safetensors") +
                    "' --tokenizer '" + ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz") +
                    "' --prompt 'a (fox:1.3)' --steps 1 --size 64x64 --seed 1 --device cpu "
                    "--dtype fp32 -o '" +
                    out + "'";
  for (const auto& a : extra) cmd += " '" + a + "'";
  const int status = std::system((cmd + " 2>'" + err_file + "'").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(EmphasisBinary, OptionIsCheckedAndRecorded) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("sdgen-emphasis-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto err = (dir / "err.txt").string();
  const auto out = (dir / "out.png").string();
  EXPECT_EQ(run_binary({"--emphasis", "bogus"}, out, err), 2);
  auto bytes = read_file_bytes(err);
  const std::string message(bytes.begin(), bytes.end());
  EXPECT_NE(message.find("emphasis must be a1111 or none"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(out));

  ASSERT_EQ(run_binary({"--emphasis", "none"}, out, err), 0);
  auto text = png_text_chunks(read_file_bytes(out)).at("parameters");
  EXPECT_NE(text.find("Emphasis: None"), std::string::npos) << text;
  std::filesystem::remove(out);
  ASSERT_EQ(run_binary({}, out, err), 0);
  text = png_text_chunks(read_file_bytes(out)).at("parameters");
  EXPECT_EQ(text.find("Emphasis"), std::string::npos) << text;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sdgen::test
