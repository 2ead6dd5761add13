// PNG encoding through stb_image_write, plus the text chunks (tEXt / iTXt) that carry the
// generation parameters, and a small chunk reader for those texts.
#include "sdgen/io/png.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

// stb_image_write is compiled here, privately (static functions), without its stdio helpers.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "sdgen/util/inflate.h"
#include "sdgen/util/utf8.h"

namespace sdgen {
namespace {

constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

struct CrcTable {
  uint32_t t[256];
  CrcTable() {
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
  }
};

uint32_t crc32_update(uint32_t crc, const uint8_t* p, size_t n) {
  static const CrcTable table;
  for (size_t i = 0; i < n; ++i) crc = table.t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(uint8_t(v >> 24));
  out.push_back(uint8_t(v >> 16));
  out.push_back(uint8_t(v >> 8));
  out.push_back(uint8_t(v));
}

// Appends one complete chunk: length, type, data, CRC-32 over type and data.
void append_chunk(std::vector<uint8_t>& out, const char type[4], const std::string& data) {
  if (data.size() > 0x7fffffffu) throw std::invalid_argument("PNG chunk too large");
  put_be32(out, uint32_t(data.size()));
  const size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  put_be32(out, crc32_update(0xffffffffu, out.data() + type_at, 4 + data.size()) ^ 0xffffffffu);
}

std::string latin1_to_utf8(const uint8_t* p, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) utf8::append(out, p[i]);
  return out;
}

void validate_keyword(const std::string& k) {
  if (k.empty() || k.size() > 79) {
    throw std::invalid_argument("PNG text keyword must be 1 to 79 bytes long: '" + k + "'");
  }
  for (size_t i = 0; i < k.size(); ++i) {
    const uint8_t c = uint8_t(k[i]);
    if (!((c >= 32 && c <= 126) || c >= 161)) {
      throw std::invalid_argument("PNG text keyword holds a non-printable Latin-1 byte: '" + k +
                                  "'");
    }
    if (c == ' ' && (i == 0 || i + 1 == k.size() || k[i - 1] == ' ')) {
      throw std::invalid_argument("PNG text keyword has a leading, trailing or doubled space: '" +
                                  k + "'");
    }
  }
}

// The data of a tEXt chunk when the text fits Latin-1, else of an uncompressed iTXt chunk.
std::string text_chunk_data(const PngText& t, bool* is_itxt) {
  validate_keyword(t.keyword);
  const std::u32string cps = utf8::decode(t.text);
  bool latin1 = true;
  for (uint32_t cp : cps) {
    if (cp == 0) throw std::invalid_argument("PNG text '" + t.keyword + "' holds a NUL character");
    if (cp > 0xff) latin1 = false;
  }
  std::string data = t.keyword;
  data += '\0';
  if (latin1) {
    for (uint32_t cp : cps) data += char(uint8_t(cp));
  } else {
    data += '\0';                                    // compression flag: uncompressed
    data += '\0';                                    // compression method
    data += '\0';                                    // empty language tag
    data += '\0';                                    // empty translated keyword
    for (char32_t cp : cps) utf8::append(data, cp);  // invalid input bytes now U+FFFD
  }
  *is_itxt = !latin1;
  return data;
}

std::string inflate_text(const uint8_t* p, size_t n, const std::string& keyword) {
  try {
    return inflate_zlib(p, n, size_t(64) << 20);  // a text chunk of over 64 MiB is hostile
  } catch (const InflateError& e) {
    throw std::runtime_error("PNG text chunk '" + keyword + "': corrupt compressed data (" +
                             e.what() + ")");
  }
}

std::string chunk_name(const uint8_t* p) {
  std::string s;
  for (int i = 0; i < 4; ++i) {
    const char c = char(p[i]);
    s += (c >= 33 && c <= 126) ? c : '?';
  }
  return s;
}

}  // namespace

std::vector<uint8_t> encode_png(const uint8_t* rgb, int width, int height,
                                const std::vector<PngText>& texts) {
  if (rgb == nullptr || width <= 0 || height <= 0) {
    throw std::invalid_argument("encode_png: empty image");
  }
  if (width > std::numeric_limits<int>::max() / 3 || width > (1 << 24) || height > (1 << 24)) {
    throw std::invalid_argument("encode_png: image too large");
  }
  // Build the text chunks first so that invalid keywords fail before any encoding work.
  std::vector<uint8_t> text_chunks;
  for (const PngText& t : texts) {
    bool itxt = false;
    const std::string data = text_chunk_data(t, &itxt);
    append_chunk(text_chunks, itxt ? "iTXt" : "tEXt", data);
  }

  std::vector<uint8_t> png;
  auto sink = [](void* ctx, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(ctx);
    const auto* p = static_cast<const uint8_t*>(data);
    out->insert(out->end(), p, p + size);
  };
  if (!stbi_write_png_to_func(sink, &png, width, height, 3, rgb, width * 3)) {
    throw std::runtime_error("PNG encoding failed (out of memory?)");
  }
  // stb writes: signature, IHDR (13 bytes of data), IDAT, IEND. Text goes right after IHDR.
  constexpr size_t kAfterIhdr = 8 + 4 + 4 + 13 + 4;
  if (png.size() < kAfterIhdr || std::memcmp(png.data(), kSignature, 8) != 0 ||
      std::memcmp(png.data() + 12, "IHDR", 4) != 0) {
    throw std::runtime_error("PNG encoding failed: unexpected encoder output");
  }
  png.insert(png.begin() + kAfterIhdr, text_chunks.begin(), text_chunks.end());
  return png;
}

std::map<std::string, std::string> png_text_chunks(const std::vector<uint8_t>& png) {
  if (png.size() < 8 || std::memcmp(png.data(), kSignature, 8) != 0) {
    throw std::runtime_error("not a PNG file (bad signature)");
  }
  std::map<std::string, std::string> texts;
  size_t pos = 8;
  bool first = true;
  for (;;) {
    if (png.size() - pos < 12) {
      throw std::runtime_error("truncated PNG: chunk header at offset " + std::to_string(pos) +
                               " cut off (no IEND)");
    }
    const uint8_t* head = png.data() + pos;
    const uint32_t len = read_be32(head);
    const std::string type = chunk_name(head + 4);
    if (len > 0x7fffffffu) {
      throw std::runtime_error("corrupt PNG: chunk '" + type + "' length " + std::to_string(len) +
                               " exceeds 2^31-1");
    }
    for (int i = 4; i < 8; ++i) {
      const uint8_t c = head[i];
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
        throw std::runtime_error("corrupt PNG: invalid chunk type at offset " +
                                 std::to_string(pos));
      }
    }
    if (png.size() - pos - 12 < len) {
      throw std::runtime_error("truncated PNG: chunk '" + type + "' runs past the end of the file");
    }
    const uint8_t* data = head + 8;
    const uint32_t crc = crc32_update(0xffffffffu, head + 4, 4 + size_t(len)) ^ 0xffffffffu;
    if (crc != read_be32(data + len)) {
      throw std::runtime_error("corrupt PNG: CRC mismatch in chunk '" + type + "'");
    }
    if (first) {
      if (type != "IHDR" || len != 13) throw std::runtime_error("corrupt PNG: no IHDR first");
      first = false;
    }

    if (type == "tEXt" || type == "zTXt" || type == "iTXt") {
      const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data, 0, len));
      if (nul == nullptr || nul == data || nul - data > 79) {
        throw std::runtime_error("corrupt PNG: " + type + " chunk without a valid keyword");
      }
      const std::string keyword(reinterpret_cast<const char*>(data), size_t(nul - data));
      const uint8_t* rest = nul + 1;
      const size_t rest_len = len - size_t(rest - data);
      std::string text;
      if (type == "tEXt") {
        text = latin1_to_utf8(rest, rest_len);
      } else if (type == "zTXt") {
        if (rest_len < 1 || rest[0] != 0) {
          throw std::runtime_error("corrupt PNG: zTXt '" + keyword + "' with unknown compression");
        }
        const std::string raw = inflate_text(rest + 1, rest_len - 1, keyword);
        text = latin1_to_utf8(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
      } else {  // iTXt: flag, method, language NUL, translated keyword NUL, text
        if (rest_len < 2 || rest[0] > 1 || (rest[0] == 1 && rest[1] != 0)) {
          throw std::runtime_error("corrupt PNG: iTXt '" + keyword + "' with bad compression");
        }
        const uint8_t* end = rest + rest_len;
        const uint8_t* p = rest + 2;
        for (int field = 0; field < 2; ++field) {  // language tag, translated keyword
          const auto* z = static_cast<const uint8_t*>(std::memchr(p, 0, size_t(end - p)));
          if (z == nullptr) {
            throw std::runtime_error("corrupt PNG: iTXt '" + keyword + "' is cut short");
          }
          p = z + 1;
        }
        if (rest[0] == 1) {
          text = inflate_text(p, size_t(end - p), keyword);
        } else {
          text.assign(reinterpret_cast<const char*>(p), size_t(end - p));
        }
      }
      texts[keyword] = std::move(text);  // like Pillow: a later chunk with the same keyword wins
    }

    pos += 12 + size_t(len);
    if (type == "IEND") break;  // anything after IEND is ignored
  }
  return texts;
}

}  // namespace sdgen
