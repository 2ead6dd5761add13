// src/io/resample.cpp against Pillow 9.4's Image.resize: the expected pixels are Pillow's
// (scripts/make-image-fixtures.py wrote them to tests/data/images/, listed in
// resize_cases.tsv), and every resize must match them bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sdgen/io/resample.h"

// stb_image, compiled into sdgen_core by src/io/stb_image_impl.cpp: the fixtures are read with
// it directly, byte for byte, so these tests do not depend on image_read.cpp's rules.
extern "C" unsigned char* stbi_load(const char* filename, int* x, int* y, int* channels_in_file,
                                    int desired_channels);
extern "C" void stbi_image_free(void* retval_from_stbi_load);

namespace {

using sdgen::Image8;
using sdgen::ResampleFilter;

std::string data_dir() { return SDGEN_TEST_DATA_DIR "/images/"; }

const std::string kConformance = SDGEN_REFERENCE_DIR "/../conformance/img2img/";

// A PNG's bytes as stored: 1 (L), 3 (RGB) or 4 (RGBA) channels.
Image8 load_raw(const std::string& path) {
  Image8 im;
  unsigned char* p = stbi_load(path.c_str(), &im.width, &im.height, &im.channels, 0);
  if (!p) throw std::runtime_error("cannot read fixture " + path);
  im.pixels.assign(p, p + size_t(im.width) * im.height * im.channels);
  stbi_image_free(p);
  return im;
}

std::string describe_mismatch(const Image8& got, const Image8& want) {
  if (got.width != want.width || got.height != want.height || got.channels != want.channels) {
    return "size " + std::to_string(got.width) + "x" + std::to_string(got.height) + "x" +
           std::to_string(got.channels) + ", want " + std::to_string(want.width) + "x" +
           std::to_string(want.height) + "x" + std::to_string(want.channels);
  }
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    if (got.pixels[i] != want.pixels[i] && bad++ == 0) first = i;
  }
  if (bad == 0) return "";
  const size_t px = first / size_t(got.channels);
  return std::to_string(bad) + " bytes differ; first at x=" + std::to_string(px % got.width) +
         " y=" + std::to_string(px / got.width) +
         " channel=" + std::to_string(first % got.channels) +
         ": got=" + std::to_string(got.pixels[first]) +
         " want=" + std::to_string(want.pixels[first]);
}

struct Case {
  std::string input, filter, expected;
  int width = 0, height = 0;
};

std::vector<Case> read_cases() {
  std::ifstream f(data_dir() + "resize_cases.tsv");
  EXPECT_TRUE(f.good()) << "missing " << data_dir() << "resize_cases.tsv";
  std::vector<Case> cases;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    Case c;
    in >> c.input >> c.filter >> c.width >> c.height >> c.expected;
    cases.push_back(c);
  }
  return cases;
}

const std::map<std::string, ResampleFilter> kFilters = {{"box", ResampleFilter::kBox},
                                                        {"bilinear", ResampleFilter::kBilinear},
                                                        {"hamming", ResampleFilter::kHamming},
                                                        {"bicubic", ResampleFilter::kBicubic},
                                                        {"lanczos", ResampleFilter::kLanczos}};

TEST(Resample, MatchesPillowBitForBit) {
  const std::vector<Case> cases = read_cases();
  ASSERT_GE(cases.size(), 30u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.input + " " + c.filter + " -> " + std::to_string(c.width) + "x" +
                 std::to_string(c.height));
    const std::string prefix = "conformance:";
    const std::string path = c.input.rfind(prefix, 0) == 0
                                 ? kConformance + c.input.substr(prefix.size())
                                 : data_dir() + c.input;
    const Image8 in = load_raw(path);
    const Image8 want = load_raw(data_dir() + c.expected);
    ASSERT_EQ(kFilters.count(c.filter), 1u);
    const Image8 got = sdgen::resize(in, c.width, c.height, kFilters.at(c.filter));
    EXPECT_EQ(describe_mismatch(got, want), "");
  }
}

// The conformance resizes the inpainting spec names, checked by name so that they cannot drop
// out of the fixture list unnoticed.
TEST(Resample, ConformanceCasesArePresent) {
  std::vector<std::string> names;
  for (const Case& c : read_cases()) names.push_back(c.expected);
  for (const char* want :
       {"resize_init_house_80x100_lanczos_64x64.png", "resize_mask_rect_aligned_bicubic_8x8.png",
        "resize_mask_rect_unaligned_bicubic_8x8.png"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
}

// The latent masks of the conformance cases: Pillow BICUBIC to 8x8, then >= 128 repaints. The
// aligned rectangle (x 24..55, y 16..39) gives exactly its 4 x 3 blocks, the unaligned one
// (x 12..43, y 19..51) 17 blocks (the counts in cases.json's notes).
TEST(Resample, ConformanceLatentMasks) {
  for (const auto& [name, want] : std::vector<std::pair<std::string, int>>{
           {"mask_rect_aligned.png", 12}, {"mask_rect_unaligned.png", 17}}) {
    const Image8 mask = load_raw(kConformance + name);
    ASSERT_EQ(mask.channels, 1);
    const Image8 m = sdgen::resize(mask, 8, 8, ResampleFilter::kBicubic);
    int repainted = 0;
    for (int y = 0; y < 8; ++y) {
      for (int x = 0; x < 8; ++x) {
        const bool on = m.pixels[size_t(y) * 8 + x] >= 128;
        repainted += on;
        if (want == 12) {
          EXPECT_EQ(on, x >= 3 && x <= 6 && y >= 2 && y <= 4) << x << "," << y;
        }
      }
    }
    EXPECT_EQ(repainted, want) << name;
  }
}

TEST(Resample, SameSizeIsACopy) {
  Image8 in;
  in.width = 3;
  in.height = 2;
  in.channels = 2;
  in.pixels = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const Image8 out = sdgen::resize(in, 3, 2, ResampleFilter::kLanczos);
  EXPECT_EQ(out.width, 3);
  EXPECT_EQ(out.height, 2);
  EXPECT_EQ(out.channels, 2);
  EXPECT_EQ(out.pixels, in.pixels);
}

TEST(Resample, ConstantImageStaysConstant) {
  for (uint8_t v : {0, 1, 128, 254, 255}) {
    Image8 in;
    in.width = 17;
    in.height = 11;
    in.channels = 3;
    in.pixels.assign(17 * 11 * 3, v);
    for (const auto& [name, f] : kFilters) {
      for (const auto& [w, h] : std::vector<std::pair<int, int>>{{5, 3}, {40, 29}, {1, 1}}) {
        const Image8 out = sdgen::resize(in, w, h, f);
        ASSERT_EQ(out.pixels.size(), size_t(w) * h * 3);
        for (uint8_t p : out.pixels) ASSERT_EQ(p, v) << name << " " << w << "x" << h;
      }
    }
  }
}

TEST(Resample, RejectsBadSizes) {
  Image8 in;
  in.width = 2;
  in.height = 2;
  in.channels = 1;
  in.pixels = {0, 1, 2, 3};
  EXPECT_THROW(sdgen::resize(in, 0, 2, ResampleFilter::kBicubic), std::invalid_argument);
  EXPECT_THROW(sdgen::resize(in, 2, -1, ResampleFilter::kBicubic), std::invalid_argument);
  in.pixels.pop_back();
  EXPECT_THROW(sdgen::resize(in, 4, 4, ResampleFilter::kBicubic), std::invalid_argument);
  EXPECT_THROW(sdgen::resize(Image8{}, 4, 4, ResampleFilter::kBicubic), std::invalid_argument);
}

}  // namespace
