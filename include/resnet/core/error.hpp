// Errors: every failure in the library throws resnet::Error with a message that names the problem
// (the op, the shapes, the file, the flag) and where it was detected. Nothing here exits the process.
#pragma once

#include "resnet/core/abi.hpp"

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

template <typename... Args>
[[noreturn]] void throw_error(const char* file, int line, Args&&... args) {
  std::string msg = concat(std::forward<Args>(args)...);
  std::string where = std::string(file);
  auto slash = where.find_last_of('/');
  if (slash != std::string::npos) where = where.substr(slash + 1);
  throw Error(msg + " [" + where + ":" + std::to_string(line) + "]");
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
