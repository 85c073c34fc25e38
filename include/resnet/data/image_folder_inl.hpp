// The definitions of image_folder.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/data/data.cpp). Not for direct inclusion.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>
#include "resnet/core/error.hpp"
#include "resnet/data/image_folder.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {
RESNET_INLINE const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> ext{".jpg", ".jpeg", ".png"};
  return ext;
}

RESNET_INLINE bool has_image_extension(const std::string& filename) {
  auto dot = filename.find_last_of('.');
  if (dot == std::string::npos) return false;
  std::string e = filename.substr(dot);
  std::transform(e.begin(), e.end(), e.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto& all = image_extensions();
  return std::find(all.begin(), all.end(), e) != all.end();
}

RESNET_INLINE ImageFolder::ImageFolder(const std::string& root, const ImageFolderOptions& options)
    : root_(root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  RESNET_CHECK(fs::exists(root, ec), "image folder '", root, "' does not exist");
  RESNET_CHECK(fs::is_directory(root, ec), "image folder '", root, "' is not a directory");
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' && entry.is_directory(ec)) classes_.push_back(name);
  }
  RESNET_CHECK(!ec, "cannot list image folder '", root, "': ", ec.message());
  std::sort(classes_.begin(), classes_.end());
  RESNET_CHECK(!classes_.empty(), "image folder '", root,
               "' has no class sub-folders (expected one folder per class, like ", root, "/cat/*.jpg)");
  // One class trains a classifier to a loss of 0 without learning anything: refused here, where every
  // way in (ImageFolderDataset, a Trainer over it, the programs) passes.
  RESNET_CHECK(classes_.size() >= 2, "image folder '", root, "' has 1 class sub-folder ('", classes_[0],
               "'); a classifier needs at least two classes, one folder each (like ", root, "/cat/*.jpg and ",
               root, "/dog/*.jpg)");

  std::vector<std::vector<std::string>> per_class(classes_.size());
  for (size_t c = 0; c < classes_.size(); ++c) {
    fs::path dir = fs::path(root) / classes_[c];
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::string name = entry.path().filename().string();
      if (name.empty() || name[0] == '.' || !has_image_extension(name) || entry.is_directory(ec)) continue;
      per_class[c].push_back(name);
    }
    RESNET_CHECK(!ec, "cannot list class folder '", dir.string(), "': ", ec.message());
    RESNET_CHECK(!per_class[c].empty(), "class folder '", dir.string(),
                 "' holds no images (looked for .jpg, .jpeg and .png files)");
    std::sort(per_class[c].begin(), per_class[c].end());
  }

  const int64_t k = static_cast<int64_t>(classes_.size());
  RESNET_CHECK(options.limit() >= 0, "image limit must be non-negative, got ", options.limit());
  RESNET_CHECK(options.limit() == 0 || options.limit() >= k, "image limit ", options.limit(),
               " is smaller than the ", k, " classes of '", root, "': every class needs at least one image");
  for (size_t c = 0; c < classes_.size(); ++c) {
    size_t keep = per_class[c].size();
    if (options.limit() > 0) {
      int64_t quota = options.limit() / k + (static_cast<int64_t>(c) < options.limit() % k ? 1 : 0);
      keep = std::min(keep, static_cast<size_t>(quota));
    }
    counts_.push_back(static_cast<int64_t>(keep));
    for (size_t i = 0; i < keep; ++i)
      files_.push_back({(fs::path(root) / classes_[c] / per_class[c][i]).string(), static_cast<int32_t>(c)});
  }
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
