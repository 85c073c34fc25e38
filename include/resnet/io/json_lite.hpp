// The few pieces of JSON the safetensors header needs: a strict cursor that reads strings and non-negative
// integers (with the byte offset of any error), quoting for the writer, and a UTF-8 check. Not a general
// JSON library: the header has a fixed schema, so the parser above reads exactly that schema.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

// Offset of the first byte that is not well-formed UTF-8 (overlongs, surrogates and code points above
// U+10FFFF included), or `size` when all of it is.
inline size_t utf8_invalid_offset(const char* data, size_t size) {
  const auto* s = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  while (i < size) {
    unsigned c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (size - i <= n) return i;
    for (size_t k = 1; k <= n; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return size;
}

// A JSON string literal for `s` (which must be UTF-8): quotes, backslashes and control characters escaped.
inline std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// Reads JSON tokens from a buffer. Every error throws resnet::Error starting with `context` and naming the
// byte offset and what was found there.
class JsonCursor {
 public:
  JsonCursor(const char* data, size_t size, std::string context)
      : begin_(data), p_(data), end_(data + size), context_(std::move(context)) {}

  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool at_end() {
    skip_ws();
    return p_ == end_;
  }
  bool next_is(char c) {
    skip_ws();
    return p_ < end_ && *p_ == c;
  }
  bool try_consume(char c) {
    if (!next_is(c)) return false;
    ++p_;
    return true;
  }
  void expect(char c, const char* what) {
    if (!try_consume(c)) fail("expected ", what);
  }
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }

  // A string literal, unescaped to UTF-8.
  std::string string(const char* what) {
    if (!try_consume('"')) fail("expected ", what, " (a string)");
    std::string out;
    for (;;) {
      if (p_ == end_) fail("unterminated string");
      auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return out;
      }
      if (c < 0x20) fail("control character inside a string (must be escaped)");
      if (c != '\\') {
        out += static_cast<char>(c);
        ++p_;
        continue;
      }
      ++p_;
      if (p_ == end_) fail("unterminated escape sequence");
      char e = *p_++;
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u':
          append_utf8(out, code_point());
          break;
        default:
          --p_, fail("invalid escape sequence '\\", printable(e), "'");
      }
    }
  }

  // A non-negative integer that fits in int64 (no sign, fraction or exponent: shapes and offsets).
  uint64_t integer(const char* what) {
    skip_ws();
    if (p_ < end_ && *p_ == '-')
      fail("expected ", what, " (a non-negative integer), found a negative number");
    if (p_ == end_ || *p_ < '0' || *p_ > '9') fail("expected ", what, " (a non-negative integer)");
    const char* start = p_;
    uint64_t v = 0;
    const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      uint64_t d = static_cast<uint64_t>(*p_ - '0');
      if (v > (limit - d) / 10) p_ = start, fail(what, " is too large (more than 2^63 - 1)");
      v = v * 10 + d;
      ++p_;
    }
    if (*start == '0' && p_ - start > 1) p_ = start, fail("number with a leading zero in ", what);
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E'))
      fail("expected ", what, " to be an integer, found a fraction or exponent");
    return v;
  }

  template <typename... Args>
  [[noreturn]] void fail(Args&&... what) {
    std::string found = p_ < end_ ? "'" + printable(*p_) + "'" : std::string("the end of the header");
    RESNET_FAIL(context_, " at byte ", offset(), ": ", std::forward<Args>(what)..., " (found ", found, ")");
  }

 private:
  static std::string printable(char c) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return std::string(1, c);
    char buf[8];
    std::snprintf(buf, sizeof(buf), "\\x%02x", u);
    return buf;
  }
  unsigned hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      char c = *p_;
      unsigned d;
      if (c >= '0' && c <= '9') {
        d = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<unsigned>(c - 'A' + 10);
      } else {
        fail("invalid hex digit in \\u escape");
      }
      v = v * 16 + d;
    }
    return v;
  }
  uint32_t code_point() {
    unsigned hi = hex4();
    if (hi >= 0xdc00 && hi <= 0xdfff) fail("unpaired low surrogate in \\u escape");
    if (hi < 0xd800 || hi > 0xdbff) return hi;
    if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') fail("unpaired high surrogate in \\u escape");
    p_ += 2;
    unsigned lo = hex4();
    if (lo < 0xdc00 || lo > 0xdfff) fail("high surrogate not followed by a low surrogate in \\u escape");
    return 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
  }
  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  std::string context_;
};

// ["a", "b"] <-> vector<string>: how a list (class names) travels in the string-only metadata map.
inline std::string json_string_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + json_quote(items[i]);
  return out + "]";
}
inline std::vector<std::string> parse_json_string_array(const std::string& text, const std::string& context) {
  JsonCursor c(text.data(), text.size(), context);
  std::vector<std::string> out;
  c.expect('[', "'['");
  if (!c.try_consume(']')) {
    do {
      out.push_back(c.string("a list item"));
    } while (c.try_consume(','));
    c.expect(']', "',' or ']'");
  }
  if (!c.at_end()) c.fail("unexpected text after the list");
  return out;
}

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet
