// Batch runs from prompt files (#4): formats, JSON lines, exit codes, resuming after a kill,
// sharding, and images that do not depend on the batch size.
#include <gtest/gtest.h>
#include <stb_image.h>

#include <chrono>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "sdgen/io/png.h"
#include "sdgen/pipeline/pipeline.h"
#include "sdgen/text/clip_tokenizer.h"
#include "sdgen/util/temporaries.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

namespace fs = std::filesystem;

TEST(BatchLibrary, ImagesDoNotDependOnTheBatchSize) {
  Pipeline p(tiny_sd1(), ClipTokenizer::from_path(ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz")),
             torch::kCPU, torch::kFloat);
  std::vector<GenerationParams> batch(3);
  const char* prompts[] = {"a red fox", "a blue whale, (oil:1.2)", "a red fox"};
  for (int i = 0; i < 3; ++i) {
    batch[i].prompt = prompts[i];
    batch[i].negative_prompt = i == 1 ? "blurry" : "";
    batch[i].seed = 100 + i;
    batch[i].steps = 4;
    batch[i].sampler = "euler_a";  // ancestral noise from each image's own generator
    batch[i].width = 64;
    batch[i].height = 48;
  }
  auto together = p.generate_batch(batch);
  ASSERT_EQ(together.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    auto alone = p.generate(batch[i]);
    EXPECT_EQ(alone.rgb, together[i].rgb) << "image " << i << " changed with the batch";
  }
  EXPECT_NE(together[0].rgb, together[2].rgb);  // same prompt, other seed
  batch[1].steps = 5;
  EXPECT_THROW(p.generate_batch(batch), std::invalid_argument);
}

class BatchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("sdgen-batch-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
  std::vector<std::string> args(const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"--model",  ref("tiny-sd1.safetensors"),
                                  "--size",   "64x64",
                                  "--steps",  "3",
                                  "--device", "cpu",
                                  "--quiet"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::vector<nlohmann::json> json_lines(const std::string& out) {
    std::vector<nlohmann::json> lines;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
    return lines;
  }
  // Every PNG under `root`: decodable, with a parameters chunk; and (unless a process was just
  // killed mid-write) no temporary files.
  std::set<std::string> check_tree(const fs::path& root, bool allow_temporaries = false) {
    std::set<std::string> names;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (!e.is_regular_file()) continue;
      const auto name = e.path().filename().string();
      if (parse_temporary_name(name, nullptr)) {
        EXPECT_TRUE(allow_temporaries) << "stray temporary " << e.path();
        continue;
      }
      if (e.path().extension() != ".png") continue;
      auto png = read_file_bytes(e.path().string());
      int w = 0, h = 0, n = 0;
      unsigned char* px =
          stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &n, 3);
      EXPECT_NE(px, nullptr) << e.path();
      stbi_image_free(px);
      EXPECT_TRUE(png_text_chunks(png).count("parameters")) << e.path();
      names.insert(fs::relative(e.path(), root).string());
    }
    return names;
  }
  fs::path dir;
};

TEST_F(BatchCli, TxtFileWithJsonLines) {
  const auto file = write("p.txt", "# prompts\n\na red fox\n  \nblue whale, (oil painting:1.2)\n");
  const auto out = (dir / "out" / "{index:03}-{seed}-{line}-{prompt:10}.png").string();
  auto r = run_sdgen(
      args({"--prompt-file", file, "--seed", "40", "--batch-count", "2", "--json", "-o", out}),
      dir);
  ASSERT_EQ(r.status, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  const std::vector<std::string> names = {"000-40-3-a-red-fox.png", "001-41-3-a-red-fox.png",
                                          "002-40-5-blue-whale.png", "003-41-5-blue-whale.png"};
  for (size_t i = 0; i < 4; ++i) {
    const auto& j = lines[i];
    EXPECT_EQ(j["status"], "written");
    EXPECT_EQ(j["index"], i);
    EXPECT_EQ(j["seed"], 40 + i % 2);
    EXPECT_EQ(j["path"], (dir / "out" / names[i]).string());
    EXPECT_EQ(j["size"], "64x64");
    EXPECT_EQ(j["steps"], 3);
    EXPECT_EQ(j["model"], "tiny-sd1");
    EXPECT_GT(j["seconds"].get<double>(), 0.0);
    auto text = png_text_chunks(read_file_bytes(j["path"])).at("parameters");
    EXPECT_EQ(text.rfind(j["prompt"].get<std::string>() + "\n", 0), 0u) << text;
    EXPECT_NE(text.find("Seed: " + std::to_string(40 + i % 2) + ","), std::string::npos) << text;
  }
  EXPECT_EQ(lines[2]["prompt"], "blue whale, (oil painting:1.2)");
  EXPECT_EQ(check_tree(dir / "out").size(), 4u);
}

TEST_F(BatchCli, JsonlLinesOverrideTheCommandLine) {
  const auto file = write(
      "p.jsonl",
      R"({"prompt": "a fox", "seed": 3, "steps": 2, "size": "96x64", "output": ")" +
          (dir / "a.png").string() +
          R"("})"
          "\n"
          R"({"prompt": "a ship", "negative_prompt": "fog", "cfg_scale": 4.5, "sampler": "Euler a", "batch_count": 2})"
          "\n");
  auto r = run_sdgen(
      args({"--prompt-file", file, "--seed", "9", "--json", "-o", (dir / "{index}.png").string()}),
      dir);
  ASSERT_EQ(r.status, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["path"], (dir / "a.png").string());
  EXPECT_EQ(lines[0]["size"], "96x64");
  EXPECT_EQ(lines[0]["steps"], 2);
  EXPECT_EQ(lines[0]["seed"], 3);
  EXPECT_EQ(lines[1]["seed"], 9);
  EXPECT_EQ(lines[2]["seed"], 10);
  EXPECT_EQ(lines[1]["sampler"], "euler_a");  // the A1111 label, resolved
  EXPECT_EQ(lines[2]["negative"], "fog");
  EXPECT_EQ(lines[2]["cfg"], 4.5);
  int w = 0, h = 0, n = 0;
  ASSERT_TRUE(stbi_info((dir / "a.png").c_str(), &w, &h, &n));
  EXPECT_EQ(w, 96);
  EXPECT_EQ(h, 64);
  auto text = png_text_chunks(read_file_bytes((dir / "2.png").string())).at("parameters");
  EXPECT_NE(text.find("Negative prompt: fog\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Sampler: Euler a, CFG scale: 4.5, Seed: 10,"), std::string::npos) << text;
}

TEST_F(BatchCli, A1111LinesFromStdin) {
  auto r = run_sdgen(args({"--prompt-file", "-", "--prompt-format", "a1111", "--json", "-o",
                           (dir / "{index}.png").string()}),
                     dir,
                     "--prompt \"a castle\" --negative_prompt dark --steps 2 --seed 77 "
                     "--cfg_scale 5 --width 64 --height 96\n"
                     "a plain prompt line\n");
  ASSERT_EQ(r.status, 0) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["prompt"], "a castle");
  EXPECT_EQ(lines[0]["negative"], "dark");
  EXPECT_EQ(lines[0]["seed"], 77);
  EXPECT_EQ(lines[0]["size"], "64x96");
  EXPECT_EQ(lines[0]["cfg"], 5.0);
  EXPECT_EQ(lines[1]["prompt"], "a plain prompt line");
  EXPECT_EQ(lines[1]["steps"], 3);
}

TEST_F(BatchCli, BadLineFailsBeforeAnyWork) {
  const auto file =
      write("p.jsonl", "{\"prompt\": \"ok\"}\n\n{\"prompt\": \"x\", \"steps\": \"ten\"}\n");
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_sdgen(args({"--prompt-file", file, "-o", (dir / "out/{index}.png").string()}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("p.jsonl:3: 'steps' must be an integer"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "out"));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);

  write("q.txt", "fine\n--prompt x --sampler_name \"Nope 3\"\n");
  r = run_sdgen(args({"--prompt-file", (dir / "q.txt").string()}), dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("q.txt:2: unknown sampler"), std::string::npos) << r.err;
}

TEST_F(BatchCli, SomeFailedJobsGiveExitOneAndTheRestAreWritten) {
  // a guidance scale of 1e30 drives the latent to inf/NaN: that image fails (never written as
  // a black image), the others are made
  const auto file = write("p.jsonl",
                          "{\"prompt\": \"a\"}\n{\"prompt\": \"b\", \"cfg_scale\": 1e30}\n"
                          "{\"prompt\": \"c\"}\n");
  auto r = run_sdgen(
      args({"--prompt-file", file, "--seed", "1", "--json", "-o", (dir / "{index}.png").string()}),
      dir);
  EXPECT_EQ(r.status, 1) << r.err;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["status"], "written");
  EXPECT_EQ(lines[1]["status"], "failed");
  EXPECT_EQ(lines[1]["error"].get<std::string>(),
            "the sampler produced NaN or infinite values in the latent (Float on cpu); the "
            "guidance scale 1e+30 is far beyond what models tolerate (usually 1 to 30); no image "
            "written");
  EXPECT_EQ(lines[2]["status"], "written");
  EXPECT_EQ(check_tree(dir), (std::set<std::string>{"0.png", "2.png"}));
}

TEST_F(BatchCli, ShardsPartitionTheRunIntoTheSameImages) {
  const auto file = write("p.txt", "one\ntwo\nthree\n");
  auto base = [&](const std::string& out) {
    return args({"--prompt-file", file, "--seed", "5", "--batch-count", "2", "-o",
                 (dir / out / "{index}.png").string()});
  };
  ASSERT_EQ(run_sdgen(base("all"), dir).status, 0);
  for (int k = 0; k < 3; ++k) {
    auto a = base("sharded");
    a.insert(a.end(), {"--shard", std::to_string(k) + "/3"});
    auto r = run_sdgen(a, dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(check_tree(dir / "sharded").size(), static_cast<size_t>(2 * (k + 1)));
  }
  for (int i = 0; i < 6; ++i) {
    const auto name = std::to_string(i) + ".png";
    EXPECT_EQ(read_file_bytes((dir / "all" / name).string()),
              read_file_bytes((dir / "sharded" / name).string()))
        << name;
  }
  // a Slurm array task picks its shard from the environment
  auto r = run_sdgen(base("slurm"), dir, "",
                     {{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "2"}});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(check_tree(dir / "slurm"), (std::set<std::string>{"1.png", "3.png", "5.png"}));
}

TEST_F(BatchCli, SeveralDevicesShareOneJobList) {
  const auto file = write("p.txt", "one\ntwo\n");
  auto a = args({"--prompt-file", file, "--seed", "5", "--batch-count", "3", "--devices", "cpu,cpu",
                 "--json", "-o", (dir / "{index}.png").string()});
  a.erase(std::find(a.begin(), a.end(), "--device"), std::find(a.begin(), a.end(), "--device") + 2);
  auto r = run_sdgen(a, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json_lines(r.out).size(), 6u);
  EXPECT_EQ(check_tree(dir).size(), 6u);
}

}  // namespace
}  // namespace sdgen::test
