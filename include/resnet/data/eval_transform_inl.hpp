// The definitions of eval_transform.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/data/data.cpp). Not for direct inclusion.
#pragma once

#include "resnet/core/abi.hpp"
#include <cstdint>
#include <vector>
#include "resnet/data/transforms.hpp"
#include "resnet/data/eval_transform.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {
RESNET_INLINE TransformOptions eval_transform(int size, double crop_fraction) {
  auto t = TransformOptions().size(size).augment(Augment::None).crop_fraction(crop_fraction);
  t.validate();
  return t;
}

RESNET_INLINE Image to_rgb(const Image& img) {
  const int c = img.channels;
  RESNET_CHECK(c >= 1 && c <= 4, "to_rgb: images have 1 to 4 channels, got ", c);
  const size_t n = static_cast<size_t>(img.width) * static_cast<size_t>(img.height);
  RESNET_CHECK(img.width > 0 && img.height > 0 && img.pixels.size() == n * static_cast<size_t>(c),
               "to_rgb: image buffer of ", img.pixels.size(), " bytes does not match ", img.width, "x",
               img.height, "x", c);
  if (c == 3) return img;
  Image out;
  out.width = img.width;
  out.height = img.height;
  out.channels = 3;
  out.pixels.resize(n * 3);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &img.pixels[i * static_cast<size_t>(c)];
    uint8_t* o = &out.pixels[i * 3];
    o[0] = p[0];
    o[1] = c >= 3 ? p[1] : p[0];
    o[2] = c >= 3 ? p[2] : p[0];
  }
  return out;
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
