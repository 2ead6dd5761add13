// img2img and inpainting through the sdgen binary: bad images fail before the model loads
// (exit 2, the file named), prompt-file lines take their images relative to the file and
// encode each once, and the PNG and --json records carry the parameters.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "sdgen/io/png.h"
#include "sdgen/util/fs.h"
#include "torch_test_util.h"

namespace sdgen::test {
namespace {

namespace fs = std::filesystem;

std::string conformance(const std::string& name) {
  return std::string(SDGEN_REFERENCE_DIR) + "/../conformance/img2img/" + name;
}

class Img2ImgCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("sdgen-i2i-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string path(const std::string& name) { return (dir / name).string(); }
  std::vector<std::string> args(const std::string& out) {
    auto a = check_args(ref("tiny-sd1.safetensors"), ref("clip_vocab/bpe_simple_vocab_16e6.txt.gz"),
                        "a cat", out);
    a[9] = "4";  // --steps
    return a;
  }
  fs::path dir;
};

TEST_F(Img2ImgCli, BadImagesFailBeforeTheModelLoads) {
  std::ofstream(path("not-an-image.png")) << "hello";
  {
    std::ofstream truncated(path("truncated.png"), std::ios::binary);
    const auto bytes = read_file_bytes(conformance("init_cat.png"));
    truncated.write(reinterpret_cast<const char*>(bytes.data()), 60);
  }
  for (const auto& [flag, file, what] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--init-image", path("missing.png"), "missing.png"},
           {"--init-image", path("not-an-image.png"), "not-an-image.png"},
           {"--init-image", path("truncated.png"), "truncated.png"}}) {
    auto a = args(path("out.png"));
    a.insert(a.end(), {flag, file});
    const auto r = run_sdgen(a, dir);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("loaded"), std::string::npos) << "checked before loading: " << r.err;
    EXPECT_FALSE(fs::exists(path("out.png")));
  }
  auto a = args(path("out.png"));
  a.insert(a.end(), {"--mask", conformance("mask_rect_aligned.png")});
  const auto r = run_sdgen(a, dir);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("needs an init image"), std::string::npos) << r.err;
}

TEST_F(Img2ImgCli, PromptFileImagesAreRelativeToTheFileAndRecorded) {
  fs::create_directories(dir / "jobs");
  fs::copy_file(conformance("init_cat.png"), dir / "jobs" / "cat.png");
  fs::copy_file(conformance("mask_rect_aligned.png"), dir / "jobs" / "mask.png");
  std::ofstream(path("jobs/batch.jsonl"))
      << "{\"prompt\": \"a cat\", \"init_image\": \"cat.png\", \"strength\": 0.5}\n"
      << "{\"prompt\": \"a dog\", \"init_image\": \"cat.png\", \"strength\": 0.5}\n"
      << "{\"prompt\": \"a fox\", \"init_image\": \"cat.png\", \"mask\": \"mask.png\", "
         "\"mask_blur\": 0}\n";
  auto a = args(path("out/{index}.png"));
  a[4] = "--prompt-file";
  a[5] = path("jobs/batch.jsonl");
  a.insert(a.end(), {"--json", "--batch-size", "2"});
  const auto r = run_sdgen(a, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<nlohmann::json> records;
  while (std::getline(lines, line)) records.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["init_image"], (dir / "jobs" / "cat.png").string());
  EXPECT_EQ(records[0]["strength"], 0.5);
  EXPECT_TRUE(records[0]["mask"].is_null());
  EXPECT_EQ(records[2]["mask"], (dir / "jobs" / "mask.png").string());
  EXPECT_EQ(records[2]["mask_blur"], 0);
  const auto text = png_text_chunks(read_file_bytes(path("out/0.png"))).at("parameters");
  EXPECT_NE(text.find("Denoising strength: 0.5,"), std::string::npos) << text;
  const auto inpainted = png_text_chunks(read_file_bytes(path("out/2.png"))).at("parameters");
  EXPECT_NE(inpainted.find("Mask blur: 0,"), std::string::npos) << inpainted;
  // the same line alone gives the same image (the batch does not change an image)
  auto single = args(path("single.png"));
  single[5] = "a dog";
  single.insert(single.end(), {"--init-image", path("jobs/cat.png"), "--strength", "0.5", "--seed",
                               records[1]["seed"].dump()});
  ASSERT_EQ(run_sdgen(single, dir).status, 0);
  EXPECT_EQ(read_file_bytes(path("single.png")), read_file_bytes(path("out/1.png")));
}

TEST_F(Img2ImgCli, HiresFixWritesTheLargerImage) {
  auto a = args(path("hires.png"));
  a[19] = "32x64";  // --size
  a.insert(a.end(), {"--hires-scale", "1.5", "--hires-steps", "2"});
  const auto r = run_sdgen(a, dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto bytes = read_file_bytes(path("hires.png"));
  // IHDR width and height, big-endian at bytes 16..23
  EXPECT_EQ((bytes[16] << 24 | bytes[17] << 16 | bytes[18] << 8 | bytes[19]), 48);
  EXPECT_EQ((bytes[20] << 24 | bytes[21] << 16 | bytes[22] << 8 | bytes[23]), 96);
  const auto text = png_text_chunks(bytes).at("parameters");
  EXPECT_NE(text.find("Size: 32x64,"), std::string::npos) << text;
  EXPECT_NE(text.find("Hires upscale: 1.5,"), std::string::npos) << text;
  auto with_init = args(path("bad.png"));
  with_init.insert(with_init.end(),
                   {"--hires-scale", "2", "--init-image", conformance("init_cat.png")});
  const auto bad = run_sdgen(with_init, dir);
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("second pass of text-to-image"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace sdgen::test
