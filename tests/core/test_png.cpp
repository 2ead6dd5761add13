#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sdgen/io/png.h"
#include "sdgen/util/fs.h"

// stb_image, compiled into sdgen_core by src/util/gzip.cpp.
extern "C" char* stbi_zlib_decode_malloc(const char* buffer, int len, int* outlen);
extern "C" unsigned char* stbi_load_from_memory(const unsigned char* buffer, int len, int* x,
                                                int* y, int* channels_in_file,
                                                int desired_channels);
extern "C" void stbi_image_free(void* retval_from_stbi_load);

namespace {

struct Chunk {
  std::string type;
  std::string data;
  bool crc_ok;
};

// Bit-by-bit CRC-32 (ISO 3309), independent of the table-driven one under test.
uint32_t crc32_bitwise(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

std::vector<Chunk> scan_chunks(const std::vector<uint8_t>& png) {
  std::vector<Chunk> out;
  EXPECT_GE(png.size(), 8u);
  EXPECT_EQ(std::memcmp(png.data(), "\x89PNG\r\n\x1a\n", 8), 0);
  size_t pos = 8;
  while (pos + 12 <= png.size()) {
    const uint32_t len = be32(&png[pos]);
    if (pos + 12 + len > png.size()) {
      ADD_FAILURE() << "chunk runs past the end";
      break;
    }
    Chunk c;
    c.type.assign(reinterpret_cast<const char*>(&png[pos + 4]), 4);
    c.data.assign(reinterpret_cast<const char*>(&png[pos + 8]), len);
    c.crc_ok = crc32_bitwise(c.type + c.data) == be32(&png[pos + 8 + len]);
    out.push_back(c);
    pos += 12 + len;
  }
  EXPECT_EQ(pos, png.size()) << "trailing bytes";
  return out;
}

std::vector<uint8_t> gradient(int w, int h) {
  std::vector<uint8_t> rgb(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[(size_t(y) * w + x) * 3];
      p[0] = uint8_t(x * 255 / (w - 1));
      p[1] = uint8_t(y * 255 / (h - 1));
      p[2] = uint8_t((x * 7 + y * 13) & 0xff);
    }
  }
  return rgb;
}

// Appends a chunk with a correct CRC (to build malformed-but-consistent files).
void add_chunk(std::vector<uint8_t>& png, const std::string& type, const std::string& data) {
  const uint32_t len = uint32_t(data.size());
  for (int s = 24; s >= 0; s -= 8) png.push_back(uint8_t(len >> s));
  png.insert(png.end(), type.begin(), type.end());
  png.insert(png.end(), data.begin(), data.end());
  const uint32_t crc = crc32_bitwise(type + data);
  for (int s = 24; s >= 0; s -= 8) png.push_back(uint8_t(crc >> s));
}

const std::string kLatin1Text = "Zo\xc3\xab, caf\xc3\xa9 \xc2\xb1 1\nSteps: 30";  // Zoë, café ± 1
const std::string kNonLatin1Text = "em \xe2\x80\x94 dash \xf0\x9f\x98\x80";       // — and 😀

TEST(Png, EncodeWritesTextChunksAfterIhdr) {
  const int w = 37, h = 23;
  const std::vector<uint8_t> rgb = gradient(w, h);
  const std::vector<uint8_t> png = sdgen::encode_png(
      rgb.data(), w, h, {{"parameters", kLatin1Text}, {"Comment", kNonLatin1Text}});
  const std::vector<Chunk> chunks = scan_chunks(png);
  ASSERT_GE(chunks.size(), 5u);
  EXPECT_EQ(chunks[0].type, "IHDR");
  EXPECT_EQ(chunks[1].type, "tEXt");
  EXPECT_EQ(chunks[2].type, "iTXt");
  EXPECT_EQ(chunks[3].type, "IDAT");
  EXPECT_EQ(chunks.back().type, "IEND");
  for (const Chunk& c : chunks) EXPECT_TRUE(c.crc_ok) << c.type;

  // IHDR: width, height, 8-bit RGB, no interlace.
  const auto* ihdr = reinterpret_cast<const uint8_t*>(chunks[0].data.data());
  ASSERT_EQ(chunks[0].data.size(), 13u);
  EXPECT_EQ(be32(ihdr), uint32_t(w));
  EXPECT_EQ(be32(ihdr + 4), uint32_t(h));
  EXPECT_EQ(ihdr[8], 8);
  EXPECT_EQ(ihdr[9], 2);
  EXPECT_EQ(ihdr[12], 0);

  // tEXt holds Latin-1 bytes; iTXt holds flag 0, method 0, empty language and translation.
  EXPECT_EQ(chunks[1].data, std::string("parameters\0Zo\xeb, caf\xe9 \xb1 1\nSteps: 30", 34));
  EXPECT_EQ(chunks[2].data, std::string("Comment\0\0\0\0\0", 12) + kNonLatin1Text);

  const auto texts = sdgen::png_text_chunks(png);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts.at("parameters"), kLatin1Text);
  EXPECT_EQ(texts.at("Comment"), kNonLatin1Text);
}

TEST(Png, PixelsSurviveEncoding) {
  const int w = 19, h = 11;
  const std::vector<uint8_t> rgb = gradient(w, h);
  const std::vector<uint8_t> png = sdgen::encode_png(rgb.data(), w, h, {{"parameters", "x"}});
  std::string idat;
  for (const Chunk& c : scan_chunks(png)) {
    if (c.type == "IDAT") idat += c.data;
  }
  int n = 0;
  char* raw = stbi_zlib_decode_malloc(idat.data(), int(idat.size()), &n);
  ASSERT_NE(raw, nullptr);
  const size_t stride = size_t(w) * 3;
  ASSERT_EQ(size_t(n), (stride + 1) * h);
  // Undo the PNG row filters (bpp 3) and compare.
  std::vector<uint8_t> out(stride * h), prev(stride, 0);
  for (int y = 0; y < h; ++y) {
    const uint8_t filter = uint8_t(raw[y * (stride + 1)]);
    const auto* in = reinterpret_cast<const uint8_t*>(raw + y * (stride + 1) + 1);
    uint8_t* row = &out[y * stride];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= 3 ? row[i - 3] : 0, b = prev[i], c = i >= 3 ? prev[i - 3] : 0;
      int pred = 0;
      switch (filter) {
        case 0:
          pred = 0;
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = b;
          break;
        case 3:
          pred = (a + b) / 2;
          break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default:
          FAIL() << "filter " << int(filter);
      }
      row[i] = uint8_t(in[i] + pred);
    }
    std::memcpy(prev.data(), row, stride);
  }
  std::free(raw);
  EXPECT_EQ(out, rgb);

  // And through a complete PNG decoder.
  int dw = 0, dh = 0, dc = 0;
  unsigned char* px = stbi_load_from_memory(png.data(), int(png.size()), &dw, &dh, &dc, 3);
  ASSERT_NE(px, nullptr);
  EXPECT_EQ(dw, w);
  EXPECT_EQ(dh, h);
  EXPECT_EQ(dc, 3);
  EXPECT_EQ(std::vector<uint8_t>(px, px + rgb.size()), rgb);
  stbi_image_free(px);
}

TEST(Png, NoTextsGivesPlainPng) {
  const std::vector<uint8_t> rgb = gradient(4, 4);
  const std::vector<uint8_t> png = sdgen::encode_png(rgb.data(), 4, 4, {});
  const std::vector<Chunk> chunks = scan_chunks(png);
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].type, "IHDR");
  EXPECT_EQ(chunks[1].type, "IDAT");
  EXPECT_TRUE(sdgen::png_text_chunks(png).empty());
}

TEST(Png, InvalidKeywordsAndArguments) {
  const std::vector<uint8_t> rgb = gradient(2, 2);
  for (const std::string& bad :
       {std::string(), std::string(80, 'k'), std::string(" lead"), std::string("trail "),
        std::string("two  spaces"), std::string("tab\there"), std::string("nul\0x", 5),
        std::string("del\x7f"), std::string("nbsp\xa0")}) {
    EXPECT_THROW(sdgen::encode_png(rgb.data(), 2, 2, {{bad, "v"}}), std::invalid_argument)
        << "keyword '" << bad << "'";
  }
  EXPECT_NO_THROW(sdgen::encode_png(rgb.data(), 2, 2, {{std::string(79, 'k'), "v"}}));
  EXPECT_NO_THROW(sdgen::encode_png(rgb.data(), 2, 2, {{"Caf\xe9 key", "v"}}));  // Latin-1 é
  EXPECT_THROW(sdgen::encode_png(rgb.data(), 2, 2, {{"k", std::string("a\0b", 3)}}),
               std::invalid_argument);
  EXPECT_THROW(sdgen::encode_png(rgb.data(), 0, 2, {}), std::invalid_argument);
  EXPECT_THROW(sdgen::encode_png(nullptr, 2, 2, {}), std::invalid_argument);
}

TEST(Png, InvalidUtf8BecomesReplacementCharacter) {
  const std::vector<uint8_t> rgb = gradient(2, 2);
  const std::vector<uint8_t> png = sdgen::encode_png(rgb.data(), 2, 2,
                                                     {{"k",
                                                       "a\xff"
                                                       "b"}});
  EXPECT_EQ(scan_chunks(png)[1].type, "iTXt");
  EXPECT_EQ(sdgen::png_text_chunks(png).at("k"),
            "a\xef\xbf\xbd"
            "b");
}

TEST(Png, MalformedFilesThrow) {
  const std::vector<uint8_t> rgb = gradient(8, 8);
  const std::vector<uint8_t> good = sdgen::encode_png(rgb.data(), 8, 8, {{"parameters", "abc"}});
  ASSERT_NO_THROW(sdgen::png_text_chunks(good));

  EXPECT_THROW(sdgen::png_text_chunks({}), std::runtime_error);
  std::vector<uint8_t> bad = good;
  bad[1] = 'Q';  // signature
  EXPECT_THROW(sdgen::png_text_chunks(bad), std::runtime_error);
  for (size_t cut : {size_t(9), size_t(20), size_t(40), good.size() - 1, good.size() - 12}) {
    EXPECT_THROW(sdgen::png_text_chunks(std::vector<uint8_t>(good.begin(), good.begin() + cut)),
                 std::runtime_error)
        << "cut at " << cut;
  }
  bad = good;
  bad[33 + 8 + 12] ^= 0x20;  // a byte of the tEXt data: CRC mismatch
  EXPECT_THROW(sdgen::png_text_chunks(bad), std::runtime_error);
  bad = good;
  bad[33] = 0x80;  // tEXt length above 2^31 - 1
  EXPECT_THROW(sdgen::png_text_chunks(bad), std::runtime_error);
  bad = good;
  bad[33 + 3] += 1;  // tEXt length one too long: CRC no longer matches
  EXPECT_THROW(sdgen::png_text_chunks(bad), std::runtime_error);

  // Consistent chunks (right CRCs) with bad contents.
  const std::vector<uint8_t> head(good.begin(), good.begin() + 33);  // signature + IHDR
  auto with = [&](const std::string& type, const std::string& data) {
    std::vector<uint8_t> png = head;
    add_chunk(png, type, data);
    add_chunk(png, "IEND", "");
    return png;
  };
  EXPECT_NO_THROW(sdgen::png_text_chunks(with("tEXt", std::string("k\0v", 3))));
  EXPECT_THROW(sdgen::png_text_chunks(with("tEXt", "no separator")), std::runtime_error);
  EXPECT_THROW(sdgen::png_text_chunks(with("tEXt", std::string("\0v", 2))), std::runtime_error);
  EXPECT_THROW(sdgen::png_text_chunks(with("iTXt", std::string("k\0\0\0", 4))), std::runtime_error);
  EXPECT_THROW(sdgen::png_text_chunks(with("iTXt", std::string("k\0\2\0\0\0v", 7))),
               std::runtime_error);
  EXPECT_THROW(sdgen::png_text_chunks(with("zTXt", std::string("k\0\1xx", 5))), std::runtime_error);
  EXPECT_THROW(sdgen::png_text_chunks(with("t3Xt", "x")), std::runtime_error);
  // IHDR must come first.
  std::vector<uint8_t> no_ihdr(good.begin(), good.begin() + 8);
  add_chunk(no_ihdr, "IEND", "");
  EXPECT_THROW(sdgen::png_text_chunks(no_ihdr), std::runtime_error);
}

TEST(Png, LaterChunkWithSameKeywordWins) {
  const std::vector<uint8_t> rgb = gradient(2, 2);
  const auto png =
      sdgen::encode_png(rgb.data(), 2, 2, {{"k", "first"}, {"k", "second \xe2\x80\x94"}});
  EXPECT_EQ(sdgen::png_text_chunks(png).at("k"), "second \xe2\x80\x94");
}

// A 1x1 PNG made with Python's zlib: zTXt "parameters" = Latin-1 "Zoë, Steps: 5", and a
// compressed iTXt "Comment" = "em — dash".
const char kCompressedTextPng[] =
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00\x00"
    "\x01"
    "\x08\x02\x00\x00\x00\x90\x77\x53\xde\x00\x00\x00\x21\x7a\x54\x58\x74\x70\x61\x72\x61\x6d\x65"
    "\x74"
    "\x65\x72\x73\x00\x00\x78\x9c\x8b\xca\x7f\xad\xa3\x10\x5c\x92\x5a\x50\x6c\xa5\x60\x0a\x00\x24"
    "\x05"
    "\x04\x9f\x76\x30\xe5\x7f\x00\x00\x00\x21\x69\x54\x58\x74\x43\x6f\x6d\x6d\x65\x6e\x74\x00\x01"
    "\x00"
    "\x65\x6e\x00\x00\x78\x9c\x4b\xcd\x55\x78\xd4\x30\x45\x21\x25\xb1\x38\x03\x00\x1c\x6d\x04\xa9"
    "\xbe"
    "\x0e\x18\x00\x00\x00\x00\x0c\x49\x44\x41\x54\x78\x9c\x63\x10\x50\x30\x00\x00\x00\xa4\x00\x61"
    "\x34"
    "\x66\x7d\x72\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82";

TEST(Png, CompressedTextChunks) {
  const std::vector<uint8_t> png(kCompressedTextPng,
                                 kCompressedTextPng + sizeof(kCompressedTextPng) - 1);
  ASSERT_EQ(png.size(), 159u);
  const auto texts = sdgen::png_text_chunks(png);
  EXPECT_EQ(texts.at("parameters"), "Zo\xc3\xab, Steps: 5");
  EXPECT_EQ(texts.at("Comment"), "em \xe2\x80\x94 dash");
}

// ---- write_file_atomic / read_file_bytes / make_parent_dirs ----

class Atomic : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "sdgen_atomic_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { remove_tree(dir_); }

  static void remove_tree(const std::string& path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
      for (const std::string& name : list(path)) remove_tree(path + "/" + name);
      ::rmdir(path.c_str());
    } else {
      ::unlink(path.c_str());
    }
  }
  static std::vector<std::string> list(const std::string& path) {
    std::vector<std::string> names;
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return names;
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    return names;
  }
  static std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  void expect_no_temp_files(const std::string& folder) {
    for (const std::string& n : list(folder)) {
      EXPECT_EQ(n.find(".tmp-"), std::string::npos) << "left over: " << n;
    }
  }
  std::string dir_;
};

TEST_F(Atomic, WritesNewFileWithUmaskMode) {
  const std::string path = dir_ + "/out.png";
  const std::string data("hello\0world", 11);
  const mode_t old = ::umask(022);
  sdgen::write_file_atomic(path, data.data(), data.size(), false);
  ::umask(old);
  EXPECT_EQ(slurp(path), data);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  const std::vector<uint8_t> back = sdgen::read_file_bytes(path);
  EXPECT_EQ(std::string(back.begin(), back.end()), data);
  EXPECT_EQ(list(dir_).size(), 1u);
  expect_no_temp_files(dir_);
}

TEST_F(Atomic, RefusesToReplaceWithoutOverwrite) {
  const std::string path = dir_ + "/out.png";
  sdgen::write_file_atomic(path, "old", 3, false);
  try {
    sdgen::write_file_atomic(path, "new content", 11, false);
    FAIL() << "no exception";
  } catch (const sdgen::FileExistsError& e) {
    EXPECT_EQ(std::string(e.what()), path + " exists; pass --overwrite to replace it");
  }
  EXPECT_EQ(slurp(path), "old");
  EXPECT_EQ(list(dir_).size(), 1u);
  expect_no_temp_files(dir_);
}

TEST_F(Atomic, ReplacesWithOverwrite) {
  const std::string path = dir_ + "/out.png";
  sdgen::write_file_atomic(path, "old", 3, false);
  sdgen::write_file_atomic(path, "new content", 11, true);
  EXPECT_EQ(slurp(path), "new content");
  sdgen::write_file_atomic(path, "", 0, true);  // empty data is fine
  EXPECT_EQ(slurp(path), "");
  EXPECT_EQ(list(dir_).size(), 1u);
  expect_no_temp_files(dir_);
}

TEST_F(Atomic, MissingFolderFailsNamingThePath) {
  const std::string path = dir_ + "/no/such/folder/out.png";
  try {
    sdgen::write_file_atomic(path, "x", 1, false);
    FAIL() << "no exception";
  } catch (const sdgen::FileExistsError&) {
    FAIL() << "wrong exception type";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(list(dir_).empty());
}

TEST_F(Atomic, TargetIsAFolder) {
  const std::string path = dir_ + "/sub";
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  EXPECT_THROW(sdgen::write_file_atomic(path, "x", 1, false), sdgen::FileExistsError);
  EXPECT_THROW(sdgen::write_file_atomic(path, "x", 1, true), std::runtime_error);
  EXPECT_THROW(sdgen::write_file_atomic(dir_ + "/", "x", 1, true), std::runtime_error);
  expect_no_temp_files(dir_);
  EXPECT_EQ(list(dir_).size(), 1u);
}

TEST_F(Atomic, ConcurrentWritersExactlyOneWins) {
  const std::string path = dir_ + "/race.png";
  std::atomic<int> won{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string data(1000 + t, char('a' + t));
      try {
        sdgen::write_file_atomic(path, data.data(), data.size(), false);
        ++won;
      } catch (const sdgen::FileExistsError&) {
        ++refused;
      } catch (...) {
        ++other;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(refused.load(), 7);
  EXPECT_EQ(other.load(), 0);
  const std::string content = slurp(path);
  ASSERT_GE(content.size(), 1000u);
  EXPECT_EQ(content, std::string(content.size(), content[0]));  // one writer's whole file
  expect_no_temp_files(dir_);
}

TEST_F(Atomic, LongFileName) {
  const std::string path = dir_ + "/" + std::string(250, 'n') + ".png";  // 254 bytes
  sdgen::write_file_atomic(path, "x", 1, false);
  EXPECT_EQ(slurp(path), "x");
  expect_no_temp_files(dir_);
}

TEST_F(Atomic, ReadMissingFileNamesPath) {
  const std::string path = dir_ + "/missing.bin";
  try {
    sdgen::read_file_bytes(path);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST_F(Atomic, ReadLargeFile) {
  std::string data(3 * 1024 * 1024 + 5, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 31 + (i >> 11));
  const std::string path = dir_ + "/big.bin";
  sdgen::write_file_atomic(path, data.data(), data.size(), false);
  const std::vector<uint8_t> back = sdgen::read_file_bytes(path);
  ASSERT_EQ(back.size(), data.size());
  EXPECT_EQ(std::memcmp(back.data(), data.data(), data.size()), 0);
}

TEST_F(Atomic, MakeParentDirs) {
  const std::string path = dir_ + "/a/b/c/out.png";
  sdgen::make_parent_dirs(path);
  sdgen::make_parent_dirs(path);  // already there: nothing to do
  sdgen::write_file_atomic(path, "x", 1, false);
  EXPECT_EQ(slurp(path), "x");
  sdgen::make_parent_dirs("bare-name.png");  // no folder part

  const std::string file = dir_ + "/plain";
  sdgen::write_file_atomic(file, "f", 1, false);
  try {
    sdgen::make_parent_dirs(file + "/sub/out.png");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
  EXPECT_EQ(sdgen::file_stem("models/v1-5.safetensors"), "v1-5");
  EXPECT_EQ(sdgen::file_stem("a.b.safetensors"), "a.b");
  EXPECT_EQ(sdgen::file_stem("models/tiny-sd1/"), "tiny-sd1");
  EXPECT_EQ(sdgen::file_stem("dir/.hidden"), ".hidden");
}

}  // namespace
