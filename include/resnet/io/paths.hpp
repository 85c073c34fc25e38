// The few file-system questions the headers ask (does it exist, is it a folder, a path inside a folder),
// declared here and answered in paths_inl.hpp (compiled into libresnet in the compiled mode), so that a
// unit including the library does not parse <filesystem>. None of them throws: a path that cannot be
// examined is answered false.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <string>

namespace resnet {
inline namespace RESNET_ABI {
namespace io {

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);
// `dir` / `name` as std::filesystem joins them (an absolute `name` replaces `dir`).
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace io
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/io/paths_inl.hpp"
#endif
