// DEFLATE decompression (RFC 1951: stored, fixed-Huffman and dynamic-Huffman blocks) and the
// zlib wrapper (RFC 1950: header, Adler-32), written for sdgen so that every valid stream is
// read: gzip vocabularies (gzip.h) and PNG text chunks. Bounded: the output never exceeds
// `max_output` bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace sdgen {

// A malformed or truncated stream, or one that inflates past the limit; the message says what.
class InflateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Inflates the raw DEFLATE stream starting at data[0]; *consumed (when given) receives the
// number of input bytes the stream used (a stream ends at the end of its final block, on a
// byte boundary after it). Throws InflateError.
std::string inflate_raw(const uint8_t* data, size_t size, size_t* consumed = nullptr,
                        size_t max_output = size_t(1) << 31);
// A zlib stream: 2-byte header (deflate, no preset dictionary), DEFLATE data, Adler-32.
std::string inflate_zlib(const uint8_t* data, size_t size, size_t max_output = size_t(1) << 31);

uint32_t adler32(const void* data, size_t size, uint32_t adler = 1);

}  // namespace sdgen
