// Random erasing (Zhong et al.; torchvision's RandomErasing) on a normalised CHW image: with probability
// p, a box of random area (scale x the image's) and log-uniform aspect ratio is overwritten by 0 (the
// normalised mean) or, with random_value, by standard normal noise. Ten tries at a box that fits, else no
// change, as torchvision. The draws come from the sample's SampleRng (sample_rng.hpp).
#pragma once

#include "resnet/core/compiled_mode.hpp"
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
  void validate() const;
};

// The box erased (height 0: none).
struct ErasedBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// A standard normal draw (Box-Muller).
double normal(SampleRng& rng);

// Erases one box of the channels x height x width image at `chw` (with probability p).
ErasedBox random_erase(float* chw, int channels, int height, int width, const RandomErasingOptions& o,
                       SampleRng& rng);

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/data/random_erasing_inl.hpp"
#endif
