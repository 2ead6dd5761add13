// PNG output: 8-bit RGB through stb_image_write, with text chunks, written atomically.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "sdgen/util/fs.h"  // write_file_atomic, read_file_bytes

namespace sdgen {

struct PngText {
  std::string keyword;  // Latin-1, 1..79 bytes
  std::string text;     // UTF-8; stored as tEXt when every code point is <= U+00FF, else iTXt
};

// rgb: height * width * 3 bytes, row-major. Returns the complete PNG file, the text chunks
// right after IHDR. Throws std::invalid_argument for an invalid keyword (empty, over 79 bytes,
// non-printable Latin-1, leading/trailing/double space) or a text holding NUL; invalid UTF-8
// in a text is stored as U+FFFD.
std::vector<uint8_t> encode_png(const uint8_t* rgb, int width, int height,
                                const std::vector<PngText>& texts);

// keyword -> text (as UTF-8) of every tEXt / zTXt / iTXt chunk of a PNG file in memory.
// Keywords are returned as stored (Latin-1 bytes); a later chunk with the same keyword wins
// (as in Pillow). Compressed chunks are inflated. Throws std::runtime_error on a malformed
// file (signature, chunk lengths, CRCs, IHDR first, IEND present, text chunk layout).
std::map<std::string, std::string> png_text_chunks(const std::vector<uint8_t>& png);

}  // namespace sdgen
