// The definitions of random_erasing.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/data/data.cpp). Not for direct inclusion.
#pragma once

#include "resnet/core/abi.hpp"
#include <cmath>
#include <cstdint>
#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/data/sample_rng.hpp"
#include "resnet/data/random_erasing.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {
RESNET_INLINE double normal(SampleRng& rng) {
  const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();  // u1 in (0, 1]
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

RESNET_INLINE ErasedBox random_erase(float* chw, int channels, int height, int width,
                                     const RandomErasingOptions& o, SampleRng& rng) {
  ErasedBox box;
  if (!o.enabled() || rng.uniform() >= o.p()) return box;
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(o.ratio_min()), log_hi = std::log(o.ratio_max());
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(o.scale_min(), o.scale_max());
    const double ratio = std::exp(rng.uniform(log_lo, log_hi));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target * ratio)));  // Python's round: to even
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target / ratio)));
    if (!(h < height && w < width)) continue;
    box.height = h;
    box.width = w;
    box.top = static_cast<int>(rng.below(static_cast<uint64_t>(height - h + 1)));
    box.left = static_cast<int>(rng.below(static_cast<uint64_t>(width - w + 1)));
    for (int c = 0; c < channels; ++c)
      for (int y = box.top; y < box.top + h; ++y) {
        float* row = chw + (static_cast<size_t>(c) * height + y) * width;
        for (int x = box.left; x < box.left + w; ++x)
          row[x] = o.random_value() ? static_cast<float>(normal(rng)) : 0.0f;
      }
    return box;
  }
  return box;
}

RESNET_INLINE void RandomErasingOptions::validate() const {
  RESNET_CHECK(p_ >= 0 && p_ <= 1, "random erasing: probability must be in [0, 1], got ", p_);
  RESNET_CHECK(scale_min_ > 0 && scale_min_ <= scale_max_ && scale_max_ <= 1,
               "random erasing: scale range must satisfy 0 < min <= max <= 1, got [", scale_min_, ", ",
               scale_max_, "]");
  RESNET_CHECK(ratio_min_ > 0 && ratio_min_ <= ratio_max_, "random erasing: bad aspect-ratio range [",
               ratio_min_, ", ", ratio_max_, "]");
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
