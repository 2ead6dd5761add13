#include "sdgen/util/gzip.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "sdgen/util/inflate.h"

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
  constexpr size_t kMaxOutput = size_t(1) << 30;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  const std::string hint = " (the file is damaged or incomplete; download it again)";
  if (n < 2 || p[0] != 0x1F || p[1] != 0x8B) fail(label, "not a gzip file (bad magic bytes)");
  std::string result;
  size_t pos = 0;
  // One or more members (RFC 1952 2.2), each: header ID1 ID2 CM FLG MTIME(4) XFL OS, the
  // optional fields, deflate data, then the trailer CRC32(4) ISIZE(4).
  for (int member = 1; pos < n; ++member) {
    const std::string which = member == 1 ? "" : " (member " + std::to_string(member) + ")";
    // gzip ignores zero padding after the last member (tape blocks)
    if (member > 1 && std::all_of(p + pos, p + n, [](unsigned char c) { return c == 0; })) break;
    if (n - pos < 18)
      fail(label, "too short for a gzip member" + which + " (" + std::to_string(n - pos) +
                      " bytes)" + hint);
    const unsigned char* m = p + pos;
    if (m[0] != 0x1F || m[1] != 0x8B) fail(label, "bad magic bytes" + which + hint);
    if (m[2] != 8)
      fail(label, "unsupported compression method " + std::to_string(m[2]) + " (only deflate)");
    const unsigned char flags = m[3];
    if (flags & 0xE0) fail(label, "reserved header flag bits are set" + which + hint);
    size_t at = pos + 10;
    if (flags & kFextra) {
      if (at + 2 > n) fail(label, "truncated FEXTRA field" + hint);
      const size_t xlen = size_t(p[at]) | size_t(p[at + 1]) << 8;
      at += 2;
      if (at + xlen > n) fail(label, "truncated FEXTRA field" + hint);
      at += xlen;
    }
    for (unsigned char flag : {kFname, kFcomment}) {
      if (!(flags & flag)) continue;
      while (at < n && p[at] != 0) ++at;
      if (at >= n)
        fail(label, std::string("unterminated ") + (flag == kFname ? "FNAME" : "FCOMMENT") +
                        " field" + hint);
      ++at;  // the terminating zero
    }
    if (flags & kFhcrc) {
      if (at + 2 > n) fail(label, "truncated header CRC" + hint);
      const uint32_t want = uint32_t(p[at]) | uint32_t(p[at + 1]) << 8;
      if (want != (gzip_crc32(m, at - pos) & 0xFFFF)) fail(label, "header CRC mismatch" + hint);
      at += 2;
    }
    size_t used = 0;
    std::string out;
    try {
      // (a vocabulary is megabytes; a "gzip bomb" stops at the limit instead of taking the
      // machine's memory)
      out = inflate_raw(p + at, n - at, &used, kMaxOutput - result.size());
    } catch (const InflateError& e) {
      fail(label, std::string("corrupt deflate data") + which + " (" + e.what() + ")" + hint);
    }
    at += used;
    if (at + 8 > n) fail(label, "the trailer (CRC-32 and length) is missing" + which + hint);
    const uint32_t want_crc = le32(p + at), want_size = le32(p + at + 4);
    if (static_cast<uint32_t>(out.size()) != want_size)
      fail(label, "length mismatch" + which + ": the trailer says " + std::to_string(want_size) +
                      " bytes, the data inflates to " + std::to_string(out.size()) + hint);
    const uint32_t got_crc = gzip_crc32(out.data(), out.size());
    if (got_crc != want_crc) {
      std::ostringstream os;
      os << std::hex << "CRC-32 mismatch" << which << ": the trailer says 0x" << want_crc
         << ", the data has 0x" << got_crc;
      fail(label, os.str() + hint);
    }
    result += out;
    pos = at + 8;
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
