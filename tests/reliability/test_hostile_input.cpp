// Careless and hostile input through the sdgen binary (issue #17): every mistake is exit 2 with
// a message naming the file, line or flag, found before the model loads; numbers are whole
// 64-bit seeds and finite; memory does not grow with the job count.
#include <signal.h>

#include <chrono>
#include <regex>

#include "reliability_util.h"
#include "sdgen/util/gzip.h"

namespace sdgen::test {
namespace {

// The marks of a run that got past its checks.
bool loaded(const RunResult& r) { return contains(r.err, "loaded "); }

TEST_F(Reliability, ThreadCountsBeyondTheCoresAreCapped) {
  // libgomp crashed (SIGSEGV) creating 99999 threads; --threads 4096 ran 200 times slower
  auto r = run_sdgen(args({"--prompt", "x", "--seed", "1", "-o", (dir / "a.png").string()}), dir,
                     "", {{"OMP_NUM_THREADS", "99999"}});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "warning: OMP_NUM_THREADS=99999 is more than the ")) << r.err;
  r = run_sdgen(
      args({"--prompt", "x", "--seed", "1", "--threads", "4096", "-o", (dir / "b.png").string()}),
      dir);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "warning: --threads 4096 is more than the ")) << r.err;
  EXPECT_EQ(read_file_bytes((dir / "a.png").string()), read_file_bytes((dir / "b.png").string()));
}

TEST_F(Reliability, SizesThatCannotFitFailBeforeLoading) {
  for (const std::string size : {"100000x100000", "4096x4096"}) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r =
        run_sdgen(args({"--prompt", "x", "--size", size, "-o", (dir / "o/a.png").string()}), dir);
    EXPECT_LT(seconds_since(t0), 10.0);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_FALSE(loaded(r)) << r.err;
    EXPECT_TRUE(contains(r.err, "error: size " + size + " needs about ")) << r.err;
    // the largest square that fits, a multiple of 8 below the request
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m,
                                  std::regex("The largest size of this shape that fits is "
                                             "([0-9]+)x([0-9]+)")))
        << r.err;
    EXPECT_EQ(m[1], m[2]);
    EXPECT_EQ(std::stoi(m[1]) % 8, 0);
    EXPECT_LT(std::stoi(m[1]), std::stoi(size));
    EXPECT_FALSE(fs::exists(dir / "o"));
  }
  // a zero side is no size (it used to fall back to the native size)
  for (const std::string size : {"0x0", "0x64", "64x0"}) {
    auto r =
        run_sdgen(args({"--prompt", "x", "--size", size, "-o", (dir / "a.png").string()}), dir);
    EXPECT_EQ(r.status, 2) << size;
    EXPECT_TRUE(contains(r.err, "--size must be at least 1 pixel on each side, not '" + size))
        << r.err;
  }
}

TEST_F(Reliability, SeedsUseAllSixtyFourBits) {
  auto image = [&](const std::string& seed) {
    const auto out = (dir / (seed + ".png")).string();
    auto r = run_sdgen(args({"--prompt", "x", "--seed", seed, "-o", out}), dir);
    EXPECT_EQ(r.status, 0) << r.err;
    const auto png = read_file_bytes(out);
    EXPECT_TRUE(contains(png_text_chunks(png)["parameters"], "Seed: " + seed + ","));
    return png;
  };
  // 2^63 used to collapse to 2^63 - 1
  EXPECT_NE(image("9223372036854775807"), image("9223372036854775808"));
  image("18446744073709551615");
  auto r = run_sdgen(args({"--prompt", "x", "--seed", "18446744073709551616"}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "from 0 to 18446744073709551615, got 18446744073709551616")) << r.err;
  r = run_sdgen(args({"--prompt", "x", "--seed", "18446744073709551615", "--batch-count", "2", "-o",
                      (dir / "{index}.png").string()}),
                dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "overflows 64 bits")) << r.err;
  // an A1111 line takes the same seeds as the command line
  const auto file = write("p.txt", "--prompt x --seed 9223372036854775808\n");
  r = run_sdgen(args({"--prompt-file", file, "-o", (dir / "a1111-{seed}.png").string()}), dir);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file_bytes((dir / "a1111-9223372036854775808.png").string()),
            read_file_bytes((dir / "9223372036854775808.png").string()));
}

TEST_F(Reliability, NonFiniteNumbersAreRejected) {
  for (const auto& [flag, value] :
       std::vector<std::pair<std::string, std::string>>{{"--cfg-scale", "nan"},
                                                        {"--cfg-scale", "inf"},
                                                        {"--cfg-scale", "-inf"},
                                                        {"--eta", "nan"},
                                                        {"--eta", "inf"}}) {
    auto r = run_sdgen(args({"--prompt", "x", flag, value, "-o", (dir / "a.png").string()}), dir);
    EXPECT_EQ(r.status, 2) << flag << " " << value;
    EXPECT_TRUE(contains(r.err, flag + " must be a number, got '" + value + "'")) << r.err;
  }
  // a finite scale that overflows the latent: an error, never a black image
  auto r = run_sdgen(args({"--prompt", "x", "--cfg-scale", "1e30", "-o", (dir / "a.png").string()}),
                     dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, "NaN or infinite values in the latent")) << r.err;
  EXPECT_TRUE(contains(r.err, "no image written")) << r.err;
  EXPECT_FALSE(fs::exists(dir / "a.png"));
  EXPECT_TRUE(whole_images(dir).empty());
}

TEST_F(Reliability, PromptFileMistakesFailBeforeLoadingWithTheirLine) {
  struct Case {
    std::string name, text, message;
  };
  const std::vector<Case> cases = {
      {"emphasis.txt", "fine\n(red:1.2.3) fox\n",
       "emphasis.txt:2: prompt: ':1.2.3)': '1.2.3' is not a number"},
      {"nul.txt", std::string("fine\nred\0fox\n", 13), "nul.txt:2: holds a NUL byte"},
      {"big.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"cfg_scale\": 1e400}\n",
       "big.jsonl:2: not valid JSON: number overflow parsing '1e400'"},
      {"null.jsonl", "{\"prompt\": \"a\", \"cfg_scale\": null}\n",
       "null.jsonl:1: 'cfg_scale' must be a number, got null"},
      {"nulesc.jsonl", "{\"prompt\": \"a\\u0000b\"}\n",
       "nulesc.jsonl:1: prompt must not contain a NUL byte"},
      {"seed.txt", "--prompt x --seed 18446744073709551616\n",
       "seed.txt:1: --seed must be -1 (random) or a whole number"},
      {"nan.txt", "--prompt x --cfg_scale nan\n", "nan.txt:1: --cfg_scale must be a number"},
      {"skip.jsonl", "{\"prompt\": \"a\", \"clip_skip\": 99}\n",
       "skip.jsonl:1: clip skip must be between 1 and"}};
  for (const auto& c : cases) {
    const auto file = write(c.name, c.text);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run_sdgen(args({"--prompt-file", file, "-o", (dir / "o/{index}.png").string()}), dir);
    EXPECT_EQ(r.status, 2) << c.name << ": " << r.err;
    EXPECT_TRUE(contains(r.err, c.message)) << c.name << ": " << r.err;
    EXPECT_FALSE(loaded(r)) << r.err;
    EXPECT_LT(seconds_since(t0), 10.0);
  }
  EXPECT_FALSE(fs::exists(dir / "o"));
}

TEST_F(Reliability, RunSettingsAreCheckedFirst) {
  const auto file = write("p.txt", "a\n");
  auto r = run_sdgen(args({"--prompt-file", dir.string()}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--prompt-file " + dir.string() + " is a folder; give a text file"))
      << r.err;
  // a bad shard is found before seeds are drawn or anything loads
  r = run_sdgen(args({"--prompt-file", file, "--shard", "5/3"}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--shard must be K/N with 0 <= K < N (e.g. 0/4), not '5/3'"))
      << r.err;
  EXPECT_FALSE(contains(r.err, "(random)")) << r.err;
  r = run_sdgen(
      args({"--prompt-file", file}), dir, "",
      {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "5"}, {"SLURM_ARRAY_TASK_MAX", "3"}});
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "SLURM_ARRAY_TASK_MIN (5) is above SLURM_ARRAY_TASK_MAX (3)"))
      << r.err;
  EXPECT_FALSE(contains(r.err, "(random)")) << r.err;
  // a config JSON that does not parse: the parser's words, not its exception tags
  const auto config = write("config.json", "{\"unet\": ");
  r = run_sdgen(args({"--prompt", "x", "--model-config", config}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, config + ": not valid JSON (parse error at line 1")) << r.err;
  EXPECT_FALSE(contains(r.err, "json.exception")) << r.err;
}

TEST_F(Reliability, A1111LinesThatAreNotOptionsArePromptsWithAWarning) {
  const auto file =
      write("p.txt", "--prompt a red fox --tiling\n--prompt x --styles a --steps 3\n");
  auto r = run_sdgen(
      args({"--prompt-file", file, "--seed", "3", "--json", "-o", (dir / "{index}.png").string()}),
      dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err,
                       "p.txt:1: not an option line (no value after --tiling): the whole "
                       "line is the prompt"))
      << r.err;
  EXPECT_TRUE(contains(r.err, "p.txt:2: --styles ignored")) << r.err;
  EXPECT_TRUE(contains(r.out, "\"prompt\":\"--prompt a red fox --tiling\"")) << r.out;
  EXPECT_TRUE(contains(r.out, "\"steps\":3")) << r.out;
}

TEST_F(Reliability, ModelTokenizerAndConfigMistakesFailBeforeLoading) {
  // a folder as the model
  auto r = run_sdgen(args({"--prompt", "x", "--model", dir.string()}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "--model " + dir.string() +
                                  " is a folder without model_index.json; give a single-file"))
      << r.err;
  // a vocabulary larger than the embedding table: "index out of range in self" at the first
  // prompt that used a high id
  const std::string default_model =
      std::string(SDGEN_SOURCE_DIR) + "/models/default/model.safetensors";
  r = run_sdgen(
      {"--model", default_model, "--tokenizer", ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"),
       "--prompt", "a red fox", "-o", (dir / "a.png").string()},
      dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "has 49408 tokens, but the text encoder of " + default_model +
                                  " embeds only 146; give the model's own tokenizer"))
      << r.err;
  EXPECT_FALSE(loaded(r));
  // clip skip beyond the text encoder's layers
  r = run_sdgen(args({"--prompt", "x", "--clip-skip", "99"}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, "clip skip must be between 1 and")) << r.err;
  EXPECT_FALSE(loaded(r));
  // config JSON values that make no model
  const std::vector<std::pair<std::string, std::string>> configs = {
      {"[1, 2]", "must hold a JSON object {...} at the top, not array"},
      {"{\"text_encoder\": {\"layer_norm_eps\": -1}}",
       "'text_encoder.layer_norm_eps' must be a small positive number such as 1e-5, got -1.0"},
      {"{\"unet\": {\"num_res_blocks\": 1e300}}", "'num_res_blocks' must be a whole number"},
      {"{\"vae\": {\"scale_factor\": 0}}", "'vae.scale_factor' must be a positive number"},
      {"{\"unet\": {\"channel_mult\": [1, \"x\"]}}", "'channel_mult' must be a list"}};
  for (const auto& [json, message] : configs) {
    const auto config = write("config.json", json);
    r = run_sdgen(args({"--prompt", "x", "--model-config", config}), dir);
    EXPECT_EQ(r.status, 2) << json;
    EXPECT_TRUE(contains(r.err, config + ": " + message)) << r.err;
  }
}

TEST_F(Reliability, OutputNamesAreCheckedAndConfined) {
  fs::create_directories(dir / "out" / "taken.png");
  const std::vector<std::pair<std::string, std::string>> names = {
      {"out.jpg", "--output must name .png files (sdgen writes PNG"},
      {(dir / "out").string(), "; for a folder write " + (dir / "out").string() + "/{index:05}"},
      {(dir / "out/").string(), "names a folder, not a file"},
      {(dir / "out/taken.png").string(), "is a folder"}};
  for (const auto& [name, message] : names) {
    auto r = run_sdgen(args({"--prompt", "x", "-o", name}), dir);
    EXPECT_EQ(r.status, 2) << name;
    EXPECT_TRUE(contains(r.err, message)) << r.err;
  }
  // a prompt file's outputs stay in the -o folder unless --allow-any-output
  fs::create_directories(dir / "elsewhere");
  // (paths inside `dir`, so that a binary that writes them leaves nothing behind)
  for (const std::string& output :
       {(dir / "elsewhere/x.png").string(), (dir / "out/../x.png").string(),
        (dir / "out/../elsewhere/y.png").string()}) {
    const auto file = write("p.jsonl", "{\"prompt\": \"a\", \"output\": \"" + output + "\"}\n");
    auto r = run_sdgen(args({"--prompt-file", file, "-o", (dir / "out/{index}.png").string()}),
                       dir / "out");
    EXPECT_EQ(r.status, 2) << output;
    EXPECT_TRUE(contains(r.err, "p.jsonl:1: the output ")) << r.err;
    EXPECT_TRUE(contains(r.err, "--allow-any-output")) << r.err;
  }
  const auto file = write("p.jsonl", "{\"prompt\": \"a\", \"output\": \"" +
                                         (dir / "elsewhere/x.png").string() + "\"}\n");
  auto r = run_sdgen(
      args({"--prompt-file", file, "--allow-any-output", "-o", (dir / "out/{index}.png").string()}),
      dir);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(whole_images(dir / "elsewhere"), std::set<std::string>{"x.png"});
  // a file that is not a PNG is never replaced, not even with --overwrite
  const auto notes = write("elsewhere/notes.png", "my notes");
  r = run_sdgen(args({"--prompt", "x", "--overwrite", "-o", notes}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_TRUE(contains(r.err, notes + " exists and is not a PNG image")) << r.err;
  EXPECT_EQ(slurp(notes), "my notes");
}

TEST_F(Reliability, MemoryDoesNotGrowWithTheJobCount) {
  // 10 lines x 1000000 images: the job list used to be built whole (std::bad_alloc)
  std::string lines;
  for (int i = 0; i < 10; ++i) lines += "prompt " + std::to_string(i) + "\n";
  const auto file = write("p.txt", lines);
  const auto t0 = std::chrono::steady_clock::now();
  SdgenProcess run(args({"--prompt-file", file, "--batch-count", "1000000", "--seed", "1", "-o",
                         (dir / "out/{index:08}.png").string()}),
                   dir);
  ASSERT_TRUE(wait_for(dir / "out/00000001.png"));
  EXPECT_LT(seconds_since(t0), 30.0);  // no walk over ten million names first
  run.kill(SIGTERM);
  struct rusage usage {};
  const auto r = run.wait(&usage);
  EXPECT_EQ(r.status, 130) << r.err;
  // the same command for one image peaks near 250 MB
  EXPECT_LT(usage.ru_maxrss, 600 * 1024) << "KiB";
  whole_images(dir / "out");
}

// A gzip file of `text` in two members, each of fixed-Huffman DEFLATE blocks of literals (what
// `gzip -t` accepts and the old reader called corrupt).
std::string fixed_huffman_gzip(const std::string& text) {
  std::string out;
  auto member = [&](const std::string& part) {
    out += std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
    std::string bits_out;
    uint32_t bits = 0;
    int count = 0;
    auto put = [&](uint32_t code, int length) {  // Huffman codes go most significant bit first
      for (int i = length - 1; i >= 0; --i) {
        bits |= ((code >> i) & 1u) << count;
        if (++count == 8) {
          bits_out += static_cast<char>(bits);
          bits = 0;
          count = 0;
        }
      }
    };
    const size_t block = 50000;
    for (size_t start = 0; start < part.size(); start += block) {
      const bool last = start + block >= part.size();
      put(last ? 1 : 0, 1);  // BFINAL
      put(0b10, 2);          // BTYPE 01, least significant bit first
      for (size_t i = start; i < std::min(part.size(), start + block); ++i) {
        const auto c = static_cast<unsigned char>(part[i]);
        if (c < 144)
          put(0x30 + c, 8);
        else
          put(0x190 + (c - 144), 9);
      }
      put(0, 7);  // end of block
    }
    if (count) bits_out += static_cast<char>(bits);
    out += bits_out;
    const uint32_t crc = gzip_crc32(part.data(), part.size());
    const auto size = static_cast<uint32_t>(part.size());
    for (int i = 0; i < 4; ++i) out += static_cast<char>(crc >> (8 * i));
    for (int i = 0; i < 4; ++i) out += static_cast<char>(size >> (8 * i));
  };
  member(text.substr(0, text.size() / 2));
  member(text.substr(text.size() / 2));
  return out;
}

TEST_F(Reliability, GzipVocabularyOfFixedHuffmanBlocksReadsTheSame) {
  const auto vocab = gunzip_file(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"));
  const auto fixed = write("bpe_simple_vocab_16e6.txt.gz", fixed_huffman_gzip(vocab));
  auto r = run_sdgen(
      args({"--prompt", "a red fox", "--seed", "4", "--tokenizer",
            ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"), "-o", (dir / "a.png").string()}),
      dir);
  ASSERT_EQ(r.status, 0) << r.err;
  r = run_sdgen(args({"--prompt", "a red fox", "--seed", "4", "--tokenizer", fixed, "-o",
                      (dir / "b.png").string()}),
                dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_file_bytes((dir / "a.png").string()), read_file_bytes((dir / "b.png").string()));
}

}  // namespace
}  // namespace sdgen::test
