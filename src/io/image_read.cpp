// Init images and masks: the file read whole (bounded), its format and size checked from the
// header, PNG image data checked to inflate to no more than the header promises, then
// stb_image decodes to RGBA and A1111's rules (image_read.h) make RGB or a mask of it.
#include "sdgen/io/image_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sdgen/util/inflate.h"

// stb_image, compiled once in src/io/stb_image_impl.cpp (PNG and JPEG only).
#include <stb_image.h>

namespace sdgen {
namespace {

using namespace std::string_view_literals;

enum class Format { kPng, kJpeg };

[[noreturn]] void fail(const std::string& label, const std::string& what) {
  throw std::runtime_error(label + ": " + what);
}

const char kSupported[] = "init images and masks must be PNG or JPEG files";

std::string mib_text(uint64_t bytes) {
  return std::to_string((bytes + (size_t(1) << 20) - 1) >> 20) + " MiB";
}

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// The format from the first bytes; other common image formats are named so that the user
// knows what to convert from.
Format sniff_format(const uint8_t* data, size_t size, const std::string& label) {
  auto starts = [&](std::string_view magic, size_t offset = 0) {
    return size >= offset + magic.size() &&
           std::memcmp(data + offset, magic.data(), magic.size()) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n")) return Format::kPng;
  if (starts("\xff\xd8\xff")) return Format::kJpeg;
  std::string kind;
  if (starts("GIF8")) kind = "a GIF image";
  if (starts("RIFF") && starts("WEBP", 8)) kind = "a WebP image";
  if (starts("BM")) kind = "a BMP image";
  if (starts("II*\0"sv) || starts("MM\0*"sv)) kind = "a TIFF image";
  if (starts("ftyp", 4)) kind = "an AVIF / HEIF image or a video";
  if (starts("\x89PNG")) kind = "a PNG whose signature is damaged (a text-mode transfer?)";
  fail(label, "not a PNG or JPEG file" + (kind.empty() ? "" : " (it looks like " + kind + ")") +
                  "; " + kSupported + ": convert it to PNG first (e.g. ImageMagick's `convert " +
                  label + " image.png`)");
}

struct PngHeader {
  uint32_t width = 0, height = 0;
  int depth = 0, color = 0, interlace = 0;
};

// IHDR, which the PNG format puts first, read by hand: stb_image's own size checks would
// report a huge image as "corrupt" without saying how large it claims to be.
std::optional<PngHeader> png_header(const uint8_t* data, size_t size) {
  if (size < 8 + 8 + 13 || be32(data + 8) != 13 || std::memcmp(data + 12, "IHDR", 4) != 0) {
    return std::nullopt;
  }
  const uint8_t* p = data + 16;
  return PngHeader{be32(p), be32(p + 4), p[8], p[9], p[12]};
}

// The frame header (SOFn) of a JPEG: height and width. Segments are skipped by their lengths.
std::optional<std::pair<uint32_t, uint32_t>> jpeg_size(const uint8_t* data, size_t size) {
  size_t pos = 2;  // after SOI
  while (pos + 4 <= size) {
    const uint8_t marker = data[pos + 1];
    if (data[pos] != 0xff || marker == 0xff) {  // padding between segments (stb skips it too)
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length field
      pos += 2;
      continue;
    }
    if (marker == 0xda || marker == 0xd9) return std::nullopt;  // scan data or EOI first
    const size_t len = size_t(data[pos + 2]) << 8 | data[pos + 3];
    const bool sof =
        marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
    if (sof) {
      if (pos + 9 > size || len < 7) return std::nullopt;
      const uint32_t height = uint32_t(data[pos + 5]) << 8 | data[pos + 6];
      const uint32_t width = uint32_t(data[pos + 7]) << 8 | data[pos + 8];
      return std::make_pair(width, height);
    }
    pos += 2 + len;
  }
  return std::nullopt;
}

void check_size(uint64_t width, uint64_t height, const ImageLimits& limits,
                const std::string& label) {
  const std::string dims = std::to_string(width) + "x" + std::to_string(height);
  if (width == 0 || height == 0) {
    fail(label, "the image is " + dims + " pixels: it has no pixels (a damaged file?)");
  }
  if (width > uint64_t(limits.max_side) || height > uint64_t(limits.max_side) ||
      width * height > uint64_t(limits.max_pixels)) {
    fail(label, "the image is " + dims + " pixels; images may have at most " +
                    std::to_string(limits.max_side) + " pixels per side and " +
                    std::to_string(limits.max_pixels) + " pixels in all: scale it down first");
  }
}

// Bytes of filtered scanlines (a filter byte per row) for a `width` x `height` image.
uint64_t png_scanline_bytes(uint64_t width, uint64_t height, int bits_per_pixel) {
  if (width == 0 || height == 0) return 0;
  return height * (1 + (width * uint64_t(bits_per_pixel) + 7) / 8);
}

// A PNG's IDAT stream must inflate to its scanlines and no more: stb_image grows its output
// buffer for whatever the stream holds (up to 4 GiB from a few MiB of input), so a hostile file
// is rejected here with the project's bounded inflater before stb sees it.
void check_png_data(const uint8_t* data, size_t size, const PngHeader& h,
                    const std::string& label) {
  // samples per pixel of colour types 0 (gray), 2 (RGB), 3 (palette index), 4 (gray + alpha),
  // 6 (RGBA); stb_image rejects the other types with its reason
  static const int kSamples[7] = {1, 0, 3, 1, 2, 0, 4};
  if (h.color < 0 || h.color > 6 || kSamples[h.color] == 0) return;
  const int bpp = kSamples[h.color] * h.depth;
  uint64_t expected = 0;
  if (h.interlace == 1) {  // Adam7: seven reduced images
    static const int kPass[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                    {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
    for (const auto& p : kPass) {
      const uint64_t w = (h.width + uint64_t(p[2] - p[0] - 1)) / uint64_t(p[2]);
      const uint64_t ht = (h.height + uint64_t(p[3] - p[1] - 1)) / uint64_t(p[3]);
      expected += png_scanline_bytes(w, ht, bpp);
    }
  } else {
    expected = png_scanline_bytes(h.width, h.height, bpp);
  }
  std::vector<uint8_t> idat;
  size_t pos = 8;
  bool iend = false;
  while (!iend && pos + 8 <= size) {
    const uint32_t len = be32(data + pos);
    const uint8_t* type = data + pos + 4;
    if (std::memcmp(type, "CgBI", 4) == 0) {
      fail(label,
           "an Apple-optimised PNG (CgBI chunk), which only Apple's software reads; "
           "re-save it as a standard PNG");
    }
    iend = std::memcmp(type, "IEND", 4) == 0;  // its CRC may be cut off: stb_image reads on
    if (!iend && (size - pos < 12 || len > size - pos - 12)) {
      fail(label, "truncated PNG: the file ends inside its '" +
                      std::string(reinterpret_cast<const char*>(type), 4) +
                      "' chunk; re-export the image");
    }
    if (std::memcmp(type, "IDAT", 4) == 0) idat.insert(idat.end(), type + 4, type + 4 + len);
    pos += 12 + size_t(len);
  }
  if (!iend) {
    fail(label, "truncated PNG: the file ends before its IEND chunk; re-export the image");
  }
  if (idat.size() < 2) return;  // no image data: stb_image names the problem
  try {
    // past the zlib header (stb_image checks it); a margin over the exact size, which stb
    // requires of a non-interlaced image anyway
    inflate_raw(idat.data() + 2, idat.size() - 2, nullptr, expected + (size_t(1) << 20));
  } catch (const InflateError& e) {
    fail(label, std::string("corrupt PNG image data (") + e.what() + "); re-export the image");
  }
}

// The Huffman tables of a JPEG, checked for what stb_image 2.27 (Debian's libstb-dev) takes on
// trust, both found by fuzz/fuzz_image.cpp: a table (DHT) declaring more than the 256 codes a
// JPEG can have makes it write past its 257-entry arrays, and a scan (SOS) using a table no DHT
// defined makes it decode with uninitialised memory. The walk covers every segment, also those
// between the scans of a progressive JPEG, and reads each table as stb does (past the segment's
// end when its length says so).
void check_jpeg_tables(const uint8_t* data, size_t size, const std::string& label) {
  auto byte = [&](size_t i) { return i < size ? data[i] : uint8_t(0); };  // stb reads 0 past
  auto undefined = [&](const char* kind, int id) {
    fail(label, std::string("corrupt JPEG: a scan uses Huffman table ") + kind + " " +
                    std::to_string(id) + ", which the file does not define; re-export the image");
  };
  bool defined[2][4] = {};  // [DC, AC][table id]
  bool progressive = false, seen_frame = false;
  size_t pos = 2;
  while (pos + 4 <= size) {
    const uint8_t marker = data[pos + 1];
    if (data[pos] != 0xff || marker == 0xff) {  // entropy-coded data, fill bytes
      ++pos;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      pos += 2;  // a stuffed 0xff, TEM, RSTn, SOI: no length field
      continue;
    }
    if (marker == 0xd9) return;  // EOI
    const int len = data[pos + 2] << 8 | data[pos + 3];
    if (marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc &&
        !seen_frame) {  // the first SOFn: stb_image decodes that frame
      seen_frame = true;
      progressive = (marker & 3) == 2;  // SOF2, SOF6, SOF10, SOF14
    }
    if (marker == 0xda) {  // SOS: components (id, DC table << 4 | AC table), Ss, Se, Ah << 4 | Al
      const int n = byte(pos + 4);
      const size_t tail = pos + 5 + 2 * size_t(n);
      const bool dc_scan = byte(tail) == 0, first_pass = (byte(tail + 2) >> 4) == 0;
      // baseline scans use both tables; progressive DC scans the DC one (first pass only),
      // progressive AC scans the AC one
      const bool uses_dc = !progressive || (dc_scan && first_pass);
      const bool uses_ac = !progressive || !dc_scan;
      for (int c = 0; c < n; ++c) {
        const int tables = byte(pos + 6 + 2 * size_t(c));
        if (tables >> 4 < 4 && uses_dc && !defined[0][tables >> 4]) undefined("DC", tables >> 4);
        if ((tables & 15) < 4 && uses_ac && !defined[1][tables & 15]) undefined("AC", tables & 15);
      }
    }
    if (marker != 0xc4) {
      pos += 2 + size_t(len);
      continue;
    }
    int left = len - 2;
    size_t p = pos + 4;
    while (left > 0) {
      int codes = 0;
      for (int i = 1; i <= 16; ++i) codes += byte(p + size_t(i));
      if (codes > 256) {
        fail(label, "corrupt JPEG: a Huffman table declares " + std::to_string(codes) +
                        " codes, more than the 256 a JPEG can have; re-export the image");
      }
      const int kind = byte(p) >> 4, id = byte(p) & 15;
      if (kind <= 1 && id <= 3) defined[kind][id] = true;
      left -= 17 + codes;
      p += 17 + size_t(codes);
    }
    if (left != 0) return;  // stb_image rejects the segment
    pos = p;
  }
}

// stb_image's reason for its last failure, when it says something: its info call tries every
// format and ends on "unknown image type", which would mislead about a damaged PNG or JPEG.
std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  if (!reason || !*reason || std::strcmp(reason, "unknown image type") == 0) return "";
  return std::string(" (stb_image: ") + reason + ")";
}

struct StbFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

// A decoded file: 8-bit RGBA (alpha 255 where the file has none), as stb_image returns it.
struct Rgba {
  int width = 0, height = 0;
  std::unique_ptr<stbi_uc, StbFree> pixels;
  size_t count() const { return size_t(width) * size_t(height); }
};

Rgba decode_rgba(const uint8_t* data, size_t size, const std::string& label,
                 const ImageLimits& limits) {
  if (size == 0) fail(label, "the file is empty; " + std::string(kSupported));
  if (size > kMaxImageFileBytes) {
    fail(label, "the file is " + mib_text(size) + "; image files may have at most " +
                    mib_text(kMaxImageFileBytes) + ": re-encode or scale it down");
  }
  const Format format = sniff_format(data, size, label);
  const char* name = format == Format::kPng ? "PNG" : "JPEG";
  std::optional<PngHeader> ihdr;
  if (format == Format::kPng) {
    ihdr = png_header(data, size);
    if (!ihdr) fail(label, "corrupt PNG: it does not start with an IHDR chunk");
    check_size(ihdr->width, ihdr->height, limits, label);
  } else {
    if (const auto wh = jpeg_size(data, size)) check_size(wh->first, wh->second, limits, label);
    check_jpeg_tables(data, size, label);  // before stb_image's header scan reads the tables
  }
  Rgba out;
  int channels = 0;
  if (!stbi_info_from_memory(data, int(size), &out.width, &out.height, &channels)) {
    fail(label,
         std::string("corrupt, truncated or unsupported ") + name + " header" + stb_reason());
  }
  check_size(uint64_t(out.width), uint64_t(out.height), limits, label);
  if (ihdr) check_png_data(data, size, *ihdr, label);

  out.pixels.reset(stbi_load_from_memory(data, int(size), &out.width, &out.height, &channels, 4));
  if (!out.pixels) {
    fail(label, std::string("corrupt, truncated or unsupported ") + name + " data" + stb_reason() +
                    "; re-export the image");
  }
  check_size(uint64_t(out.width), uint64_t(out.height), limits, label);
  return out;
}

// Pillow's paste of an RGBA image over opaque white with itself as the mask (A1111's flatten):
// BLEND(a, 255, c) = DIV255(255 * (255 - a) + c * a) with
// DIV255(x) = (((x + 128) >> 8) + x + 128) >> 8, the exact rounding of x / 255. Pillow's
// alpha_composite onto white gives the same bytes (scripts/make-image-fixtures.py checks every
// pair).
uint8_t over_white(uint8_t c, uint8_t a) {
  const uint32_t t = uint32_t(c) * a + 255u * (255u - a) + 128u;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

// Pillow's convert("L") (libImaging/Convert.c L24): ITU-R 601 luma in 16-bit fixed point,
// rounded.
uint8_t luma(const uint8_t* rgb) {
  return static_cast<uint8_t>((rgb[0] * 19595u + rgb[1] * 38470u + rgb[2] * 7471u + 0x8000u) >> 16);
}

// The whole file, refusing directories and anything over kMaxImageFileBytes before reading.
std::vector<uint8_t> read_capped(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(path, std::string("cannot open the image: ") + std::strerror(err) +
                   (err == ENOENT ? " (check the path)" : ""));
  }
  std::vector<uint8_t> out;
  try {
    struct stat st;
    const bool have_stat = ::fstat(fd, &st) == 0;
    if (have_stat && S_ISDIR(st.st_mode)) {
      fail(path, "a folder, not an image file; " + std::string(kSupported));
    }
    if (have_stat && S_ISREG(st.st_mode)) {
      if (uint64_t(st.st_size) > kMaxImageFileBytes) {
        fail(path, "the file is " + mib_text(uint64_t(st.st_size)) +
                       "; image files may have at most " + mib_text(kMaxImageFileBytes) +
                       ": re-encode or scale it down");
      }
      out.reserve(size_t(st.st_size) + 1);
    }
    uint8_t buf[1 << 16];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(path, std::string("cannot read the image: ") + std::strerror(errno));
      if (n == 0) break;
      if (out.size() + size_t(n) > kMaxImageFileBytes) {  // a pipe or a growing file
        fail(path, "more than " + mib_text(kMaxImageFileBytes) +
                       " of data; image files may have at most that: re-encode it");
      }
      out.insert(out.end(), buf, buf + n);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return out;
}

}  // namespace

Image8 decode_image_rgb(const uint8_t* data, size_t size, const std::string& label,
                        const ImageLimits& limits) {
  const Rgba rgba = decode_rgba(data, size, label, limits);
  Image8 out;
  out.width = rgba.width;
  out.height = rgba.height;
  out.channels = 3;
  out.pixels.resize(rgba.count() * 3);
  for (size_t i = 0; i < rgba.count(); ++i) {
    const uint8_t* p = rgba.pixels.get() + i * 4;
    for (size_t c = 0; c < 3; ++c) out.pixels[i * 3 + c] = over_white(p[c], p[3]);
  }
  return out;
}

Image8 decode_mask(const uint8_t* data, size_t size, const std::string& label,
                   const ImageLimits& limits) {
  const Rgba rgba = decode_rgba(data, size, label, limits);
  Image8 out;
  out.width = rgba.width;
  out.height = rgba.height;
  out.channels = 1;
  out.pixels.resize(rgba.count());
  const uint8_t* px = rgba.pixels.get();
  bool alpha_used = false;
  for (size_t i = 0; i < rgba.count() && !alpha_used; ++i) alpha_used = px[i * 4 + 3] != 255;
  for (size_t i = 0; i < rgba.count(); ++i) {
    const uint8_t* p = px + i * 4;
    out.pixels[i] = alpha_used ? (p[3] > 128 ? 255 : 0) : luma(p);
  }
  return out;
}

Image8 read_image_rgb(const std::string& path, const ImageLimits& limits) {
  const std::vector<uint8_t> bytes = read_capped(path);
  return decode_image_rgb(bytes.data(), bytes.size(), path, limits);
}

Image8 read_mask(const std::string& path, const ImageLimits& limits) {
  const std::vector<uint8_t> bytes = read_capped(path);
  return decode_mask(bytes.data(), bytes.size(), path, limits);
}

}  // namespace sdgen
