// Random erasing (Zhong et al.; torchvision's RandomErasing) on a normalised CHW image: with probability
// p, a box of random area (scale x the image's) and log-uniform aspect ratio is overwritten by 0 (the
// normalised mean) or, with random_value, by standard normal noise. Ten tries at a box that fits, else no
// change, as torchvision. The draws come from the sample's SampleRng (sample_rng.hpp).
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <cstdint>

#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/data/sample_rng.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

struct RandomErasingOptions {
  RESNET_ARG(double, p) = 0.0;  // 0: off (torchvision's default is 0.5 once the transform is added)
  RESNET_ARG(double, scale_min) = 0.02;
  RESNET_ARG(double, scale_max) = 0.33;
  RESNET_ARG(double, ratio_min) = 0.3;
  RESNET_ARG(double, ratio_max) = 3.3;
  RESNET_ARG(bool, random_value) = false;  // true: noise (torchvision's value="random"); false: 0

 public:
  bool enabled() const { return p_ > 0; }
  void validate() const {
    RESNET_CHECK(p_ >= 0 && p_ <= 1, "random erasing: probability must be in [0, 1], got ", p_);
    RESNET_CHECK(scale_min_ > 0 && scale_min_ <= scale_max_ && scale_max_ <= 1,
                 "random erasing: scale range must satisfy 0 < min <= max <= 1, got [", scale_min_, ", ",
                 scale_max_, "]");
    RESNET_CHECK(ratio_min_ > 0 && ratio_min_ <= ratio_max_, "random erasing: bad aspect-ratio range [",
                 ratio_min_, ", ", ratio_max_, "]");
  }
};

// The box erased (height 0: none).
struct ErasedBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// A standard normal draw (Box-Muller).
inline double normal(SampleRng& rng) {
  const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();  // u1 in (0, 1]
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Erases one box of the channels x height x width image at `chw` (with probability p).
inline ErasedBox random_erase(float* chw, int channels, int height, int width, const RandomErasingOptions& o,
                              SampleRng& rng) {
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

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
