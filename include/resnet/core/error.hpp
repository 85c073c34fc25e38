// Errors: every failure in the library throws resnet::Error with a message that names the problem
// (the op, the shapes, the file, the flag) and where it was detected. Nothing here exits the process.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace resnet {
inline namespace RESNET_ABI {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

inline void append_all(std::ostringstream&) {}
template <typename First, typename... Rest>
void append_all(std::ostringstream& os, First&& first, Rest&&... rest) {
  os << std::forward<First>(first);
  append_all(os, std::forward<Rest>(rest)...);
}

template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  append_all(os, std::forward<Args>(args)...);
  return os.str();
}

// One part of an error message: the argument's address and how to print it. A RESNET_CHECK's arguments
// become an array of these, so what each argument list instantiates is that array; the printing is one
// function per argument type (int, Shape, ...). A unit that includes the library has hundreds of checks.
class MessagePart {
 public:
  template <typename T>
  MessagePart(const T& value) : value_(&value), append_(&append_streamed<T>) {}
  // String literals of every length share one printer.
  MessagePart(const char* text) : value_(text), append_(&append_text) {}
  MessagePart(const std::string& text) : value_(&text), append_(&append_string) {}
  void append_to(std::string& out) const { append_(out, value_); }

 private:
  template <typename T>
  static void append_streamed(std::string& out, const void* value) {
    std::ostringstream os;
    os << *static_cast<const T*>(value);
    out += os.str();
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

// The parts, concatenated, then " [file.hpp:line]".
[[noreturn]] inline void throw_error_parts(const char* file, int line, const MessagePart* parts, size_t n) {
  std::string msg;
  for (size_t i = 0; i < n; ++i) parts[i].append_to(msg);
  std::string where = std::string(file);
  auto slash = where.find_last_of('/');
  if (slash != std::string::npos) where = where.substr(slash + 1);
  throw Error(msg + " [" + where + ":" + std::to_string(line) + "]");
}

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

// RESNET_CHECK(cond, parts...): throws resnet::Error with the concatenated parts when cond is false.
#define RESNET_CHECK(cond, ...)                                                  \
  do {                                                                           \
    if (!(cond)) ::resnet::detail::throw_error(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

#define RESNET_FAIL(...) ::resnet::detail::throw_error(__FILE__, __LINE__, __VA_ARGS__)
