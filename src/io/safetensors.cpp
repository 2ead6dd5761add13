// safetensors container: the validating mmap-backed reader (the writer and the 16-bit float
// helpers are in safetensors_write.cpp).
#include "sdgen/io/safetensors.h"

#include "safetensors_detail.h"
#include "sdgen/util/fs.h"
#include "sdgen/util/utf8.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

namespace sdgen {

namespace {

using json = nlohmann::json;
using safetensors_detail::mul_overflows;
using safetensors_detail::shape_str;

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},           {DType::I8, "I8", 1},
    {DType::I16, "I16", 2},   {DType::U16, "U16", 2},         {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},   {DType::I64, "I64", 8},         {DType::U64, "U64", 8},
    {DType::F16, "F16", 2},   {DType::BF16, "BF16", 2},       {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},   {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeEntry* dtype_entry(DType d) {
  for (const auto& e : kDTypes) {
    if (e.dtype == d) return &e;
  }
  return nullptr;
}

// Nesting deeper than this is rejected (serde_json, used by the reference, stops at 128).
constexpr size_t kMaxJsonDepth = 128;

const char* json_kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "object";
    case json::value_t::array:
      return "array";
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer";
    case json::value_t::number_float:
      return "non-integer number";
    default:
      return "other";
  }
}

// A short rendering of a JSON value for error messages.
std::string json_brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

std::string offsets_str(uint64_t b, uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + "]";
}

// SAX handler building a DOM that rejects duplicate keys (nlohmann keeps the last one silently,
// the reference rejects them) and excessive nesting (bounded memory and recursion).
class StrictBuilder : public nlohmann::json_sax<json> {
 public:
  json root;
  std::string error;

  bool null() override { return add(json(nullptr)); }
  bool boolean(bool v) override { return add(json(v)); }
  bool number_integer(number_integer_t v) override { return add(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return add(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return add(json(v)); }
  bool string(string_t& v) override { return add(json(std::move(v))); }
  bool binary(binary_t&) override {
    error = "header contains binary data";
    return false;
  }
  bool start_object(std::size_t) override { return open(json::object()); }
  bool key(string_t& k) override {
    Level& lv = stack_.back();
    if (!lv.keys.insert(k).second) {
      if (stack_.size() == 1) {
        error = "duplicate tensor name '" + k + "' in the header";
      } else {
        error = "duplicate key '" + k + "' in header entry '" + stack_[1].name + "'";
      }
      return false;
    }
    pending_key_ = k;
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    error = std::string("header is not valid JSON: ") + ex.what();
    return false;
  }

 private:
  struct Level {
    json* value;
    std::string name;  // the key under which this container sits
    std::set<std::string> keys;
  };

  json* place(json&& v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back().value;
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    json& slot = top[pending_key_];
    slot = std::move(v);
    return &slot;
  }
  bool add(json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(json&& v) {
    if (stack_.size() >= kMaxJsonDepth) {
      error = "header JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      return false;
    }
    std::string name = (!stack_.empty() && stack_.back().value->is_object()) ? pending_key_ : "";
    json* p = place(std::move(v));
    stack_.push_back(Level{p, std::move(name), {}});
    return true;
  }

  std::vector<Level> stack_;
  std::string pending_key_;
};

// Reads a JSON value as a u64: false unless it is a non-negative integer.
bool as_u64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if (x < 0) return false;
    *out = static_cast<uint64_t>(x);
    return true;
  }
  return false;
}

}  // namespace

bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& e : kDTypes) {
    if (name == e.name) {
      if (out) *out = e.dtype;
      return true;
    }
  }
  return false;
}

const char* dtype_name(DType d) {
  const DTypeEntry* e = dtype_entry(d);
  return e ? e->name : "?";
}

size_t dtype_size(DType d) {
  const DTypeEntry* e = dtype_entry(d);
  return e ? e->size : 0;
}

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

// ------------------------------------------------------------------------------------------------
// Reader

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw SafetensorsError(path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw SafetensorsError(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw SafetensorsError(path + ": not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  static const uint8_t kEmpty[1] = {0};
  const uint8_t* data = kEmpty;
  if (size > 0) {
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw SafetensorsError(path + ": cannot mmap " + std::to_string(size) +
                             " bytes: " + std::strerror(err));
    }
    f->map_ = m;
    f->map_size_ = size;
    data = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  f->parse(data, size);  // on throw, `f` unmaps in its destructor
  return f;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_memory(const uint8_t* data, size_t size,
                                                              const std::string& label) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = label;
  static const uint8_t kEmpty[1] = {0};
  f->parse(data ? data : kEmpty, data ? size : 0);
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::parse(const uint8_t* data, size_t size) {
  auto fail = [this](const std::string& msg) { throw SafetensorsError(path_ + ": " + msg); };

  if (size < 8) {
    fail("file is " + std::to_string(size) +
         " bytes, shorter than the 8-byte header length prefix");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kSafetensorsMaxHeaderSize) {
    fail("header length " + std::to_string(n) + " exceeds the " +
         std::to_string(kSafetensorsMaxHeaderSize) + "-byte limit");
  }
  if (8 + n > size) {
    fail("header length " + std::to_string(n) + " runs past the end of the file (8 + " +
         std::to_string(n) + " = " + std::to_string(8 + n) + " > file size " +
         std::to_string(size) + ")");
  }
  const uint8_t* header = data + 8;
  const size_t hlen = static_cast<size_t>(n);
  const size_t bad = utf8::first_invalid(header, hlen);
  if (bad != hlen) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", header[bad]);
    fail("header is not valid UTF-8 (byte " + std::string(hex) + " at header offset " +
         std::to_string(bad) + ")");
  }
  // Parse first so that a non-object header is named as such; then the first byte must be '{'
  // (only trailing whitespace is allowed as padding).
  StrictBuilder builder;
  const char* hb = reinterpret_cast<const char*>(header);
  bool ok = false;
  std::string json_error;
  try {
    ok = json::sax_parse(hb, hb + hlen, &builder, json::input_format_t::json, true);
    if (!ok) json_error = builder.error.empty() ? "header is not valid JSON" : builder.error;
  } catch (const json::exception& e) {
    json_error = std::string("header is not valid JSON: ") + e.what();
  }
  const json& root = builder.root;
  if (ok && !root.is_object()) {
    fail(std::string("header is not a JSON object (got ") + json_kind(root) + ")");
  }
  if (hlen == 0) fail("header does not start with '{' (the header is empty)");
  if (header[0] != '{') {
    char first[16];
    if (header[0] >= 0x21 && header[0] < 0x7F) {
      std::snprintf(first, sizeof first, "'%c'", header[0]);
    } else {
      std::snprintf(first, sizeof first, "0x%02X", header[0]);
    }
    fail("header does not start with '{' (first byte is " + std::string(first) + ")");
  }
  if (!ok) fail(json_error);

  std::vector<TensorInfo> tensors;
  tensors.reserve(root.size());
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (entry.is_null()) continue;  // the reference reads null as "no metadata"
      if (!entry.is_object()) {
        fail(std::string("__metadata__ is not an object of string to string (got ") +
             json_kind(entry) + ")");
      }
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m->is_string()) {
          fail("__metadata__ is not an object of string to string (value of '" + m.key() + "' is " +
               json_kind(*m) + " " + json_brief(*m) + ")");
        }
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) {
      fail("header entry '" + name + "' is not an object (got " + json_kind(entry) + " " +
           json_brief(entry) + ")");
    }
    TensorInfo t;
    t.name = name;

    auto dt = entry.find("dtype");
    if (dt == entry.end()) fail(where + " lacks the \"dtype\" field");
    if (!dt->is_string()) {
      fail(where + ": \"dtype\" is not a string (got " + json_kind(*dt) + " " + json_brief(*dt) +
           ")");
    }
    if (!parse_dtype(dt->get<std::string>(), &t.dtype)) {
      fail(where + " has unknown dtype " + json_brief(*dt) +
           " (expected one of BOOL U8 I8 I16 U16 I32 U32 I64 U64 F16 BF16 F32 F64 F8_E4M3 "
           "F8_E5M2)");
    }

    auto sh = entry.find("shape");
    if (sh == entry.end()) fail(where + " lacks the \"shape\" field");
    if (!sh->is_array()) {
      fail(where + ": \"shape\" is not an array (got " + json_kind(*sh) + " " + json_brief(*sh) +
           ")");
    }
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : *sh) {
      uint64_t v = 0;
      if (!as_u64(d, &v)) {
        if (d.is_number_integer()) {
          fail(where + " has a negative shape dimension " + json_brief(d) + " in " +
               json_brief(*sh));
        }
        fail(where + " has a shape dimension that is not a non-negative integer (got " +
             json_kind(d) + " " + json_brief(d) + " in " + json_brief(*sh) + ")");
      }
      if (v > static_cast<uint64_t>(INT64_MAX)) {
        fail(where + " has shape dimension " + std::to_string(v) + " beyond the int64 range");
      }
      t.shape.push_back(static_cast<int64_t>(v));
      if (!overflow && mul_overflows(numel, v, &numel)) overflow = true;
    }

    auto off = entry.find("data_offsets");
    if (off == entry.end()) fail(where + " lacks the \"data_offsets\" field");
    if (!off->is_array() || off->size() != 2 || !as_u64((*off)[0], &t.begin) ||
        !as_u64((*off)[1], &t.end)) {
      fail(where + ": \"data_offsets\" is not an array of two non-negative integers (got " +
           json_brief(*off) + ")");
    }
    if (t.begin > t.end) {
      fail(where + " has data_offsets " + offsets_str(t.begin, t.end) + " with begin " +
           std::to_string(t.begin) + " > end " + std::to_string(t.end));
    }

    uint64_t nbytes = 0;
    if (overflow || mul_overflows(numel, dtype_size(t.dtype), &nbytes)) {
      fail(where + ": element count x dtype size overflows 64 bits (shape " + shape_str(t.shape) +
           ", dtype " + dtype_name(t.dtype) + ")");
    }
    if (nbytes != t.end - t.begin) {
      fail(where + ": size mismatch: shape " + shape_str(t.shape) + " x " + dtype_name(t.dtype) +
           " needs " + std::to_string(nbytes) + " bytes but data_offsets " +
           offsets_str(t.begin, t.end) + " span " + std::to_string(t.end - t.begin));
    }
    tensors.push_back(std::move(t));
  }

  // Lay the tensors out by offsets (ties: name, for deterministic messages); they must tile
  // [0, buffer length) exactly, as in the reference.
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  uint64_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.begin > expected) {
      if (!prev) {
        fail("gap of " + std::to_string(t.begin) +
             " bytes at the start of the byte buffer: first tensor '" + t.name + "' begins at " +
             std::to_string(t.begin) + ", expected 0");
      }
      fail("gap of " + std::to_string(t.begin - expected) + " bytes between tensor '" + prev->name +
           "' (ends at " + std::to_string(expected) + ") and tensor '" + t.name + "' (begins at " +
           std::to_string(t.begin) + ")");
    }
    if (t.begin < expected) {
      fail("tensor '" + t.name + "' at data_offsets " + offsets_str(t.begin, t.end) +
           " overlaps tensor '" + prev->name + "' at " + offsets_str(prev->begin, prev->end) +
           " (expected to begin at " + std::to_string(expected) + ")");
    }
    expected = t.end;
    prev = &t;
  }
  const uint64_t buffer_len = size - 8 - n;
  if (expected < buffer_len) {
    fail("byte buffer not fully covered: tensors end at " + std::to_string(expected) +
         " but the buffer holds " + std::to_string(buffer_len) + " bytes (" +
         std::to_string(buffer_len - expected) + " trailing bytes)");
  }
  if (expected > buffer_len) {
    fail("byte buffer truncated: tensors need " + std::to_string(expected) +
         " bytes but the buffer holds only " + std::to_string(buffer_len) + " (file size " +
         std::to_string(size) + ", header length " + std::to_string(n) + ")");
  }

  tensors_ = std::move(tensors);
  index_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
  buffer_ = data + 8 + n;
}

}  // namespace sdgen
