// The definitions of error.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/core/error.cpp). Not for direct inclusion.
#pragma once

#include <cstdio>
#include <sstream>
#include <string>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace detail {

RESNET_INLINE void append_bool(std::string& out, bool v) { out += v ? '1' : '0'; }

RESNET_INLINE void append_char(std::string& out, char v) { out += v; }

RESNET_INLINE void append_signed(std::string& out, long long v) { out += std::to_string(v); }

RESNET_INLINE void append_unsigned(std::string& out, unsigned long long v) { out += std::to_string(v); }

// A stream's default: %g with 6 significant digits.
RESNET_INLINE void append_floating(std::string& out, double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  out += buf;
}

RESNET_INLINE void append_long_double(std::string& out, long double v) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%Lg", v);
  out += buf;
}

RESNET_INLINE void append_pointer(std::string& out, const void* v) {
  std::ostringstream os;
  os << v;
  out += os.str();
}

RESNET_INLINE void append_streamed(std::string& out, const void* value,
                                   void (*put)(std::ostream&, const void*)) {
  std::ostringstream os;
  put(os, value);
  out += os.str();
}

RESNET_INLINE std::string join_parts(const MessagePart* parts, size_t n) {
  std::string msg;
  for (size_t i = 0; i < n; ++i) parts[i].append_to(msg);
  return msg;
}

RESNET_INLINE void throw_error_parts(const char* file, int line, const MessagePart* parts, size_t n) {
  std::string where = std::string(file);
  auto slash = where.find_last_of('/');
  if (slash != std::string::npos) where = where.substr(slash + 1);
  throw Error(join_parts(parts, n) + " [" + where + ":" + std::to_string(line) + "]");
}

}  // namespace detail
}  // namespace RESNET_ABI
}  // namespace resnet
