#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#include "sdgen/util/sha256.h"

namespace {

std::string hex_of(const std::string& s) { return sdgen::sha256_hex(s.data(), s.size()); }

TEST(Sha256, NistVectors) {
  EXPECT_EQ(hex_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 448 bits: the padding spills into a second block.
  EXPECT_EQ(hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // 896 bits.
  EXPECT_EQ(
      hex_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqkl"
             "mnopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(hex_of(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalUpdatesMatchOneShot) {
  std::string msg;
  for (int i = 0; i < 1000; ++i) msg += char('a' + (i * 7) % 26);
  const std::string expected = hex_of(msg);
  // Pieces of every size from 0 to 130 bytes cross the 64-byte block edges in many ways.
  for (size_t piece = 0; piece <= 130; piece += 1) {
    sdgen::Sha256 h;
    size_t pos = 0;
    while (pos < msg.size()) {
      const size_t n = std::min(piece == 0 ? size_t(1) : piece, msg.size() - pos);
      h.update(msg.data() + pos, n);
      if (piece == 0) h.update(msg.data(), 0);  // empty updates change nothing
      pos += n;
    }
    EXPECT_EQ(h.hex_digest(), expected) << "piece " << piece;
  }
  // Messages of 55, 56, 63, 64 and 65 bytes: the padding edge cases.
  EXPECT_EQ(hex_of(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(hex_of(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(hex_of(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256, ReferenceCheckpointFile) {
  EXPECT_EQ(sdgen::sha256_file_hex(SDGEN_REFERENCE_DIR "/tiny-sd1.safetensors"),
            "da1c81e326ad088055d10f79f0401d5c2ba0b3810ea72ad1f73b9b6d0b8c4c0a");
}

TEST(Sha256, FileStreamingMatchesMemory) {
  // 2.5 MiB: several 1 MiB reads, the last one partial.
  std::string data(5 * 512 * 1024 + 17, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char((i * 2654435761u) >> 13);
  const std::string path = ::testing::TempDir() + "sdgen_sha256_" + std::to_string(::getpid());
  {
    std::ofstream f(path, std::ios::binary);
    f.write(data.data(), std::streamsize(data.size()));
  }
  EXPECT_EQ(sdgen::sha256_file_hex(path), hex_of(data));
  std::remove(path.c_str());
}

TEST(Sha256, MissingFileErrorNamesPath) {
  const std::string path = "/nonexistent-sdgen-dir/model.safetensors";
  try {
    sdgen::sha256_file_hex(path);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
