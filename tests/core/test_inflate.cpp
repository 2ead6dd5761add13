// DEFLATE and zlib decoding (util/inflate.h): the three block types, the zlib wrapper, limits
// and malformed streams; gzip files of several members.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sdgen/util/gzip.h"
#include "sdgen/util/inflate.h"

namespace sdgen {
namespace {

using ::testing::HasSubstr;

// zlib.compressobj(9, DEFLATED, -15, 9, Z_FIXED) of the text below: one fixed-Huffman block
// with back-references (stb_image's inflater rejects it; `gzip -t` accepts it).
const std::vector<uint8_t> kFixed = {0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0x40, 0x27,
                                     0x75, 0x14, 0x12, 0x15, 0xd2, 0x32, 0x2b, 0x52, 0x53,
                                     0x14, 0x3c, 0x4a, 0xd3, 0xd2, 0x72, 0x13, 0xf3, 0x14,
                                     0x92, 0x72, 0xf2, 0x93, 0xb3, 0x01};
const std::string kFixedText = "hello hello hello hello, a fixed Huffman block";

std::string error_of(const std::vector<uint8_t>& data, size_t limit = size_t(1) << 31) {
  try {
    inflate_raw(data.data(), data.size(), nullptr, limit);
  } catch (const InflateError& e) {
    return e.what();
  }
  return "";
}

TEST(Inflate, FixedHuffmanBlockWithBackReferences) {
  size_t used = 0;
  EXPECT_EQ(inflate_raw(kFixed.data(), kFixed.size(), &used), kFixedText);
  EXPECT_EQ(used, kFixed.size());
  auto padded = kFixed;
  padded.insert(padded.end(), {0xAA, 0xBB});  // what follows the stream is not read
  EXPECT_EQ(inflate_raw(padded.data(), padded.size(), &used), kFixedText);
  EXPECT_EQ(used, kFixed.size());
}

TEST(Inflate, ZlibWrapperChecksAdler32) {
  const std::vector<uint8_t> z = {0x78, 0x9c, 0xab, 0xca, 0xc9, 0x4c, 0x52, 0x28, 0x2f,
                                  0x4a, 0x2c, 0x28, 0x48, 0x4d, 0x51, 0x28, 0x49, 0xad,
                                  0x28, 0x01, 0x00, 0x3b, 0xe0, 0x06, 0xaa};
  EXPECT_EQ(inflate_zlib(z.data(), z.size()), "zlib wrapped text");
  EXPECT_EQ(adler32("Wikipedia", 9), 0x11E60398u);
  auto bad = z;
  bad.back() ^= 1;
  EXPECT_THROW(inflate_zlib(bad.data(), bad.size()), InflateError);
  bad = z;
  bad[1] ^= 1;  // header check
  EXPECT_THROW(inflate_zlib(bad.data(), bad.size()), InflateError);
}

TEST(Inflate, MalformedStreamsAreNamed) {
  EXPECT_THAT(error_of({0x07}), HasSubstr("reserved type 3"));
  EXPECT_THAT(error_of({0x01, 0x05, 0x00, 0x00, 0x00}), HasSubstr("length check"));
  EXPECT_THAT(error_of({0x01, 0x05, 0x00, 0xfa, 0xff, 'a'}), HasSubstr("ends in a stored block"));
  EXPECT_THAT(error_of(std::vector<uint8_t>(kFixed.begin(), kFixed.begin() + 10)),
              HasSubstr("ends in the middle"));
  EXPECT_THAT(error_of(kFixed, 10), HasSubstr("more than 10 bytes"));
  // a fixed block that starts with a back-reference: length code 257 (0000001), distance 0
  EXPECT_THAT(error_of({0x03, 0x02, 0x00}), HasSubstr("before the start"));
  // every single-bit change of the stream is an error or another text, never a crash
  for (size_t i = 0; i < kFixed.size() * 8; ++i) {
    auto flipped = kFixed;
    flipped[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    try {
      (void)inflate_raw(flipped.data(), flipped.size());
    } catch (const InflateError&) {
    }
  }
}

TEST(Gzip, SeveralMembersAndZeroPadding) {
  // gzip members around kFixed: header, the DEFLATE data, CRC-32 and length
  auto member = [](const std::vector<uint8_t>& deflate, const std::string& text) {
    std::string g = {'\x1f', '\x8b', 8, 0, 0, 0, 0, 0, 0, 3};
    g.append(deflate.begin(), deflate.end());
    const uint32_t crc = gzip_crc32(text.data(), text.size());
    const uint32_t n = static_cast<uint32_t>(text.size());
    for (uint32_t v : {crc, n})
      for (int i = 0; i < 4; ++i) g.push_back(static_cast<char>(v >> (8 * i)));
    return g;
  };
  const std::string one = member(kFixed, kFixedText);
  EXPECT_EQ(gunzip(one, "one"), kFixedText);
  EXPECT_EQ(gunzip(one + one, "two"), kFixedText + kFixedText);
  EXPECT_EQ(gunzip(one + std::string(512, '\0'), "padded"), kFixedText);
  try {
    gunzip(one + "garbage that is long enough to look like a member", "junk");
    FAIL() << "trailing garbage accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("member 2"));
  }
}

}  // namespace
}  // namespace sdgen
