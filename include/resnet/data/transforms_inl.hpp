// The definitions of transforms.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/data/data.cpp). Not for direct inclusion.
#pragma once

#include "resnet/core/abi.hpp"
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>
#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/data/auto_augment.hpp"
#include "resnet/data/image_decode.hpp"
#include "resnet/data/random_erasing.hpp"
#include "resnet/data/resample.hpp"
#include "resnet/data/sample_rng.hpp"
#include "resnet/data/transforms.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {
RESNET_INLINE std::string augment_name(Augment a) {
  switch (a) {
    case Augment::PadCrop:
      return "crop";
    case Augment::ResizedCrop:
      return "rrc";
    default:
      return "none";
  }
}

RESNET_INLINE Augment parse_augment(const std::string& s) {
  if (s == "crop") return Augment::PadCrop;
  if (s == "rrc") return Augment::ResizedCrop;
  if (s == "none") return Augment::None;
  RESNET_FAIL("unknown augmentation '", s, "' (expected crop, rrc or none)");
}

namespace detail {
RESNET_INLINE CropBox centre_square(int width, int height, double fraction) {
  double side = std::min(width, height) * fraction;
  return CropBox{(width - side) / 2.0, (height - side) / 2.0, side, side};
}

RESNET_INLINE CropBox random_resized_box(int width, int height, const TransformOptions& t, SampleRng& rng) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(t.ratio_min()), log_hi = std::log(t.ratio_max());
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target = area * rng.uniform(t.scale_min(), t.scale_max());
    double ratio = std::exp(rng.uniform(log_lo, log_hi));
    int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      int x = static_cast<int>(rng.below(static_cast<uint64_t>(width - w + 1)));
      int y = static_cast<int>(rng.below(static_cast<uint64_t>(height - h + 1)));
      return CropBox{double(x), double(y), double(w), double(h)};
    }
  }
  double in_ratio = static_cast<double>(width) / height;
  double w = width, h = height;
  if (in_ratio < t.ratio_min()) {
    h = w / t.ratio_min();
  } else if (in_ratio > t.ratio_max()) {
    w = h * t.ratio_max();
  }
  return CropBox{(width - w) / 2.0, (height - h) / 2.0, w, h};
}

RESNET_INLINE void normalise_chw(const float* hwc, int size, bool mirror, const TransformOptions& t,
                                 float* out) {
  const size_t plane = static_cast<size_t>(size) * static_cast<size_t>(size);
  for (int c = 0; c < 3; ++c) {
    const float a = 1.0f / (255.0f * t.std()[static_cast<size_t>(c)]);
    const float b = -t.mean()[static_cast<size_t>(c)] / t.std()[static_cast<size_t>(c)];
    float* o = out + static_cast<size_t>(c) * plane;
    for (int y = 0; y < size; ++y) {
      const float* row = hwc + static_cast<size_t>(y) * static_cast<size_t>(size) * 3;
      float* orow = o + static_cast<size_t>(y) * static_cast<size_t>(size);
      if (mirror) {
        for (int x = 0; x < size; ++x) orow[x] = row[(size - 1 - x) * 3 + c] * a + b;
      } else {
        for (int x = 0; x < size; ++x) orow[x] = row[x * 3 + c] * a + b;
      }
    }
  }
}

RESNET_INLINE void auto_augment_hwc(float* hwc, int size, bool mirror, const AutoAugmentOptions& o,
                                    SampleRng& rng) {
  Image u8;
  u8.width = u8.height = size;
  u8.pixels.resize(static_cast<size_t>(size) * static_cast<size_t>(size) * 3);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      for (int c = 0; c < 3; ++c) {
        const float v = hwc[(static_cast<size_t>(y) * size + (mirror ? size - 1 - x : x)) * 3 + c];
        u8.pixels[(static_cast<size_t>(y) * size + x) * 3 + c] =
            static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, v)) + 0.5f);
      }
  apply_auto_augment(u8, o, rng);
  for (size_t i = 0; i < u8.pixels.size(); ++i) hwc[i] = u8.pixels[i];
}

}  // namespace detail
RESNET_INLINE void apply_transform(const Image& img, const TransformOptions& t, SampleRng& rng, float* out) {
  RESNET_CHECK(img.channels == 3, "transform: expected an RGB image, got ", img.channels, " channels");
  RESNET_CHECK(img.width > 0 && img.height > 0 &&
                   img.pixels.size() == static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3,
               "transform: image buffer of ", img.pixels.size(), " bytes does not match ", img.width, "x",
               img.height, "x3");
  const int s = t.size();
  std::vector<float> hwc(static_cast<size_t>(s) * static_cast<size_t>(s) * 3);
  bool mirror = false;
  switch (t.augment()) {
    case Augment::None:
      crop_resize(img.pixels.data(), img.width, img.height, 3,
                  detail::centre_square(img.width, img.height, t.crop_fraction()), s, s, hwc.data());
      break;
    case Augment::ResizedCrop: {
      CropBox box = detail::random_resized_box(img.width, img.height, t, rng);
      crop_resize(img.pixels.data(), img.width, img.height, 3, box, s, s, hwc.data());
      mirror = t.flip() && rng.coin();
      break;
    }
    case Augment::PadCrop: {
      std::vector<float> full(hwc.size());
      crop_resize(img.pixels.data(), img.width, img.height, 3,
                  detail::centre_square(img.width, img.height, 1.0), s, s, full.data());
      const int pad = t.padding() < 0 ? s / 8 : t.padding();
      const int dx = static_cast<int>(rng.below(static_cast<uint64_t>(2 * pad + 1))) - pad;
      const int dy = static_cast<int>(rng.below(static_cast<uint64_t>(2 * pad + 1))) - pad;
      for (int y = 0; y < s; ++y) {
        for (int x = 0; x < s; ++x) {
          const int sy = y + dy, sx = x + dx;
          float* d = &hwc[(static_cast<size_t>(y) * s + x) * 3];
          if (sy < 0 || sy >= s || sx < 0 || sx >= s) {
            d[0] = d[1] = d[2] = 0.0f;  // zero padding, as torchvision's RandomCrop(padding=P)
          } else {
            const float* p = &full[(static_cast<size_t>(sy) * s + sx) * 3];
            d[0] = p[0];
            d[1] = p[1];
            d[2] = p[2];
          }
        }
      }
      mirror = t.flip() && rng.coin();
      break;
    }
  }
  const bool augmenting = t.augment() != Augment::None;
  if (augmenting && t.auto_augment().enabled()) {
    detail::auto_augment_hwc(hwc.data(), s, mirror, t.auto_augment(), rng);
    mirror = false;  // done on the 8-bit image, before the policy, as torchvision
  }
  detail::normalise_chw(hwc.data(), s, mirror, t, out);
  if (augmenting && t.erasing().enabled()) random_erase(out, 3, s, s, t.erasing(), rng);
}

RESNET_INLINE void TransformOptions::validate() const {
  RESNET_CHECK(size_ > 0 && size_ <= 4096, "transform: image size must be in [1, 4096], got ", size_);
  RESNET_CHECK(padding_ >= -1 && padding_ < 4 * size_, "transform: padding must be in [0, 4 * size), got ",
               padding_);
  RESNET_CHECK(scale_min_ > 0 && scale_min_ <= scale_max_ && scale_max_ <= 1.0,
               "transform: crop scale range must satisfy 0 < min <= max <= 1, got [", scale_min_, ", ",
               scale_max_, "]");
  RESNET_CHECK(ratio_min_ > 0 && ratio_min_ <= ratio_max_, "transform: bad aspect-ratio range [", ratio_min_,
               ", ", ratio_max_, "]");
  RESNET_CHECK(crop_fraction_ > 0 && crop_fraction_ <= 1.0,
               "transform: crop fraction must be in (0, 1], got ", crop_fraction_);
  for (float s : std_) RESNET_CHECK(s > 0, "transform: normalisation std must be positive");
  auto_augment_.validate();
  erasing_.validate();
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
