// gzip reader (header flags, CRC-32 / ISIZE trailer, corruption handling).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

#include "sdgen/util/gzip.h"

namespace fs = std::filesystem;

namespace {

const std::string kVocabGz =
    std::string(SDGEN_REFERENCE_DIR) + "/clip_vocab/bpe_simple_vocab_16e6.txt.gz";

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void put_le32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

enum : unsigned { kFhcrc = 2, kFextra = 4, kFname = 8, kFcomment = 16 };

// A gzip member holding `data` in stored (uncompressed) deflate blocks.
std::string make_gzip(const std::string& data, unsigned flags) {
  std::string g = {'\x1f', '\x8b', '\x08', static_cast<char>(flags), 0, 0, 0, 0, 0, '\x03'};
  if (flags & kFextra) {
    const std::string extra = "AB\x04\x00wxyz";
    g.push_back(static_cast<char>(extra.size()));
    g.push_back(0);
    g += extra;
  }
  if (flags & kFname) g += std::string("name.txt") + '\0';
  if (flags & kFcomment) g += std::string("a comment") + '\0';
  if (flags & kFhcrc) {
    const uint32_t crc = sdgen::gzip_crc32(g.data(), g.size());
    g.push_back(static_cast<char>(crc & 0xFF));
    g.push_back(static_cast<char>((crc >> 8) & 0xFF));
  }
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(65535, data.size() - pos);
    const bool last = pos + len == data.size();
    g.push_back(last ? 1 : 0);  // BFINAL, BTYPE = 00 (stored)
    g.push_back(static_cast<char>(len & 0xFF));
    g.push_back(static_cast<char>(len >> 8));
    g.push_back(static_cast<char>(~len & 0xFF));
    g.push_back(static_cast<char>((~len >> 8) & 0xFF));
    g += data.substr(pos, len);
    pos += len;
  } while (pos < data.size());
  put_le32(g, sdgen::gzip_crc32(data.data(), data.size()));
  put_le32(g, static_cast<uint32_t>(data.size()));
  return g;
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& data) {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path = (fs::temp_directory_path() /
            ("sdgen_gz_" + std::to_string(rd()) + "_" + std::to_string(counter++) + ".gz"))
               .string();
    std::ofstream f(path, std::ios::binary);
    f << data;
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

std::string error_of_file(const std::string& data) {
  TempFile f(data);
  try {
    sdgen::gunzip_file(f.path);
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(f.path), std::string::npos) << "error does not name the file: " << msg;
    return msg;
  }
  ADD_FAILURE() << "corrupt data was accepted";
  return "";
}

}  // namespace

TEST(Gzip, Crc32KnownValues) {
  EXPECT_EQ(sdgen::gzip_crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(sdgen::gzip_crc32("", 0), 0u);
  // continuing a CRC over a split buffer gives the same value
  EXPECT_EQ(sdgen::gzip_crc32("6789", 4, sdgen::gzip_crc32("12345", 5)), 0xCBF43926u);
}

TEST(Gzip, ReadsReferenceVocabulary) {
  const std::string text = sdgen::gunzip_file(kVocabGz);
  EXPECT_EQ(text.size(), 3194984u);
  EXPECT_EQ(text.substr(0, 44), "\"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\n");
}

TEST(Gzip, HeaderFlagsAndStoredBlocks) {
  std::string big(200000, '\0');
  std::mt19937 rng(7);
  for (char& c : big) c = static_cast<char>(rng() & 0xFF);
  for (const std::string& data : {std::string(), std::string("hello gzip"), big}) {
    for (unsigned flags : {0u, unsigned(kFname), unsigned(kFextra | kFname | kFcomment | kFhcrc),
                           unsigned(kFcomment | kFhcrc)}) {
      SCOPED_TRACE("flags " + std::to_string(flags) + ", size " + std::to_string(data.size()));
      EXPECT_EQ(sdgen::gunzip(make_gzip(data, flags), "test"), data);
    }
  }
}

TEST(Gzip, FlippedByteIsReported) {
  const std::string good = read_all(kVocabGz);
  ASSERT_GT(good.size(), 1000u);
  for (size_t pos : {size_t(20), good.size() / 3, good.size() / 2, good.size() - 20}) {
    SCOPED_TRACE("flipped byte at " + std::to_string(pos));
    std::string bad = good;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x01);
    error_of_file(bad);
  }
}

TEST(Gzip, TrailerChecks) {
  const std::string good = make_gzip("some text to check", 0);
  std::string bad_crc = good;
  bad_crc[bad_crc.size() - 8] ^= 0x40;
  EXPECT_NE(error_of_file(bad_crc).find("CRC"), std::string::npos);
  std::string bad_size = good;
  bad_size[bad_size.size() - 4] ^= 0x01;
  EXPECT_NE(error_of_file(bad_size).find("length"), std::string::npos);
  std::string bad_data = good;
  bad_data[bad_data.size() - 12] ^= 0x01;  // a byte of the stored payload
  EXPECT_NE(error_of_file(bad_data).find("CRC"), std::string::npos);
  std::string bad_hcrc = make_gzip("x", kFname | kFhcrc);
  bad_hcrc[12] ^= 0x01;  // in the file name, covered by the header CRC
  EXPECT_NE(error_of_file(bad_hcrc).find("header CRC"), std::string::npos);
}

TEST(Gzip, TruncatedAndMalformed) {
  const std::string good = read_all(kVocabGz);
  error_of_file(good.substr(0, good.size() - 1));
  error_of_file(good.substr(0, good.size() / 2));
  error_of_file(good.substr(0, 12));
  error_of_file("");
  const std::string magic = error_of_file("not gzip at all, just text");
  EXPECT_NE(magic.find("not a gzip file"), std::string::npos);
  std::string method = make_gzip("x", 0);
  method[2] = 7;
  EXPECT_NE(error_of_file(method).find("compression method"), std::string::npos);
  std::string unterminated = make_gzip("", 0);
  unterminated[3] = kFname;  // the name never ends
  error_of_file(unterminated);
  std::string bad_block = make_gzip("abc", 0);
  bad_block[10] = 0x07;  // BTYPE = 11 (reserved)
  error_of_file(bad_block);
}

TEST(Gzip, MissingFileIsNamed) {
  const std::string path = "/nonexistent/dir/file.gz";
  try {
    sdgen::gunzip_file(path);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}
