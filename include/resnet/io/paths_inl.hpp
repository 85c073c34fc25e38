// The definitions of paths.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/io/paths.cpp). Not for direct inclusion.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

#include "resnet/core/abi.hpp"
#include "resnet/io/paths.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

RESNET_INLINE bool path_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

RESNET_INLINE bool is_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

RESNET_INLINE bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

RESNET_INLINE std::string join_path(const std::string& dir, const std::string& name) {
  return (std::filesystem::path(dir) / name).string();
}

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet
