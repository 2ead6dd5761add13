// gzip (RFC 1952) decompression without zlib: header parsing and CRC-32 / ISIZE checks here,
// the deflate stream through stb_image's inflater.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sdgen {

// Decompresses a single-member gzip file. Throws std::runtime_error naming `path` when the
// file cannot be read or is not valid gzip (bad magic, truncated, corrupt data, CRC-32 or
// length mismatch).
std::string gunzip_file(const std::string& path);

// Decompresses single-member gzip data held in memory; `label` (e.g. a file name) is used in
// the error messages.
std::string gunzip(const std::string& data, const std::string& label);

// CRC-32 (IEEE 802.3, as gzip and PNG use it). Pass the previous value to continue a CRC.
uint32_t gzip_crc32(const void* data, size_t size, uint32_t crc = 0);

}  // namespace sdgen
