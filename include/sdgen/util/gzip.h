// gzip (RFC 1952) decompression without zlib: every member of the file (header fields, DEFLATE
// data through util/inflate.h, CRC-32 and ISIZE trailer checks), concatenated.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sdgen {

// Decompresses a gzip file (all its members; zero padding after the last is ignored, as gzip
// does). Throws std::runtime_error naming `path` when the file cannot be read or is not valid
// gzip (bad magic, truncated, corrupt data, CRC-32 or length mismatch).
std::string gunzip_file(const std::string& path);

// The same for gzip data held in memory; `label` (e.g. a file name) is used in the error
// messages. At most 1 GiB is inflated (more is an error).
std::string gunzip(const std::string& data, const std::string& label);

// CRC-32 (IEEE 802.3, as gzip and PNG use it). Pass the previous value to continue a CRC.
uint32_t gzip_crc32(const void* data, size_t size, uint32_t crc = 0);

}  // namespace sdgen
