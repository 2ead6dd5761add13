// safetensors container: the writer (validated, atomic) and the 16-bit float conversions.
#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "safetensors_detail.h"
#include "sdgen/io/safetensors.h"
#include "sdgen/util/fs.h"
#include "sdgen/util/utf8.h"

namespace sdgen {

using safetensors_detail::mul_overflows;
using safetensors_detail::shape_str;

// ------------------------------------------------------------------------------------------------
// Writer

void write_safetensors(const std::string& path, const std::vector<TensorBlob>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorBlob*> order;
  std::set<std::string> names;
  for (const TensorBlob& t : tensors) {
    if (t.name == "__metadata__") {
      throw std::invalid_argument(
          "write_safetensors: '__metadata__' is reserved, not a tensor name");
    }
    if (!names.insert(t.name).second) {
      throw std::invalid_argument("write_safetensors: duplicate tensor name '" + t.name + "'");
    }
    if (!utf8::is_valid(t.name)) {
      throw std::invalid_argument("write_safetensors: tensor name '" + t.name +
                                  "' is not valid UTF-8");
    }
    if (dtype_size(t.dtype) == 0) {
      throw std::invalid_argument("write_safetensors: tensor '" + t.name + "' has no valid dtype");
    }
    uint64_t numel = 1;
    bool overflow = false;
    for (int64_t d : t.shape) {
      if (d < 0) {
        throw std::invalid_argument("write_safetensors: tensor '" + t.name +
                                    "' has negative dimension in shape " + shape_str(t.shape));
      }
      if (!overflow && mul_overflows(numel, static_cast<uint64_t>(d), &numel)) overflow = true;
    }
    uint64_t expect = 0;
    if (overflow || mul_overflows(numel, dtype_size(t.dtype), &expect) || expect != t.nbytes) {
      throw std::invalid_argument(
          "write_safetensors: tensor '" + t.name + "' has " + std::to_string(t.nbytes) +
          " bytes but shape " + shape_str(t.shape) + " x " + dtype_name(t.dtype) + " needs " +
          (overflow ? std::string("more than 2^64") : std::to_string(expect)));
    }
    if (t.nbytes > 0 && t.data == nullptr) {
      throw std::invalid_argument("write_safetensors: tensor '" + t.name + "' has no data");
    }
    order.push_back(&t);
  }
  for (const auto& kv : metadata) {
    if (!utf8::is_valid(kv.first) || !utf8::is_valid(kv.second)) {
      throw std::invalid_argument("write_safetensors: metadata entry '" + kv.first +
                                  "' is not valid UTF-8");
    }
  }
  std::sort(order.begin(), order.end(), [](const TensorBlob* a, const TensorBlob* b) {
    size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    if (sa != sb) return sa > sb;
    return a->name < b->name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) m[kv.first] = kv.second;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (const TensorBlob* t : order) {
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = dtype_name(t->dtype);
    e["shape"] = t->shape;
    e["data_offsets"] = {offset, offset + t->nbytes};
    offset += t->nbytes;
    header[t->name] = std::move(e);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kSafetensorsMaxHeaderSize) {
    throw std::invalid_argument("write_safetensors: header of " + std::to_string(text.size()) +
                                " bytes exceeds the " + std::to_string(kSafetensorsMaxHeaderSize) +
                                "-byte limit");
  }
  uint8_t prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(uint64_t(text.size()) >> (8 * i));

  std::vector<std::pair<const void*, size_t>> pieces = {{prefix, sizeof prefix},
                                                        {text.data(), text.size()}};
  for (const TensorBlob* t : order) pieces.emplace_back(t->data, t->nbytes);
  write_file_atomic(path, pieces, /*overwrite=*/true);
}

// ------------------------------------------------------------------------------------------------
// 16-bit floats

namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000 | (mant << 13));  // inf / nan
  if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);  // +-0
  // Subnormal: mant * 2^-24; normalise.
  uint32_t e = 113;  // biased float exponent of 2^-14
  while (!(mant & 0x400)) {
    mant <<= 1;
    --e;
  }
  return bits_float(sign | (e << 23) | ((mant & 0x3FF) << 13));
}

float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_half(float f) {
  const uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7FFFFFFF;
  if (ax > 0x7F800000) {  // NaN: keep it quiet, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7E00 | ((ax >> 13) & 0x3FF));
  }
  if (ax >= 0x477FF000) return sign | 0x7C00;  // >= 65520 (or inf) rounds to inf
  if (ax >= 0x38800000) {                      // normal half (>= 2^-14)
    const uint32_t e = ax >> 23;
    const uint32_t m = ax & 0x7FFFFF;
    uint32_t q = ((e - 112) << 10) | (m >> 13);
    const uint32_t rem = m & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) ++q;  // carries into the exponent as needed
    return static_cast<uint16_t>(sign | q);
  }
  if (ax <= 0x33000000) return sign;  // <= 2^-25 (the tie rounds to even 0)
  // Half subnormal: value / 2^-24 = m * 2^(e - 126).
  const uint32_t e = ax >> 23;
  const uint32_t m = (ax & 0x7FFFFF) | 0x800000;
  const uint32_t shift = 126 - e;  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) ++q;
  return static_cast<uint16_t>(sign | q);
}

uint16_t float_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((x >> 16) | 0x0040);  // NaN
  const uint32_t rounded = x + 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>(rounded >> 16);
}

}  // namespace sdgen
