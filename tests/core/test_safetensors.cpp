// Tests of the safetensors reader and writer (the 16-bit float helpers: test_half.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "sdgen/io/safetensors.h"

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

namespace sdgen {
namespace {

// A fresh temporary folder per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/sdgen-st-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    ASSERT_NE(::mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  // Writes `bytes` as file `name`; returns its path.
  std::string write_bytes(const std::string& name, const std::string& bytes) const {
    std::string p = path(name);
    std::ofstream f(p, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

  // A file with the given header length field, header text and buffer.
  static std::string image(uint64_t n, const std::string& header, const std::string& buffer) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
    return s + header + buffer;
  }
  static std::string image(const std::string& header, const std::string& buffer) {
    return image(header.size(), header, buffer);
  }

  // Opens the file; returns the SafetensorsError message ("" plus a test failure otherwise).
  static std::string open_error(const std::string& p) {
    try {
      SafetensorsFile::open(p);
    } catch (const SafetensorsError& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "unexpected exception type: " << e.what();
      return "";
    }
    ADD_FAILURE() << p << " opened without error";
    return "";
  }

  // Writes a malformed file `name` and checks the error names it and the rule.
  void expect_rejected(const std::string& name, const std::string& bytes,
                       const std::vector<std::string>& phrases) {
    SCOPED_TRACE(name);
    std::string msg = open_error(write_bytes(name, bytes));
    EXPECT_THAT(msg, HasSubstr(name));
    for (const auto& ph : phrases) EXPECT_THAT(msg, HasSubstr(ph));
    // The in-memory path reports the same rule under the label.
    try {
      SafetensorsFile::from_memory(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                   "mem:" + name);
      ADD_FAILURE() << "from_memory accepted " << name;
    } catch (const SafetensorsError& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr("mem:" + name));
      for (const auto& ph : phrases) EXPECT_THAT(std::string(e.what()), HasSubstr(ph));
    }
  }

  std::string dir_;
};

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TEST_F(SafetensorsTest, DTypeHelpers) {
  DType d;
  ASSERT_TRUE(parse_dtype("BF16", &d));
  EXPECT_EQ(d, DType::BF16);
  ASSERT_TRUE(parse_dtype("F8_E4M3", &d));
  EXPECT_EQ(d, DType::F8_E4M3);
  EXPECT_FALSE(parse_dtype("f32", &d));
  EXPECT_FALSE(parse_dtype("F128", &d));
  EXPECT_STREQ(dtype_name(DType::I64), "I64");
  EXPECT_STREQ(dtype_name(DType::F8_E5M2), "F8_E5M2");
  EXPECT_EQ(dtype_size(DType::BOOL), 1u);
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::U32), 4u);
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  for (const char* n : {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "BF16",
                        "F32", "F64", "F8_E4M3", "F8_E5M2"}) {
    ASSERT_TRUE(parse_dtype(n, &d)) << n;
    EXPECT_STREQ(dtype_name(d), n);
  }
  TensorInfo t;
  EXPECT_EQ(t.numel(), 1u);  // 0-d
  t.shape = {2, 3, 4};
  EXPECT_EQ(t.numel(), 24u);
  t.shape = {5, 0};
  EXPECT_EQ(t.numel(), 0u);
}

TEST_F(SafetensorsTest, RoundTrip) {
  std::vector<float> w = {0, 1, 2, 3, 4, 5};
  std::vector<uint16_t> h = {0x3C00, 0xC000, 0x7BFF};
  std::vector<int64_t> ids = {49406, -7};
  std::vector<uint8_t> img = {1, 2, 3, 4, 5};
  std::vector<float> scalar = {3.5f};
  std::vector<TensorBlob> blobs = {
      {"w", DType::F32, {2, 3}, w.data(), w.size() * 4},
      {"h", DType::F16, {3}, h.data(), h.size() * 2},
      {"ids", DType::I64, {2}, ids.data(), ids.size() * 8},
      {"img", DType::U8, {5}, img.data(), img.size()},
      {"scalar", DType::F32, {}, scalar.data(), 4},
      {"empty", DType::F32, {0, 4}, nullptr, 0},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "h\xC3\xA9llo \"q\""}};
  const std::string p = path("rt.safetensors");
  write_safetensors(p, blobs, meta);

  // No temporary file left behind.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "rt.safetensors");
  }
  EXPECT_EQ(entries, 1);

  // The header length is a multiple of 8 and the header is space padded JSON.
  {
    std::ifstream f(p, std::ios::binary);
    uint8_t len[8];
    f.read(reinterpret_cast<char*>(len), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
    EXPECT_EQ(n % 8, 0u);
    std::string header(n, '\0');
    f.read(&header[0], static_cast<std::streamsize>(n));
    EXPECT_EQ(header.rfind("{\"__metadata__\":{", 0), 0u) << header;
    EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));
    EXPECT_EQ(fs::file_size(p), 8 + n + 16 + 0 + 4 + 24 + 6 + 5);
  }

  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->path(), p);
  EXPECT_EQ(f->metadata(), meta);
  ASSERT_EQ(f->tensors().size(), blobs.size());

  // Layout: descending element size, then name.
  struct Expect {
    const char* name;
    uint64_t begin, end;
  };
  const Expect layout[] = {{"ids", 0, 16}, {"empty", 16, 16}, {"scalar", 16, 20},
                           {"w", 20, 44},  {"h", 44, 50},     {"img", 50, 55}};
  for (size_t i = 0; i < blobs.size(); ++i) {
    EXPECT_EQ(f->tensors()[i].name, layout[i].name);
    EXPECT_EQ(f->tensors()[i].begin, layout[i].begin) << layout[i].name;
    EXPECT_EQ(f->tensors()[i].end, layout[i].end) << layout[i].name;
  }

  for (const TensorBlob& b : blobs) {
    SCOPED_TRACE(b.name);
    const TensorInfo* t = f->find(b.name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->name, b.name);
    EXPECT_EQ(t->dtype, b.dtype);
    EXPECT_EQ(t->shape, b.shape);
    EXPECT_EQ(t->nbytes(), b.nbytes);
    EXPECT_EQ(t->numel() * dtype_size(t->dtype), b.nbytes);
    if (b.nbytes) {
      EXPECT_EQ(std::memcmp(f->data(*t), b.data, b.nbytes), 0);
    }
    EXPECT_EQ(t->begin % dtype_size(t->dtype), 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data(*t)) % dtype_size(t->dtype), 0u);
  }
  EXPECT_EQ(f->find("scalar")->numel(), 1u);
  EXPECT_EQ(f->find("empty")->numel(), 0u);
  float s;
  std::memcpy(&s, f->data(*f->find("scalar")), 4);
  EXPECT_EQ(s, 3.5f);
  int64_t id1;
  std::memcpy(&id1, f->data(*f->find("ids")) + 8, 8);
  EXPECT_EQ(id1, -7);
  EXPECT_EQ(f->find("nope"), nullptr);

  // Overwriting an existing file goes through the rename.
  write_safetensors(p, {blobs[3]});
  auto g = SafetensorsFile::open(p);
  ASSERT_EQ(g->tensors().size(), 1u);
  EXPECT_EQ(g->tensors()[0].name, "img");
  EXPECT_TRUE(g->metadata().empty());
}

TEST_F(SafetensorsTest, EmptyFileAndNoTensors) {
  const std::string p = path("none.safetensors");
  write_safetensors(p, {});
  EXPECT_EQ(fs::file_size(p), 16u);  // "{}" + 6 spaces
  auto f = SafetensorsFile::open(p);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_TRUE(f->metadata().empty());

  // Hand-written variants the reference accepts: null metadata, whitespace padding.
  auto g = SafetensorsFile::open(
      write_bytes("nullmeta.safetensors", image("{\"__metadata__\":null}\n \t ", "")));
  EXPECT_TRUE(g->tensors().empty());
  // Duplicate offsets for zero-size tensors and extra fields are fine.
  auto z = SafetensorsFile::open(write_bytes(
      "zeros.safetensors",
      image("{\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"extra\":1},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[0,0]},"
            "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
            "xy")));
  ASSERT_EQ(z->tensors().size(), 3u);
  EXPECT_EQ(z->tensors()[0].name, "a");
  EXPECT_EQ(z->tensors()[1].name, "b");
  EXPECT_EQ(z->tensors()[2].name, "c");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(z->data(*z->find("c"))), 2), "xy");
}

TEST_F(SafetensorsTest, WriterRejectsBadInput) {
  std::vector<float> w = {1, 2, 3};
  const std::string p = path("bad.safetensors");
  try {
    write_safetensors(p, {{"ok", DType::U8, {1}, w.data(), 1},
                          {"short.weight", DType::F32, {2, 2}, w.data(), 12}});
    ADD_FAILURE() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(std::string(e.what()),
                AllOf(HasSubstr("short.weight"), HasSubstr("12 bytes"), HasSubstr("needs 16")));
  }
  EXPECT_THROW(write_safetensors(
                   p, {{"a", DType::U8, {1}, w.data(), 1}, {"a", DType::U8, {1}, w.data(), 1}}),
               std::invalid_argument);
  EXPECT_THROW(write_safetensors(p, {{"__metadata__", DType::U8, {1}, w.data(), 1}}),
               std::invalid_argument);
  EXPECT_THROW(write_safetensors(p, {{"neg", DType::U8, {-1}, w.data(), 1}}),
               std::invalid_argument);
  EXPECT_THROW(write_safetensors(p, {}, {{"k", "\xFF"}}), std::invalid_argument);
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(fs::is_empty(dir_));
  // An unwritable destination: an error naming the path, no temporary left.
  EXPECT_THAT([&] { write_safetensors(path("missing-dir/x.safetensors"), {}); },
              ThrowsMessage<std::runtime_error>(HasSubstr("missing-dir/x.safetensors")));
  EXPECT_TRUE(fs::is_empty(dir_));
}

// --- malformed files: one per rule ---

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  uint64_t b, uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(e) + "]}";
}

TEST_F(SafetensorsTest, MalformedShortFile) {
  expect_rejected("short.safetensors", std::string("\x08\0\0\0\0", 5),
                  {"5 bytes", "shorter than the 8-byte"});
  // A zero-byte file (not mmap-able) is reported the same way.
  std::string p = write_bytes("empty.safetensors", "");
  EXPECT_THAT(open_error(p),
              AllOf(HasSubstr("empty.safetensors"), HasSubstr("0 bytes, shorter than the 8-byte")));
}

TEST_F(SafetensorsTest, MalformedHeaderTooLarge) {
  expect_rejected("huge.safetensors", image(123456789012ull, "{}", ""),
                  {"header length 123456789012 exceeds the 100000000-byte limit"});
  expect_rejected("max.safetensors", image(~0ull, "{}", ""),
                  {"header length 18446744073709551615 exceeds"});
}

TEST_F(SafetensorsTest, MalformedHeaderPastEnd) {
  expect_rejected("pastend.safetensors", image(100, "{}      ", ""),
                  {"header length 100", "past the end of the file", "file size 16"});
}

TEST_F(SafetensorsTest, MalformedNotUtf8) {
  expect_rejected("utf8.safetensors", image("{\"a\xFF\":1}", ""),
                  {"not valid UTF-8", "0xFF", "offset 3"});
  // Overlong encoding and a UTF-16 surrogate are rejected like Rust's from_utf8.
  expect_rejected("overlong.safetensors", image("{\"\xC0\xAF\":1}", ""), {"not valid UTF-8"});
  expect_rejected("surrogate.safetensors", image("{\"\xED\xA0\x80\":1}", ""), {"not valid UTF-8"});
}

TEST_F(SafetensorsTest, MalformedNotJson) {
  expect_rejected("json.safetensors", image("{\"a\":", ""), {"header is not valid JSON"});
  expect_rejected("trailing.safetensors", image("{} x", ""), {"header is not valid JSON"});
}

TEST_F(SafetensorsTest, MalformedNotObject) {
  expect_rejected("array.safetensors", image("[1, 2]  ", ""),
                  {"header is not a JSON object (got array)"});
}

TEST_F(SafetensorsTest, MalformedNotStartingWithBrace) {
  expect_rejected("brace.safetensors", image("  {}    ", ""), {"does not start with '{'"});
  expect_rejected("empty-header.safetensors", image("", ""), {"does not start with '{'"});
}

TEST_F(SafetensorsTest, MalformedEntryNotObject) {
  expect_rejected("entry.safetensors", image("{\"w\":[1,2]}", ""),
                  {"header entry 'w' is not an object"});
}

TEST_F(SafetensorsTest, MalformedEntryFields) {
  expect_rejected("nodtype.safetensors", image("{\"w\":{\"shape\":[],\"data_offsets\":[0,4]}}", ""),
                  {"tensor 'w' lacks the \"dtype\" field"});
  expect_rejected("noshape.safetensors",
                  image("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "abcd"),
                  {"tensor 'w' lacks the \"shape\" field"});
  expect_rejected("nooffsets.safetensors", image("{\"w\":{\"dtype\":\"F32\",\"shape\":[]}}", ""),
                  {"tensor 'w' lacks the \"data_offsets\" field"});
  expect_rejected("dtypetype.safetensors",
                  image("{\"w\":{\"dtype\":4,\"shape\":[],\"data_offsets\":[0,4]}}", "abcd"),
                  {"\"dtype\" is not a string"});
  expect_rejected("shapetype.safetensors",
                  image("{\"w\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,4]}}", ""),
                  {"\"shape\" is not an array"});
  for (const char* offs : {"[0]", "[0,4,8]", "[-1,3]", "[0,4.0]", "\"0,4\"", "[0,\"4\"]"}) {
    SCOPED_TRACE(offs);
    expect_rejected(
        "offsets.safetensors",
        image(std::string("{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":") + offs + "}}",
              "abcd"),
        {"\"data_offsets\" is not an array of two non-negative integers"});
  }
}

TEST_F(SafetensorsTest, MalformedUnknownDtype) {
  expect_rejected("dtype.safetensors", image("{" + entry("w", "F128", "[1]", 0, 16) + "}", ""),
                  {"tensor 'w' has unknown dtype \"F128\""});
}

TEST_F(SafetensorsTest, MalformedShapeDims) {
  expect_rejected("negdim.safetensors", image("{" + entry("w", "F32", "[2,-3]", 0, 4) + "}", ""),
                  {"tensor 'w' has a negative shape dimension -3"});
  expect_rejected("floatdim.safetensors", image("{" + entry("w", "F32", "[1.5]", 0, 4) + "}", ""),
                  {"shape dimension that is not a non-negative integer"});
  expect_rejected("strdim.safetensors", image("{" + entry("w", "F32", "[\"1\"]", 0, 4) + "}", ""),
                  {"shape dimension that is not a non-negative integer"});
  expect_rejected("bigdim.safetensors",
                  image("{" + entry("w", "F32", "[0,18446744073709551615]", 0, 0) + "}", ""),
                  {"beyond the int64 range"});
}

TEST_F(SafetensorsTest, MalformedBeginAfterEnd) {
  expect_rejected("order.safetensors", image("{" + entry("w", "U8", "[0]", 8, 4) + "}", ""),
                  {"begin 8 > end 4"});
}

TEST_F(SafetensorsTest, MalformedOverflow) {
  // numel alone overflows 64 bits.
  expect_rejected("overflow.safetensors",
                  image("{" + entry("w", "F32", "[4294967296,4294967296]", 0, 0) + "}", ""),
                  {"tensor 'w'", "element count x dtype size overflows 64 bits"});
  // numel fits, numel x 4 does not.
  expect_rejected("overflow2.safetensors",
                  image("{" + entry("w", "F32", "[4611686018427387904]", 0, 0) + "}", ""),
                  {"overflows 64 bits"});
}

TEST_F(SafetensorsTest, MalformedSizeMismatch) {
  expect_rejected("mismatch.safetensors", image("{" + entry("w", "F32", "[2]", 0, 4) + "}", "abcd"),
                  {"tensor 'w'", "needs 8 bytes", "span 4"});
}

TEST_F(SafetensorsTest, MalformedGap) {
  expect_rejected(
      "gap.safetensors",
      image("{" + entry("b", "U8", "[4]", 8, 12) + "," + entry("a", "U8", "[4]", 0, 4) + "}",
            std::string(12, 'x')),
      {"gap of 4 bytes", "'a'", "'b'"});
  expect_rejected("startgap.safetensors",
                  image("{" + entry("a", "U8", "[4]", 4, 8) + "}", std::string(8, 'x')),
                  {"gap of 4 bytes at the start", "'a'"});
}

TEST_F(SafetensorsTest, MalformedOverlap) {
  expect_rejected(
      "overlap.safetensors",
      image("{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("b", "U8", "[8]", 4, 12) + "}",
            std::string(12, 'x')),
      {"tensor 'b'", "overlaps tensor 'a'"});
  // Same offsets twice.
  expect_rejected(
      "same.safetensors",
      image("{" + entry("a", "U8", "[8]", 0, 8) + "," + entry("b", "U8", "[8]", 0, 8) + "}",
            std::string(8, 'x')),
      {"overlaps"});
}

TEST_F(SafetensorsTest, MalformedTrailingBytes) {
  expect_rejected("trailing-bytes.safetensors",
                  image("{" + entry("a", "U8", "[4]", 0, 4) + "}", "abcdEXTRA"),
                  {"not fully covered", "5 trailing bytes"});
  expect_rejected("no-tensors.safetensors", image("{}", "x"), {"not fully covered"});
}

TEST_F(SafetensorsTest, MalformedTruncated) {
  expect_rejected("truncated.safetensors",
                  image("{" + entry("a", "F32", "[4]", 0, 16) + "}", "abcd"),
                  {"truncated", "need 16 bytes", "only 4"});
}

TEST_F(SafetensorsTest, MalformedDuplicateKeys) {
  expect_rejected(
      "dup.safetensors",
      image("{" + entry("a", "U8", "[1]", 0, 1) + "," + entry("a", "U8", "[1]", 1, 2) + "}", "xy"),
      {"duplicate tensor name 'a'"});
  expect_rejected("dupfield.safetensors",
                  image("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],"
                        "\"data_offsets\":[0,1]}}",
                        "x"),
                  {"duplicate key 'dtype' in header entry 'a'"});
  expect_rejected("dupmeta.safetensors", image("{\"__metadata__\":{},\"__metadata__\":{}}", ""),
                  {"duplicate tensor name '__metadata__'"});
}

TEST_F(SafetensorsTest, MalformedMetadata) {
  expect_rejected("meta.safetensors", image("{\"__metadata__\":{\"format\":1}}", ""),
                  {"__metadata__ is not an object of string to string", "'format'"});
  expect_rejected("meta2.safetensors", image("{\"__metadata__\":[\"pt\"]}", ""),
                  {"__metadata__ is not an object of string to string (got array)"});
}

TEST_F(SafetensorsTest, MalformedDeepNesting) {
  std::string deep = "{\"a\":" + std::string(1000, '[') + std::string(1000, ']') + "}";
  expect_rejected("deep.safetensors", image(deep, ""), {"nests deeper than"});
}

// --- 16-bit floats ---

}  // namespace
}  // namespace sdgen
