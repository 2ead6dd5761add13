// sdgen's own default model (models/default, issue #6): the files it ships, and that it draws
// what held-out prompts ask for, through the library (a fast subset of the full evaluation in
// scripts/evaluate-default-model.sh) and through the sdgen binary with no --model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "sdgen/data/scene_score.h"
#include "sdgen/loading/model_loader.h"
#include "torch/cli_test_util.h"
#include "train/evaluate.h"
#include "train_test_util.h"

extern "C" unsigned char* stbi_load_from_memory(const unsigned char* buffer, int len, int* x,
                                                int* y, int* channels_in_file,
                                                int desired_channels);
extern "C" void stbi_image_free(void* retval_from_stbi_load);

namespace sdgen {
namespace {

namespace fs = std::filesystem;
const std::string kDir = SDGEN_SOURCE_DIR "/models/default";
constexpr double kColourFloor = 0.93, kPositionFloor = 0.93, kShapeFloor = 0.9,
                 kBackgroundFloor = 0.9;

TEST(DefaultModel, ShipsWeightsConfigTokenizerAndCard) {
  for (const char* f : {"model.safetensors", "model.json", "tokenizer.model", "README.md"})
    EXPECT_TRUE(fs::exists(kDir + "/" + f)) << f;
  EXPECT_LE(fs::file_size(kDir + "/model.safetensors"), 20u * 1000 * 1000);
  std::ifstream in(kDir + "/model.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("family"), "sd1");
  EXPECT_EQ(j.at("native_size"), 64);
  EXPECT_EQ(j.at("prediction"), "eps");
  EXPECT_EQ(j.at("tokenizer"), "tokenizer.model");
  EXPECT_GT(j.at("vae").at("scale_factor").get<double>(), 0.0);
}

// Held-out scenes (colour x shape x position combinations never trained on), 20 steps at the
// CLI's defaults: the first 24 of the 200 the full evaluation scores. The floors sit below the
// full evaluation's rates (models/default/README.md) by about two errors in 24-30 objects, so
// a model or pipeline change that breaks the text conditioning fails here.
TEST(DefaultModel, HeldOutScenesScore) {
  SDGEN_REQUIRE_SPM();
  LoadOptions lo;
  lo.model_path = kDir + "/model.safetensors";
  auto model = load_model(lo);
  data::DatasetOptions d;
  d.seed = 1;
  d.image_size = model.config.native_size;
  Pipeline pipeline(std::move(model), load_tokenizer(kDir + "/tokenizer.model"), torch::kCPU,
                    torch::kFloat);
  train::EvalOptions o;
  o.count = 24;
  const auto r = train::evaluate(pipeline, d, o);
  const auto& t = r.totals;
  SCOPED_TRACE(t.summary());
  EXPECT_GE(t.rate(t.colour, t.objects), kColourFloor);
  EXPECT_GE(t.rate(t.position, t.objects), kPositionFloor);
  EXPECT_GE(t.rate(t.shape, t.objects), kShapeFloor);
  EXPECT_GE(t.rate(t.background, t.backgrounds), kBackgroundFloor);
}

std::vector<uint8_t> decode(const std::string& png, int* w, int* h) {
  int n = 0;
  unsigned char* px = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()),
                                            static_cast<int>(png.size()), w, h, &n, 3);
  if (!px) return {};
  std::vector<uint8_t> out(px, px + static_cast<size_t>(*w) * *h * 3);
  stbi_image_free(px);
  return out;
}

// The first command of the README: no --model, the default model draws the prompt.
TEST(DefaultModel, CliDrawsThePromptWithoutAModel) {
  SDGEN_REQUIRE_SPM();
  const auto dir = fs::path(testing::temp_dir("cli-default"));
  data::Scene scene;
  scene.background = 0;  // white
  data::SceneObject ob;
  ob.shape = data::Shape::kSquare;
  ob.colour = 4;  // blue
  ob.size = data::Size::kLarge;
  ob.position = data::Position::kCentre;
  scene.objects.push_back(ob);
  test::SdgenProcess p({"--prompt", "a large blue square in the centre on a white background",
                        "--steps", "20", "--seed", "7", "-o", (dir / "out.png").string()},
                       dir);
  const auto r = p.wait();
  ASSERT_EQ(r.status, 0) << r.err;
  int w = 0, h = 0;
  const auto rgb = decode(test::slurp(dir / "out.png"), &w, &h);
  ASSERT_EQ(w, 64);
  ASSERT_EQ(h, 64);
  const auto s = data::score_image(rgb, 64, scene);
  EXPECT_TRUE(s.background_ok);
  EXPECT_TRUE(s.objects[0].colour);
  EXPECT_TRUE(s.objects[0].position);
  EXPECT_TRUE(s.objects[0].shape);
}

}  // namespace
}  // namespace sdgen
