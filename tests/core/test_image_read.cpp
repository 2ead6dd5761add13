// src/io/image_read.cpp: PNG kinds and JPEGs against what Pillow 9.4 and A1111 make of them
// (the expected images were written by scripts/make-image-fixtures.py into tests/data/images/),
// and the errors of damaged, hostile and missing files.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/io/image_read.h"
#include "sdgen/io/png.h"

// stb_image, compiled into sdgen_core by src/io/stb_image_impl.cpp: the expected images are read
// with it directly, byte for byte.
extern "C" unsigned char* stbi_load(const char* filename, int* x, int* y, int* channels_in_file,
                                    int desired_channels);
extern "C" void stbi_image_free(void* retval_from_stbi_load);

namespace {

using sdgen::Image8;

std::string data_dir() { return SDGEN_TEST_DATA_DIR "/images/"; }

const std::string kConformance = SDGEN_REFERENCE_DIR "/../conformance/img2img/";

Image8 load_raw(const std::string& path, int channels) {
  Image8 im;
  int in_file = 0;
  unsigned char* p = stbi_load(path.c_str(), &im.width, &im.height, &in_file, channels);
  if (!p) throw std::runtime_error("cannot read fixture " + path);
  im.channels = channels;
  im.pixels.assign(p, p + size_t(im.width) * im.height * channels);
  stbi_image_free(p);
  return im;
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The largest difference of two images of the same size (255 + 1 when the sizes differ).
int max_abs_diff(const Image8& a, const Image8& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels) return 256;
  int worst = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  }
  return worst;
}

// Every PNG kind: decoded, flattened over white and made a mask exactly as Pillow and A1111 do
// (gray16 excepted by design: Pillow 9.4 opens it as 32-bit "I" and clips it to white; sdgen
// takes the high byte, as Pillow does for 16-bit RGB, and gray16.rgb.png holds that).
TEST(ImageRead, PngKindsMatchPillowExactly) {
  for (const char* stem :
       {"gray8", "gray16", "gray1", "gray4", "gray_alpha", "gray_alpha16", "palette", "palette4",
        "palette_trns", "rgb16", "rgba16", "rgba_all_alphas", "rgba_opaque", "rgb_trns",
        "rgb_noise", "rgb_interlaced", "mask_rgba_alpha"}) {
    SCOPED_TRACE(stem);
    const std::string path = data_dir() + stem + ".png";
    const Image8 rgb = sdgen::read_image_rgb(path);
    const Image8 want_rgb = load_raw(data_dir() + stem + ".rgb.png", 3);
    EXPECT_EQ(rgb.channels, 3);
    EXPECT_EQ(rgb.width, want_rgb.width);
    EXPECT_EQ(rgb.height, want_rgb.height);
    EXPECT_EQ(max_abs_diff(rgb, want_rgb), 0);
    const Image8 mask = sdgen::read_mask(path);
    const Image8 want_mask = load_raw(data_dir() + stem + ".mask.png", 1);
    EXPECT_EQ(mask.channels, 1);
    EXPECT_EQ(max_abs_diff(mask, want_mask), 0);
  }
}

// Every (value, alpha) pair composited over white: Pillow's DIV255 rounding, spot-checked.
TEST(ImageRead, FlattenOverWhite) {
  const Image8 rgb = sdgen::read_image_rgb(data_dir() + "rgba_all_alphas.png");
  ASSERT_EQ(rgb.width, 256);
  auto at = [&](int value, int alpha) { return rgb.pixels[(size_t(value) * 256 + alpha) * 3]; };
  EXPECT_EQ(at(0, 0), 255);  // transparent: white
  EXPECT_EQ(at(0, 255), 0);  // opaque: the colour
  EXPECT_EQ(at(37, 255), 37);
  EXPECT_EQ(at(0, 128), 127);  // 255 * 127 / 255 = 127
  EXPECT_EQ(at(0, 127), 128);  // 255 * 128 / 255 = 128
  EXPECT_EQ(at(100, 1), 254);  // (100 + 255 * 254) / 255 = 254.39
}

TEST(ImageRead, MaskThresholdsAlphaAbove128) {
  // mask_rgba_alpha.png: alpha = y * 16 + x, random colours
  const Image8 m = sdgen::read_mask(data_dir() + "mask_rgba_alpha.png");
  ASSERT_EQ(m.width, 16);
  EXPECT_EQ(m.pixels[128], 0);
  EXPECT_EQ(m.pixels[129], 255);
  EXPECT_EQ(m.pixels[0], 0);
  EXPECT_EQ(m.pixels[255], 255);
  // alpha all 255: the luma of the colours (Pillow's L24), not the alpha
  const Image8 luma = sdgen::read_mask(data_dir() + "rgba_opaque.png");
  const Image8 rgb = sdgen::read_image_rgb(data_dir() + "rgba_opaque.png");
  const uint8_t* p = &rgb.pixels[0];
  EXPECT_EQ(luma.pixels[0], (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

// stb_image's JPEG decoder is not libjpeg-turbo's (Pillow's): its IDCT is the same integer
// algorithm (jidctint), but its chroma upsampling rounds (3a + b + 8) >> 4 where libjpeg's
// fancy upsampling alternates +8 / +7, and its YCbCr -> RGB uses other fixed-point constants,
// so pixels differ by a level or two: measured maxima 2 (4:2:0, 4:4:4, progressive) and 1
// (gray), means 0.005 to 0.08 (the numbers printed). The bounds add a margin of 1.
TEST(ImageRead, JpegCloseToLibjpeg) {
  const struct {
    const char* stem;
    int max_diff;
  } cases[] = {{"cat420", 3}, {"cat444", 3}, {"cat_progressive", 3}, {"cat_gray", 2}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.stem);
    const Image8 rgb = sdgen::read_image_rgb(data_dir() + c.stem + ".jpg");
    const Image8 want = load_raw(data_dir() + c.stem + ".rgb.png", 3);
    const int diff = max_abs_diff(rgb, want);
    double sum = 0;
    for (size_t i = 0; i < rgb.pixels.size(); ++i) {
      sum += std::abs(int(rgb.pixels[i]) - int(want.pixels[i]));
    }
    const double mean = sum / double(rgb.pixels.size());
    std::printf("%s: max |stb - libjpeg| = %d, mean %.3f\n", c.stem, diff, mean);
    EXPECT_LE(diff, c.max_diff);
    EXPECT_LT(mean, 0.5);
    const Image8 mask = sdgen::read_mask(data_dir() + c.stem + ".jpg");
    EXPECT_LE(max_abs_diff(mask, load_raw(data_dir() + c.stem + ".mask.png", 1)), c.max_diff);
  }
}

TEST(ImageRead, ConformanceInputs) {
  const Image8 cat = sdgen::read_image_rgb(kConformance + "init_cat.png");
  EXPECT_EQ(cat.width, 64);
  EXPECT_EQ(cat.height, 64);
  EXPECT_EQ(cat.pixels.size(), 64u * 64 * 3);
  const Image8 house = sdgen::read_image_rgb(kConformance + "init_house_80x100.png");
  EXPECT_EQ(house.width, 80);
  EXPECT_EQ(house.height, 100);
  // white (255) rectangle x 24..55, y 16..39 on black
  const Image8 m = sdgen::read_mask(kConformance + "mask_rect_aligned.png");
  ASSERT_EQ(m.width, 64);
  ASSERT_EQ(m.channels, 1);
  for (int y = 0; y < 64; ++y) {
    for (int x = 0; x < 64; ++x) {
      const bool inside = x >= 24 && x <= 55 && y >= 16 && y <= 39;
      ASSERT_EQ(m.pixels[size_t(y) * 64 + x], inside ? 255 : 0) << x << "," << y;
    }
  }
}

// --- errors ---

// The message of the runtime_error `f` throws ("" when it does not throw).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

uint32_t crc32_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

void put_be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

// A PNG with IHDR's width and height replaced (and its CRC fixed).
std::vector<uint8_t> with_png_size(std::vector<uint8_t> png, uint32_t width, uint32_t height) {
  put_be32(&png[16], width);
  put_be32(&png[20], height);
  put_be32(&png[29], crc32_bitwise(&png[12], 17));
  return png;
}

Image8 decode(const std::vector<uint8_t>& bytes, const std::string& label = "input.png") {
  return sdgen::decode_image_rgb(bytes.data(), bytes.size(), label);
}

TEST(ImageReadErrors, HugeHeaderFailsFastNamingTheLimit) {
  const std::vector<uint8_t> png =
      with_png_size(file_bytes(kConformance + "init_cat.png"), 100000, 100000);
  const auto start = std::chrono::steady_clock::now();
  const std::string e = error_of([&] { decode(png, "huge.png"); });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(starts_with(e, "huge.png: ")) << e;
  EXPECT_NE(e.find("100000x100000"), std::string::npos) << e;
  EXPECT_NE(e.find("16384"), std::string::npos) << e;
  EXPECT_LT(seconds, 0.5);  // nothing decoded, nothing allocated for the pixels
  EXPECT_NE(error_of([&] { sdgen::decode_mask(png.data(), png.size(), "huge.png"); }), "");
  // the pixel count: each side allowed, the product not
  const std::string area = error_of(
      [&] { decode(with_png_size(file_bytes(kConformance + "init_cat.png"), 16384, 16384)); });
  EXPECT_NE(area.find("256000000 pixels"), std::string::npos) << area;
  // limits given by the caller
  const std::string small = error_of([&] {
    sdgen::read_image_rgb(kConformance + "init_cat.png", sdgen::ImageLimits{32, 1024});
  });
  EXPECT_NE(small.find("64x64"), std::string::npos) << small;
}

TEST(ImageReadErrors, HugeJpegHeader) {
  std::vector<uint8_t> jpg = file_bytes(data_dir() + "cat420.jpg");
  size_t sof = 2;  // find the SOF0 / SOF2 segment
  while (sof + 9 < jpg.size() &&
         !(jpg[sof] == 0xff && (jpg[sof + 1] & 0xf0) == 0xc0 && jpg[sof + 1] != 0xc4)) {
    sof += 2 + (size_t(jpg[sof + 2]) << 8 | jpg[sof + 3]);
  }
  ASSERT_LT(sof + 9, jpg.size());
  jpg[sof + 5] = jpg[sof + 6] = jpg[sof + 7] = jpg[sof + 8] = 0xff;
  const std::string e = error_of([&] { decode(jpg, "huge.jpg"); });
  EXPECT_TRUE(starts_with(e, "huge.jpg: ")) << e;
  EXPECT_NE(e.find("65535x65535"), std::string::npos) << e;
}

TEST(ImageReadErrors, ZeroSize) {
  const std::string e =
      error_of([&] { decode(with_png_size(file_bytes(kConformance + "init_cat.png"), 0, 64)); });
  EXPECT_TRUE(starts_with(e, "input.png: ")) << e;
  EXPECT_NE(e.find("0x64"), std::string::npos) << e;
}

TEST(ImageReadErrors, TruncatedPng) {
  const std::vector<uint8_t> png = file_bytes(kConformance + "init_cat.png");
  for (size_t keep : {size_t(8), size_t(30), png.size() / 2, png.size() - 12}) {
    SCOPED_TRACE(keep);
    const std::vector<uint8_t> cut(png.begin(), png.begin() + long(keep));
    const std::string e = error_of([&] { decode(cut, "cut.png"); });
    EXPECT_TRUE(starts_with(e, "cut.png: ")) << e;
  }
  const std::vector<uint8_t> half(png.begin(), png.begin() + long(png.size() / 2));
  EXPECT_NE(error_of([&] { decode(half); }).find("truncated"), std::string::npos);
}

TEST(ImageReadErrors, CorruptImageData) {
  std::vector<uint8_t> png = file_bytes(kConformance + "init_cat.png");
  // IDAT is the chunk after IHDR (and any ancillary ones); overwrite its middle
  const size_t idat = std::string(png.begin(), png.end()).find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  for (size_t i = idat + 10; i < idat + 40; ++i) png[i] = 0xff;
  const std::string e = error_of([&] { decode(png, "bad.png"); });
  EXPECT_TRUE(starts_with(e, "bad.png: ")) << e;
  EXPECT_NE(e.find("corrupt"), std::string::npos) << e;
}

// IDAT data that inflates far past what the header's 8x8 pixels need: rejected before stb_image
// (which would grow its buffer for all of it).
TEST(ImageReadErrors, ImageDataLargerThanTheHeaderSays) {
  const std::vector<uint8_t> rgb(1024 * 1024 * 3, 0);
  const std::vector<uint8_t> big = sdgen::encode_png(rgb.data(), 1024, 1024, {});
  const std::vector<uint8_t> png = with_png_size(big, 8, 8);
  const std::string e = error_of([&] { decode(png, "bomb.png"); });
  EXPECT_TRUE(starts_with(e, "bomb.png: corrupt PNG image data")) << e;
  EXPECT_NE(e.find("inflates to more than"), std::string::npos) << e;
}

// A Huffman table declaring more than 256 codes: stb_image 2.27 would write past its arrays
// (fuzz/fuzz_image.cpp found it); rejected before stb_image sees it.
TEST(ImageReadErrors, JpegHuffmanTableOverflow) {
  std::vector<uint8_t> jpg = file_bytes(data_dir() + "cat420.jpg");
  size_t dht = 2;
  while (dht + 4 < jpg.size() && !(jpg[dht] == 0xff && jpg[dht + 1] == 0xc4)) {
    dht += 2 + (size_t(jpg[dht + 2]) << 8 | jpg[dht + 3]);
  }
  ASSERT_LT(dht + 21, jpg.size());
  for (size_t i = dht + 5; i < dht + 21; ++i) jpg[i] = 0xff;  // 16 x 255 codes
  const std::string e = error_of([&] { decode(jpg, "dht.jpg"); });
  EXPECT_TRUE(starts_with(e, "dht.jpg: corrupt JPEG: a Huffman table declares 4080 codes")) << e;
}

// A scan using a Huffman table that no DHT segment defines: stb_image 2.27 would decode with
// uninitialised tables (fuzz/fuzz_image.cpp found it).
TEST(ImageReadErrors, JpegScanWithUndefinedHuffmanTable) {
  std::vector<uint8_t> jpg = file_bytes(data_dir() + "cat420.jpg");
  size_t sos = 2;
  while (sos + 4 < jpg.size() && !(jpg[sos] == 0xff && jpg[sos + 1] == 0xda)) {
    sos += 2 + (size_t(jpg[sos + 2]) << 8 | jpg[sos + 3]);
  }
  ASSERT_LT(sos + 7, jpg.size());
  jpg[sos + 6] = 0x33;  // the first component's DC and AC tables: 3, which Pillow never writes
  const std::string e = error_of([&] { decode(jpg, "sos.jpg"); });
  EXPECT_TRUE(starts_with(e, "sos.jpg: corrupt JPEG: a scan uses Huffman table DC 3")) << e;
}

TEST(ImageReadErrors, NotAnImage) {
  std::vector<uint8_t> noise(300);
  uint32_t s = 12345;
  for (auto& b : noise) b = uint8_t((s = s * 1103515245u + 12345u) >> 24);
  std::string e = error_of([&] { decode(noise, "noise.bin"); });
  EXPECT_TRUE(starts_with(e, "noise.bin: not a PNG or JPEG file")) << e;
  EXPECT_NE(e.find("PNG or JPEG"), std::string::npos) << e;
  const std::string gif("GIF89a\x01\x00\x01\x00", 10);
  e = error_of([&] { decode(std::vector<uint8_t>(gif.begin(), gif.end()), "a.gif"); });
  EXPECT_NE(e.find("GIF"), std::string::npos) << e;
  const std::string webp("RIFF\x10\x00\x00\x00WEBPVP8 ", 16);
  e = error_of([&] { decode(std::vector<uint8_t>(webp.begin(), webp.end()), "a.webp"); });
  EXPECT_NE(e.find("WebP"), std::string::npos) << e;
  // a PNG signature followed by garbage
  std::vector<uint8_t> sig = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  sig.insert(sig.end(), noise.begin(), noise.end());
  e = error_of([&] { decode(sig, "sig.png"); });
  EXPECT_TRUE(starts_with(e, "sig.png: corrupt PNG")) << e;
}

class ImageReadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "sdgen_image_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const char* n : {"/empty.png", "/large.png"}) ::unlink((dir_ + n).c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
};

TEST_F(ImageReadFiles, MissingFile) {
  const std::string path = dir_ + "/nope.png";
  const std::string e = error_of([&] { sdgen::read_image_rgb(path); });
  EXPECT_TRUE(starts_with(e, path + ": ")) << e;
  EXPECT_NE(e.find("No such file"), std::string::npos) << e;
  EXPECT_TRUE(starts_with(error_of([&] { sdgen::read_mask(path); }), path + ": "));
}

TEST_F(ImageReadFiles, EmptyFileAndFolder) {
  const std::string path = dir_ + "/empty.png";
  std::ofstream(path).close();
  std::string e = error_of([&] { sdgen::read_image_rgb(path); });
  EXPECT_TRUE(starts_with(e, path + ": the file is empty")) << e;
  e = error_of([&] { sdgen::read_mask(dir_); });
  EXPECT_TRUE(starts_with(e, dir_ + ": a folder")) << e;
}

// Over the 1 GiB cap: refused from the file's size, before reading (a sparse file: no disk
// space used).
TEST_F(ImageReadFiles, FileOverTheSizeCap) {
  const std::string path = dir_ + "/large.png";
  std::ofstream(path).close();
  ASSERT_EQ(::truncate(path.c_str(), off_t(sdgen::kMaxImageFileBytes) + 1), 0);
  const auto start = std::chrono::steady_clock::now();
  const std::string e = error_of([&] { sdgen::read_image_rgb(path); });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 0.5);
  EXPECT_TRUE(starts_with(e, path + ": the file is 1025 MiB")) << e;
  EXPECT_NE(e.find("1024 MiB"), std::string::npos) << e;
}

}  // namespace
