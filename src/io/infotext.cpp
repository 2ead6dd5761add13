// A1111 infotext, written from AUTOMATIC1111/stable-diffusion-webui's behaviour:
//   modules/processing.py create_infotext: "<prompt>[\nNegative prompt: <neg>]\n<k: v, ...>",
//     .strip()ped, a field whose value equals its key written bare, values through quote();
//   modules/infotext_utils.py quote()/unquote() and parse_generation_parameters().
#include "sdgen/io/infotext.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "sdgen/util/utf8.h"

namespace sdgen {
namespace {

// One decoded code point and where its bytes are. Bytes that are not valid UTF-8 become
// U+DC80 + byte (Python's "surrogateescape" idea): neither space nor word character.
struct Cp {
  uint32_t cp;
  size_t pos;
  size_t len;
};

std::vector<Cp> decode_utf8(const std::string& s) {
  std::vector<Cp> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    size_t skip = 1;
    if (const size_t len = utf8::sequence(p, s.size(), i, &cp, &skip)) {
      out.push_back({static_cast<uint32_t>(cp), i, len});
      i += len;
    } else {
      out.push_back({0xdc80u + p[i], i, 1});  // byte by byte, as surrogateescape does
      ++i;
    }
  }
  return out;
}

// Python's str.isspace(), which is also what `\s` and str.strip() use.
bool is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

// Python's `\w` for str patterns is str.isalnum() or '_'. Exact for ASCII; beyond ASCII an
// approximation: everything counts as a word character except white space, the Latin-1
// symbols and punctuation, General Punctuation, CJK punctuation and invalid bytes.
bool is_word(uint32_t c) {
  if (c < 0x80) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  }
  if (is_space(c)) return false;
  if (c < 0xc0) {  // Latin-1 supplement, symbols: ª ² ³ µ ¹ º ¼ ½ ¾ are alphanumeric
    return c == 0xaa || c == 0xb2 || c == 0xb3 || c == 0xb5 || c == 0xb9 || c == 0xba ||
           (c >= 0xbc && c <= 0xbe);
  }
  if (c == 0xd7 || c == 0xf7) return false;
  if (c >= 0x2000 && c <= 0x206f) return false;
  if (c >= 0x3000 && c <= 0x303f) return false;
  if (c >= 0xdc80 && c <= 0xdcff) return false;
  return true;
}

// Python's str.strip().
std::string py_strip(const std::string& s) {
  const std::vector<Cp> cps = decode_utf8(s);
  size_t b = 0, e = cps.size();
  while (b < e && is_space(cps[b].cp)) ++b;
  while (e > b && is_space(cps[e - 1].cp)) --e;
  if (b == e) return std::string();
  return s.substr(cps[b].pos, cps[e - 1].pos + cps[e - 1].len - cps[b].pos);
}

// json.loads of a JSON string literal (the whole of `s`). Python's strict mode: control
// characters must be escaped. A lone surrogate escape becomes U+FFFD. False when invalid.
bool json_unquote(const std::string& s, std::string* out) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  std::string r;
  size_t i = 1;
  const size_t end = s.size() - 1;
  auto hex4 = [&](size_t at, uint32_t* v) {
    if (at + 4 > end) return false;
    uint32_t x = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = s[at + k];
      x <<= 4;
      if (c >= '0' && c <= '9') {
        x |= uint32_t(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        x |= uint32_t(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        x |= uint32_t(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *v = x;
    return true;
  };
  while (i < end) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"') return false;  // the string ends before the end of the text
    if (c < 0x20) return false;  // strict: raw control character
    if (c != '\\') {
      r += char(c);
      ++i;
      continue;
    }
    if (i + 1 >= end) return false;
    const char e = s[i + 1];
    i += 2;
    switch (e) {
      case '"':
        r += '"';
        break;
      case '\\':
        r += '\\';
        break;
      case '/':
        r += '/';
        break;
      case 'b':
        r += '\b';
        break;
      case 'f':
        r += '\f';
        break;
      case 'n':
        r += '\n';
        break;
      case 'r':
        r += '\r';
        break;
      case 't':
        r += '\t';
        break;
      case 'u': {
        uint32_t cp = 0;
        if (!hex4(i, &cp)) return false;
        i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t lo = 0;
          if (i + 1 < end && s[i] == '\\' && s[i + 1] == 'u' && hex4(i + 2, &lo) && lo >= 0xdc00 &&
              lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
          } else {
            cp = 0xfffd;
          }
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          cp = 0xfffd;
        }
        utf8::append(r, cp);
        break;
      }
      default:
        return false;
    }
  }
  *out = std::move(r);
  return true;
}

// re.findall(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', line), hand-written.
// `line` holds no '\n' (it is one line of the text), so `$` means the end of it.
std::vector<std::pair<std::string, std::string>> find_params(const std::string& line) {
  std::vector<std::pair<std::string, std::string>> found;
  const std::vector<Cp> c = decode_utf8(line);
  const size_t n = c.size();
  auto byte_at = [&](size_t i) { return i < n ? c[i].pos : line.size(); };
  auto key_char = [&](uint32_t x) { return is_word(x) || x == ' ' || x == '-' || x == '/'; };
  size_t start = 0;
  while (start < n) {
    // \s* then (\w[\w \-/]+) then ':'. Neither part can backtrack into another split: a key
    // starts with \w (never a space) and its characters never include ':'.
    size_t i = start;
    while (i < n && is_space(c[i].cp)) ++i;
    if (i >= n || !is_word(c[i].cp)) {
      ++start;
      continue;
    }
    const size_t key_begin = i;
    size_t j = i + 1;
    while (j < n && key_char(c[j].cp)) ++j;
    if (j - key_begin < 2 || j >= n || c[j].cp != ':') {
      ++start;
      continue;
    }
    std::string key = line.substr(byte_at(key_begin), byte_at(j) - byte_at(key_begin));
    i = j + 1;
    while (i < n && is_space(c[i].cp)) ++i;
    const size_t value_begin = i;

    // First alternative: "(?:\\.|[^\\"])+" followed by ',' or the end.
    size_t value_end = 0, next = 0;
    bool quoted = false;
    if (i < n && c[i].cp == '"') {
      size_t k = i + 1;
      size_t items = 0;
      bool closed = false;
      while (k < n) {
        if (c[k].cp == '\\') {
          if (k + 1 < n && c[k + 1].cp != '\n') {
            k += 2;
            ++items;
            continue;
          }
          break;  // a backslash that `\\.` cannot take and `[^\\"]` refuses
        }
        if (c[k].cp == '"') {
          closed = true;
          break;
        }
        ++k;
        ++items;
      }
      if (closed && items > 0) {
        const size_t after = k + 1;
        if (after == n) {
          quoted = true, value_end = after, next = n;
        } else if (c[after].cp == ',') {
          quoted = true, value_end = after, next = after + 1;
        }
      }
    }
    // Second alternative: [^,]* followed by ',' or the end (always matches).
    if (!quoted) {
      size_t k = i;
      while (k < n && c[k].cp != ',') ++k;
      value_end = k;
      next = k < n ? k + 1 : n;
    }
    found.emplace_back(std::move(key), line.substr(byte_at(value_begin),
                                                   byte_at(value_end) - byte_at(value_begin)));
    start = next;
  }
  return found;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find('\n', b);
    if (e == std::string::npos) {
      out.push_back(s.substr(b));
      return out;
    }
    out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
}

}  // namespace

std::string infotext_quote(const std::string& value) {
  if (value.find_first_of(",\n:") == std::string::npos) return value;
  // json.dumps(value, ensure_ascii=False): only '"', '\\' and C0 controls are escaped.
  std::string out = "\"";
  for (const char ch : value) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", unsigned(c));
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
  return out;
}

std::string format_infotext(const InfoText& info) {
  std::string params;
  for (const auto& [key, value] : info.fields) {
    if (!params.empty()) params += ", ";
    if (key == value) {
      params += key;
    } else {
      params += key;
      params += ": ";
      params += infotext_quote(value);
    }
  }
  std::string text = info.prompt;
  if (!info.negative_prompt.empty()) text += "\nNegative prompt: " + info.negative_prompt;
  text += "\n" + params;
  return py_strip(text);
}

InfoText parse_infotext(const std::string& text) {
  InfoText info;
  std::vector<std::string> lines = split_lines(py_strip(text));
  std::string last = lines.back();
  lines.pop_back();
  std::vector<std::pair<std::string, std::string>> params = find_params(last);
  if (params.size() < 3) {
    lines.push_back(last);
    params.clear();
  }

  static const std::string kNeg = "Negative prompt:";
  bool in_negative = false;
  for (const std::string& raw : lines) {
    std::string line = py_strip(raw);
    if (line.compare(0, kNeg.size(), kNeg) == 0) {
      in_negative = true;
      line = py_strip(line.substr(kNeg.size()));
    }
    std::string& target = in_negative ? info.negative_prompt : info.prompt;
    if (!target.empty()) target += '\n';
    target += line;
  }

  for (auto& [key, value] : params) {
    // A1111 indexes v[0] inside a try: an empty value raises and the field is dropped.
    if (value.empty()) continue;
    if (value.front() == '"' && value.back() == '"') {
      std::string unquoted;
      if (json_unquote(value, &unquoted)) value = std::move(unquoted);
    }
    info.fields.emplace_back(std::move(key), std::move(value));
  }
  return info;
}

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  // Integral values below 1e16 print as integers (A1111 shows "CFG scale: 7").
  if (v == std::floor(v) && std::fabs(v) < 1e16) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  // Python's repr(): the shortest digits that read back to v, fixed notation when the decimal
  // exponent is in [-4, 16), else d.ddde+XX with at least two exponent digits.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  if (res.ec != std::errc()) throw std::runtime_error("format_number failed");
  const std::string sci(buf, res.ptr);
  const size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  const int exp = std::atoi(sci.c_str() + epos + 1);
  std::string sign;
  if (!mant.empty() && mant[0] == '-') {
    sign = "-";
    mant.erase(0, 1);
  }
  std::string digits;
  for (char ch : mant) {
    if (ch != '.') digits += ch;
  }
  if (exp < -4 || exp >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof(e), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    return out + e;
  }
  const int point = exp + 1;  // digits before the decimal point
  const int nd = int(digits.size());
  if (point <= 0) return sign + "0." + std::string(size_t(-point), '0') + digits;
  if (point >= nd) return sign + digits + std::string(size_t(point - nd), '0');  // integral
  return sign + digits.substr(0, size_t(point)) + "." + digits.substr(size_t(point));
}

}  // namespace sdgen
