// Pillow 9.4's resampling (libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc,
// ImagingResampleHorizontal_8bpc / Vertical_8bpc, ImagingResampleInner), re-derived operation
// for operation: every floating-point step is done in double in Pillow's order, so the integer
// weights, and with them the pixels, are Pillow's bit for bit.
#include "sdgen/io/resample.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdgen {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;      // Pillow's PRECISION_BITS
constexpr double kPi = 3.14159265358979323846;  // M_PI

double box_filter(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * kPi;
  // Pillow writes the window's constants as floats (0.54f, 0.46f): their float values count
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * kPi;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct FilterDef {
  double (*fn)(double);
  double support;
};

FilterDef filter_def(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::kBox:
      return {box_filter, 0.5};
    case ResampleFilter::kBilinear:
      return {bilinear_filter, 1.0};
    case ResampleFilter::kHamming:
      return {hamming_filter, 1.0};
    case ResampleFilter::kBicubic:
      return {bicubic_filter, 2.0};
    case ResampleFilter::kLanczos:
      return {lanczos_filter, 3.0};
  }
  throw std::invalid_argument("resize: unknown filter");
}

// For each output pixel along one axis: the first input pixel it reads, how many, and their
// fixed-point weights (ksize slots per output pixel).
struct Taps {
  int ksize = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;
};

Taps precompute_taps(int in_size, int out_size, const FilterDef& filter) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter.support * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(size_t(out_size));
  t.count.resize(size_t(out_size));
  t.weights.assign(size_t(out_size) * size_t(t.ksize), 0);
  std::vector<double> k(size_t(t.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // (int) truncates toward zero, as Pillow's casts do
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = filter.fn((x + xmin - center + 0.5) * ss);
      k[size_t(x)] = w;
      ww += w;
    }
    int32_t* out = &t.weights[size_t(xx) * size_t(t.ksize)];
    for (int x = 0; x < xmax; ++x) {
      double w = k[size_t(x)];
      if (ww != 0.0) w /= ww;  // divided, not multiplied by 1 / ww: Pillow's rounding
      out[x] = w < 0 ? static_cast<int32_t>(-0.5 + w * (1 << kPrecisionBits))
                     : static_cast<int32_t>(0.5 + w * (1 << kPrecisionBits));
    }
    t.first[size_t(xx)] = xmin;
    t.count[size_t(xx)] = xmax;
  }
  return t;
}

// Pillow's clip8 on an accumulator that started at 2^21 (the rounding half): the arithmetic
// shift floors, and the result saturates at 0 and 255.
inline uint8_t clip8(int64_t acc) {
  const int64_t v = acc >> kPrecisionBits;  // int64: no overflow for any tap count
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Rows [row0, row0 + out.height) of `in` filtered along x into `out`.
void resample_horizontal(const Image8& in, int row0, const Taps& t, Image8& out) {
  const int c = in.channels;
  const size_t in_stride = size_t(in.width) * size_t(c);
  const size_t out_stride = size_t(out.width) * size_t(c);
  for (int yy = 0; yy < out.height; ++yy) {
    const uint8_t* src = &in.pixels[size_t(yy + row0) * in_stride];
    uint8_t* dst = &out.pixels[size_t(yy) * out_stride];
    for (int xx = 0; xx < out.width; ++xx) {
      const int32_t* k = &t.weights[size_t(xx) * size_t(t.ksize)];
      const uint8_t* p = src + size_t(t.first[size_t(xx)]) * size_t(c);
      const int n = t.count[size_t(xx)];
      for (int ch = 0; ch < c; ++ch) {
        int64_t acc = int64_t(1) << (kPrecisionBits - 1);
        for (int x = 0; x < n; ++x) acc += int64_t(p[size_t(x) * size_t(c) + size_t(ch)]) * k[x];
        dst[size_t(xx) * size_t(c) + size_t(ch)] = clip8(acc);
      }
    }
  }
}

// `in` filtered along y into `out`; the taps' first rows are relative to `in`'s row 0.
void resample_vertical(const Image8& in, const Taps& t, int row_shift, Image8& out) {
  const size_t stride = size_t(in.width) * size_t(in.channels);
  for (int yy = 0; yy < out.height; ++yy) {
    const int32_t* k = &t.weights[size_t(yy) * size_t(t.ksize)];
    const uint8_t* src = &in.pixels[size_t(t.first[size_t(yy)] - row_shift) * stride];
    const int n = t.count[size_t(yy)];
    uint8_t* dst = &out.pixels[size_t(yy) * stride];
    for (size_t i = 0; i < stride; ++i) {
      int64_t acc = int64_t(1) << (kPrecisionBits - 1);
      for (int y = 0; y < n; ++y) acc += int64_t(src[size_t(y) * stride + i]) * k[y];
      dst[i] = clip8(acc);
    }
  }
}

Image8 blank(int width, int height, int channels) {
  Image8 im;
  im.width = width;
  im.height = height;
  im.channels = channels;
  im.pixels.resize(size_t(width) * size_t(height) * size_t(channels));
  return im;
}

}  // namespace

Image8 resize(const Image8& in, int out_width, int out_height, ResampleFilter filter) {
  if (out_width <= 0 || out_height <= 0) {
    throw std::invalid_argument("resize: the output size " + std::to_string(out_width) + "x" +
                                std::to_string(out_height) + " is not positive");
  }
  if (in.width <= 0 || in.height <= 0 || in.channels <= 0 ||
      in.pixels.size() != size_t(in.width) * size_t(in.height) * size_t(in.channels)) {
    throw std::invalid_argument("resize: the input's pixel buffer (" +
                                std::to_string(in.pixels.size()) + " bytes) does not match " +
                                std::to_string(in.width) + "x" + std::to_string(in.height) + "x" +
                                std::to_string(in.channels));
  }
  if (out_width == in.width && out_height == in.height) return in;
  const FilterDef def = filter_def(filter);
  const bool need_horizontal = out_width != in.width;
  const bool need_vertical = out_height != in.height;

  // Pillow computes the vertical taps first to know which rows the horizontal pass must fill
  // (the rows no output row reads are skipped); the identity taps of an unchanged height cover
  // every row.
  const Taps vert = precompute_taps(in.height, out_height, def);
  const int row_first = vert.first.front();
  const int row_last = vert.first.back() + vert.count.back();

  Image8 horizontal;
  const Image8* src = &in;
  int row_shift = 0;
  if (need_horizontal) {
    const Taps horiz = precompute_taps(in.width, out_width, def);
    horizontal = blank(out_width, row_last - row_first, in.channels);
    resample_horizontal(in, row_first, horiz, horizontal);
    if (!need_vertical) return horizontal;
    src = &horizontal;
    row_shift = row_first;
  }
  Image8 out = blank(src->width, out_height, in.channels);
  resample_vertical(*src, vert, row_shift, out);
  return out;
}

}  // namespace sdgen
