// DEFLATE decoding after RFC 1951, with canonical Huffman tables decoded bit by bit over the
// code lengths (counts per length and symbols in code order, as zlib's "puff" reference
// decoder does it): short, and fast enough for vocabularies and PNG text.
#include "sdgen/util/inflate.h"

#include <array>
#include <vector>

namespace sdgen {
namespace {

constexpr int kMaxBits = 15;

class BitReader {
 public:
  BitReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  // `n` bits (n <= 16), least significant first.
  uint32_t bits(int n) {
    while (count_ < n) {
      if (pos_ >= size_) throw InflateError("the stream ends in the middle of a block");
      buffer_ |= uint32_t(data_[pos_++]) << count_;
      count_ += 8;
    }
    const uint32_t v = buffer_ & ((1u << n) - 1);
    buffer_ >>= n;
    count_ -= n;
    return v;
  }
  void align() {  // drop the rest of the current byte
    buffer_ = 0;
    count_ = 0;
  }
  size_t pos() const { return pos_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  void skip(size_t n) { pos_ += n; }

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0;
  uint32_t buffer_ = 0;
  int count_ = 0;
};

// A canonical Huffman code: how many codes of each length, and the symbols in code order.
struct Huffman {
  std::array<uint16_t, kMaxBits + 1> count{};
  std::vector<uint16_t> symbol;

  // From code lengths (0: unused symbol). Incomplete codes are allowed only where RFC 1951
  // allows them (a single distance code); over-subscribed ones never.
  void build(const uint8_t* lengths, int n, bool allow_incomplete) {
    count.fill(0);
    for (int s = 0; s < n; ++s) ++count[lengths[s]];
    if (count[0] == n) {
      symbol.clear();
      return;  // no codes: any use of it is an error (decode finds nothing)
    }
    int left = 1;
    for (int len = 1; len <= kMaxBits; ++len) {
      left = (left << 1) - count[len];
      if (left < 0) throw InflateError("over-subscribed Huffman code lengths");
    }
    if (left > 0 && !allow_incomplete) throw InflateError("incomplete Huffman code lengths");
    std::array<uint16_t, kMaxBits + 1> offset{};
    for (int len = 1; len < kMaxBits; ++len) offset[len + 1] = offset[len] + count[len];
    symbol.assign(n, 0);
    for (int s = 0; s < n; ++s)
      if (lengths[s] != 0) symbol[offset[lengths[s]]++] = static_cast<uint16_t>(s);
  }

  int decode(BitReader& in) const {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= kMaxBits; ++len) {
      code |= static_cast<int>(in.bits(1));
      const int c = count[len];
      if (code - c < first) return symbol.at(index + (code - first));
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
    throw InflateError("a Huffman code that the block's table does not have");
  }
};

constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                      15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr uint16_t kDistBase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                    33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr uint8_t kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

void put(std::string& out, char c, size_t max_output) {
  if (out.size() >= max_output)
    throw InflateError("the data inflates to more than " + std::to_string(max_output) + " bytes");
  out.push_back(c);
}

void codes(BitReader& in, std::string& out, const Huffman& lit, const Huffman& dist,
           size_t max_output) {
  for (;;) {
    const int sym = lit.decode(in);
    if (sym < 256) {
      put(out, static_cast<char>(sym), max_output);
    } else if (sym == 256) {
      return;
    } else {
      const int l = sym - 257;
      if (l >= 29) throw InflateError("an invalid length code (" + std::to_string(sym) + ")");
      const size_t len = kLengthBase[l] + in.bits(kLengthExtra[l]);
      const int d = dist.decode(in);
      if (d >= 30) throw InflateError("an invalid distance code (" + std::to_string(d) + ")");
      const size_t back = kDistBase[d] + in.bits(kDistExtra[d]);
      if (back > out.size())
        throw InflateError("a back-reference " + std::to_string(back) + " bytes before the start");
      for (size_t i = 0; i < len; ++i) put(out, out[out.size() - back], max_output);
    }
  }
}

void fixed_tables(Huffman& lit, Huffman& dist) {
  uint8_t lengths[288];
  for (int s = 0; s < 144; ++s) lengths[s] = 8;
  for (int s = 144; s < 256; ++s) lengths[s] = 9;
  for (int s = 256; s < 280; ++s) lengths[s] = 7;
  for (int s = 280; s < 288; ++s) lengths[s] = 8;
  lit.build(lengths, 288, false);
  uint8_t d[30];
  for (auto& v : d) v = 5;
  dist.build(d, 30, true);
}

void dynamic_tables(BitReader& in, Huffman& lit, Huffman& dist) {
  const int nlen = static_cast<int>(in.bits(5)) + 257;
  const int ndist = static_cast<int>(in.bits(5)) + 1;
  const int ncode = static_cast<int>(in.bits(4)) + 4;
  if (nlen > 286 || ndist > 30) throw InflateError("too many length or distance codes");
  static constexpr uint8_t order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                        11, 4,  12, 3, 13, 2, 14, 1, 15};
  uint8_t lengths[320] = {};
  for (int i = 0; i < ncode; ++i) lengths[order[i]] = static_cast<uint8_t>(in.bits(3));
  Huffman lencode;
  lencode.build(lengths, 19, false);
  int i = 0;
  while (i < nlen + ndist) {
    int sym = lencode.decode(in);
    if (sym < 16) {
      lengths[i++] = static_cast<uint8_t>(sym);
      continue;
    }
    uint8_t value = 0;
    int repeat;
    if (sym == 16) {
      if (i == 0) throw InflateError("a repeated code length with nothing before it");
      value = lengths[i - 1];
      repeat = 3 + static_cast<int>(in.bits(2));
    } else if (sym == 17) {
      repeat = 3 + static_cast<int>(in.bits(3));
    } else {
      repeat = 11 + static_cast<int>(in.bits(7));
    }
    if (i + repeat > nlen + ndist) throw InflateError("code lengths past the table");
    while (repeat--) lengths[i++] = value;
  }
  if (lengths[256] == 0) throw InflateError("a block without an end-of-block code");
  lit.build(lengths, nlen, false);
  // a single distance code (or none, for literal-only data) is an allowed incomplete code
  dist.build(lengths + nlen, ndist, true);
}

}  // namespace

std::string inflate_raw(const uint8_t* data, size_t size, size_t* consumed, size_t max_output) {
  BitReader in(data, size);
  std::string out;
  bool last = false;
  while (!last) {
    last = in.bits(1) != 0;
    const uint32_t type = in.bits(2);
    if (type == 0) {  // stored: LEN, NLEN on a byte boundary, then LEN bytes
      in.align();
      if (in.pos() + 4 > in.size())
        throw InflateError("the stream ends in a stored block's header");
      const uint8_t* p = in.data() + in.pos();
      const unsigned len = p[0] | p[1] << 8, nlen = p[2] | p[3] << 8;
      if ((len ^ 0xFFFFu) != nlen) throw InflateError("a stored block's length check fails");
      in.skip(4);
      if (in.pos() + len > in.size()) throw InflateError("the stream ends in a stored block");
      if (out.size() + len > max_output)
        throw InflateError("the data inflates to more than " + std::to_string(max_output) +
                           " bytes");
      out.append(reinterpret_cast<const char*>(in.data() + in.pos()), len);
      in.skip(len);
    } else if (type == 1 || type == 2) {
      Huffman lit, dist;
      if (type == 1)
        fixed_tables(lit, dist);
      else
        dynamic_tables(in, lit, dist);
      codes(in, out, lit, dist, max_output);
    } else {
      throw InflateError("a block of the reserved type 3");
    }
  }
  if (consumed) *consumed = in.pos();  // (the last byte is used up to the block's end)
  return out;
}

uint32_t adler32(const void* data, size_t size, uint32_t adler) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t a = adler & 0xFFFF, b = adler >> 16;
  for (size_t i = 0; i < size; ++i) {
    a = (a + p[i]) % 65521;
    b = (b + a) % 65521;
  }
  return b << 16 | a;
}

std::string inflate_zlib(const uint8_t* data, size_t size, size_t max_output) {
  if (size < 6) throw InflateError("too short for a zlib stream");
  if ((data[0] & 0x0F) != 8 || (data[0] >> 4) > 7) throw InflateError("not a deflate zlib stream");
  if ((data[0] << 8 | data[1]) % 31 != 0) throw InflateError("the zlib header check fails");
  if (data[1] & 0x20) throw InflateError("a preset dictionary, which PNG does not use");
  size_t used = 0;
  std::string out = inflate_raw(data + 2, size - 2, &used, max_output);
  if (2 + used + 4 > size) throw InflateError("the zlib stream ends before its Adler-32");
  const uint8_t* t = data + 2 + used;
  const uint32_t want = uint32_t(t[0]) << 24 | uint32_t(t[1]) << 16 | uint32_t(t[2]) << 8 | t[3];
  if (adler32(out.data(), out.size()) != want) throw InflateError("the Adler-32 check fails");
  return out;
}

}  // namespace sdgen
