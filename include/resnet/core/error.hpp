// Errors: every failure in the library throws resnet::Error with a message that names the problem
// (the op, the shapes, the file, the flag) and where it was detected. Nothing here exits the process.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <cstddef>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace resnet {
inline namespace RESNET_ABI {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

// The text of the values an error message holds, as `std::ostream <<` would write them (integers in
// decimal, floating point as %g, bool as 1/0, a char as itself), defined in error_inl.hpp: a unit that
// includes the library then parses no <sstream>/<ostream>, and each message part is one function call.
void append_bool(std::string& out, bool v);
void append_char(std::string& out, char v);
void append_signed(std::string& out, long long v);
void append_unsigned(std::string& out, unsigned long long v);
void append_floating(std::string& out, double v);
void append_long_double(std::string& out, long double v);
void append_pointer(std::string& out, const void* v);
// Any other type through its own `operator<<(std::ostream&, const T&)`: `put` writes it into a stream.
void append_streamed(std::string& out, const void* value, void (*put)(std::ostream&, const void*));

// One part of an error message: the argument's address and how to print it. A RESNET_CHECK's arguments
// become an array of these, so what each argument list instantiates is that array; the printing is one
// function per argument type (int, Shape, ...). A unit that includes the library has hundreds of checks.
class MessagePart {
 public:
  template <typename T>
  MessagePart(const T& value) : value_(&value), append_(&append_any<T>) {}
  // String literals of every length share one printer.
  MessagePart(const char* text) : value_(text), append_(&append_text) {}
  MessagePart(const std::string& text) : value_(&text), append_(&append_string) {}
  void append_to(std::string& out) const { append_(out, value_); }

 private:
  template <typename T>
  static void append_any(std::string& out, const void* value) {
    const T& v = *static_cast<const T*>(value);
    if constexpr (std::is_same_v<T, bool>) {
      append_bool(out, v);
    } else if constexpr (std::is_same_v<T, char> || std::is_same_v<T, signed char> ||
                         std::is_same_v<T, unsigned char>) {
      append_char(out, static_cast<char>(v));
    } else if constexpr (std::is_enum_v<T>) {  // its number, as a stream prints an unscoped one
      append_integer(out, static_cast<std::underlying_type_t<T>>(v));
    } else if constexpr (std::is_integral_v<T>) {
      append_integer(out, v);
    } else if constexpr (std::is_same_v<T, long double>) {
      append_long_double(out, v);
    } else if constexpr (std::is_floating_point_v<T>) {
      append_floating(out, static_cast<double>(v));
    } else if constexpr (std::is_convertible_v<const T&, const char*>) {
      append_text(out, static_cast<const char*>(v));  // char arrays and pointers: the text, as a stream
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
      out += std::string_view(v);
    } else if constexpr (std::is_pointer_v<T>) {
      append_pointer(out, static_cast<const void*>(v));
    } else {
      append_streamed(out, value, [](std::ostream& os, const void* p) { os << *static_cast<const T*>(p); });
    }
  }
  template <typename I>
  static void append_integer(std::string& out, I v) {
    if constexpr (std::is_signed_v<I>)
      append_signed(out, static_cast<long long>(v));
    else
      append_unsigned(out, static_cast<unsigned long long>(v));
  }
  static void append_text(std::string& out, const void* value) {
    out += value ? static_cast<const char*>(value) : "(null)";
  }
  static void append_string(std::string& out, const void* value) {
    out += *static_cast<const std::string*>(value);
  }
  const void* value_;
  void (*append_)(std::string&, const void*);
};

// The parts, concatenated.
std::string join_parts(const MessagePart* parts, size_t n);

template <typename... Args>
std::string concat(const Args&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return std::string();
  } else {
    const MessagePart parts[] = {MessagePart(args)...};
    return join_parts(parts, sizeof...(Args));
  }
}

// The parts, concatenated, then " [file.hpp:line]".
[[noreturn]] void throw_error_parts(const char* file, int line, const MessagePart* parts, size_t n);

// What RESNET_CHECK calls: per argument list, only the array of parts (a braced list at each call site
// instead broke nvcc's front end inside some templates).
template <typename... Args>
[[noreturn]] void throw_error(const char* file, int line, const Args&... args) {
  const MessagePart parts[] = {MessagePart(args)...};
  throw_error_parts(file, line, parts, sizeof...(Args));
}

}  // namespace detail
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/core/error_inl.hpp"
#endif

// RESNET_CHECK(cond, parts...): throws resnet::Error with the concatenated parts when cond is false.
#define RESNET_CHECK(cond, ...)                                                  \
  do {                                                                           \
    if (!(cond)) ::resnet::detail::throw_error(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

#define RESNET_FAIL(...) ::resnet::detail::throw_error(__FILE__, __LINE__, __VA_ARGS__)
