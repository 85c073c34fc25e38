// ImageFolder: a labelled image set stored as one folder per class (root/cat/*.jpg, root/dog/*.jpg), as
// torchvision's ImageFolder reads it: classes are the sub-folder names in sorted order (label = position),
// files within a class are in sorted order, hidden entries and files without an image extension are ignored.
// A folder needs at least two classes (one would train to a loss of 0): fewer is an error naming it.
#pragma once

#include "resnet/core/compiled_mode.hpp"
#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

struct LabelledFile {
  std::string path;
  int32_t label = 0;
};

// File extensions read as images (compared case-insensitively): the formats image_decode.hpp reads.
const std::vector<std::string>& image_extensions();

bool has_image_extension(const std::string& filename);

struct ImageFolderOptions {
  // 0: every image. N > 0: N images in all, split evenly over the classes (the first N / K files of each of
  // the K classes in sorted order, the first N % K classes taking one more), so a small subset keeps every
  // class. Smoke runs use it; it must be at least the number of classes.
  RESNET_ARG(int64_t, limit) = 0;
};

class ImageFolder {
 public:
  explicit ImageFolder(const std::string& root, const ImageFolderOptions& options = ImageFolderOptions());

  const std::string& root() const { return root_; }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<LabelledFile>& files() const { return files_; }
  int64_t size() const { return static_cast<int64_t>(files_.size()); }
  // Images per class, in class order.
  const std::vector<int64_t>& class_counts() const { return counts_; }

 private:
  std::string root_;
  std::vector<std::string> classes_;
  std::vector<LabelledFile> files_;
  std::vector<int64_t> counts_;
};

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/data/image_folder_inl.hpp"
#endif
