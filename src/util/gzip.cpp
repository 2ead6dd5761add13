#include "sdgen/util/gzip.h"

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

// The one translation unit that compiles stb_image (PNG decoder + its zlib inflater).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace sdgen {
namespace {

struct Crc32Table {
  uint32_t t[256];
  Crc32Table() {
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
  }
};

uint32_t le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

[[noreturn]] void fail(const std::string& label, const std::string& what) {
  throw std::runtime_error("gzip: " + label + ": " + what);
}

constexpr unsigned char kFhcrc = 2, kFextra = 4, kFname = 8, kFcomment = 16;

}  // namespace

uint32_t gzip_crc32(const void* data, size_t size, uint32_t crc) {
  static const Crc32Table table;
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = crc ^ 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table.t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string gunzip(const std::string& data, const std::string& label) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  const std::string hint = " (the file is damaged or incomplete; download it again)";
  // header: ID1 ID2 CM FLG MTIME(4) XFL OS, then the optional fields, then deflate data,
  // then the trailer CRC32(4) ISIZE(4)
  if (n < 2 || p[0] != 0x1F || p[1] != 0x8B) fail(label, "not a gzip file (bad magic bytes)");
  if (n < 18) fail(label, "too short for a gzip file (" + std::to_string(n) + " bytes)" + hint);
  if (p[2] != 8) {
    fail(label, "unsupported compression method " + std::to_string(p[2]) + " (only deflate)");
  }
  const unsigned char flags = p[3];
  if (flags & 0xE0) fail(label, "reserved header flag bits are set" + hint);
  size_t pos = 10;
  const size_t body_end = n - 8;  // start of the trailer
  if (flags & kFextra) {
    if (pos + 2 > body_end) fail(label, "truncated FEXTRA field" + hint);
    const size_t xlen = size_t(p[pos]) | size_t(p[pos + 1]) << 8;
    pos += 2;
    if (pos + xlen > body_end) fail(label, "truncated FEXTRA field" + hint);
    pos += xlen;
  }
  for (unsigned char flag : {kFname, kFcomment}) {
    if (!(flags & flag)) continue;
    while (pos < body_end && p[pos] != 0) ++pos;
    if (pos >= body_end) {
      fail(label, std::string("unterminated ") + (flag == kFname ? "FNAME" : "FCOMMENT") +
                      " field" + hint);
    }
    ++pos;  // the terminating zero
  }
  if (flags & kFhcrc) {
    if (pos + 2 > body_end) fail(label, "truncated header CRC" + hint);
    const uint32_t want = uint32_t(p[pos]) | uint32_t(p[pos + 1]) << 8;
    const uint32_t got = gzip_crc32(p, pos) & 0xFFFF;
    if (want != got) fail(label, "header CRC mismatch" + hint);
    pos += 2;
  }
  const size_t deflate_len = body_end - pos;
  if (deflate_len > size_t(INT_MAX)) fail(label, "compressed data too large (over 2 GiB)");

  int out_len = 0;
  char* out = stbi_zlib_decode_noheader_malloc(reinterpret_cast<const char*>(p + pos),
                                               static_cast<int>(deflate_len), &out_len);
  if (!out) {
    const char* why = stbi_failure_reason();
    fail(label,
         std::string("corrupt deflate data (") + (why ? why : "inflate failed") + ")" + hint);
  }
  std::string result(out, out + (out_len > 0 ? out_len : 0));
  std::free(out);

  const uint32_t want_crc = le32(p + body_end);
  const uint32_t want_size = le32(p + body_end + 4);
  if (static_cast<uint32_t>(result.size()) != want_size) {
    fail(label, "length mismatch: the trailer says " + std::to_string(want_size) +
                    " bytes, the data inflates to " + std::to_string(result.size()) + hint +
                    "; only single-member gzip files are supported");
  }
  const uint32_t got_crc = gzip_crc32(result.data(), result.size());
  if (got_crc != want_crc) {
    std::ostringstream os;
    os << std::hex << "CRC-32 mismatch: the trailer says 0x" << want_crc << ", the data has 0x"
       << got_crc;
    fail(label, os.str() + hint);
  }
  return result;
}

std::string gunzip_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("gzip: cannot open '" + path + "' for reading");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw std::runtime_error("gzip: error while reading '" + path + "'");
  return gunzip(ss.str(), "'" + path + "'");
}

}  // namespace sdgen
