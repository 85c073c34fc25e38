// Dataset: what the loader reads from. A sample is written straight into its slot of the batch tensor;
// a sample that cannot be read throws resnet::Error, which the loader turns into a skip with a warning.
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>
#include <string>
#include <utility>

#include "resnet/core/shape.hpp"
#include "resnet/data/image_decode.hpp"
#include "resnet/data/image_folder.hpp"
#include "resnet/data/transforms.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // The shape of one sample, e.g. [3, 96, 96].
  virtual Shape sample_shape() const = 0;
  virtual int32_t label(int64_t index) const = 0;
  // What a warning calls the sample (its file).
  virtual std::string name(int64_t index) const = 0;
  // Writes sample `index` (sample_shape().numel() floats) to `out`, drawing augmentation from `rng`. Must be
  // safe to call from several threads at once.
  virtual void load(int64_t index, SampleRng& rng, float* out) const = 0;
  // The same sample at another image size: [C, size, size] floats (progressive resizing; a test at another
  // resolution). Only datasets that make their images from a transform can; the rest refuse.
  virtual void load_resized(int64_t index, int size, SampleRng& rng, float* out) const {
    (void)index, (void)rng, (void)out;
    RESNET_FAIL("this dataset cannot give its samples at another size (", size,
                "): progressive resizing and a test size need a Dataset that overrides load_resized, as "
                "ImageFolderDataset does");
  }
};

// An ImageFolder decoded with stb_image and passed through a transform.
class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(ImageFolder folder, const TransformOptions& transform)
      : folder_(std::move(folder)), transform_(transform) {
    transform_.validate();  // a bad configuration is one error here, not a skip of every file
  }
  int64_t size() const override { return folder_.size(); }
  Shape sample_shape() const override { return Shape{3, transform_.size(), transform_.size()}; }
  int32_t label(int64_t index) const override { return file(index).label; }
  std::string name(int64_t index) const override { return file(index).path; }
  void load(int64_t index, SampleRng& rng, float* out) const override {
    Image img = load_image(file(index).path);
    apply_transform(img, transform_, rng, out);
  }
  void load_resized(int64_t index, int size, SampleRng& rng, float* out) const override {
    TransformOptions t = transform_;  // a padding of -1 follows the size
    t.size(size);
    t.validate();
    Image img = load_image(file(index).path);
    apply_transform(img, t, rng, out);
  }
  const ImageFolder& folder() const { return folder_; }
  const TransformOptions& transform() const { return transform_; }

 private:
  const LabelledFile& file(int64_t index) const {
    RESNET_CHECK(index >= 0 && index < folder_.size(), "dataset index ", index, " out of range [0, ",
                 folder_.size(), ")");
    return folder_.files()[static_cast<size_t>(index)];
  }
  ImageFolder folder_;
  TransformOptions transform_;
};

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
