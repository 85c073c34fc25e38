// Automatic augmentation policies over torchvision's operation set (data/augment_ops.hpp), with
// torchvision 0.14's magnitudes and bins (transforms/autoaugment.py):
//   TrivialAugmentWide: one operation drawn uniformly, a magnitude drawn uniformly from its bins, a random
//                       sign for the signed ones;
//   RandAugment:        num_ops operations drawn uniformly, each at bin `magnitude` of num_magnitude_bins,
//                       a random sign for the signed ones.
// The draws come from the sample's SampleRng in torchvision's order (operation, magnitude bin, sign), so a
// sample's augmentation is fixed by its seed.
#pragma once

#include "resnet/core/compiled_mode.hpp"
#include "resnet/core/abi.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/data/augment_ops.hpp"
#include "resnet/data/sample_rng.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

enum class AutoAugmentPolicy { None, TrivialAugmentWide, RandAugment };

std::string auto_augment_name(AutoAugmentPolicy p);
AutoAugmentPolicy parse_auto_augment(const std::string& s);

struct AutoAugmentOptions {
  RESNET_ARG(AutoAugmentPolicy, policy) = AutoAugmentPolicy::None;
  RESNET_ARG(int, num_ops) = 2;              // RandAugment: operations per image
  RESNET_ARG(int, magnitude) = 9;            // RandAugment: the bin every operation uses
  RESNET_ARG(int, num_magnitude_bins) = 31;  // both policies
  RESNET_ARG(Fill, fill) = Fill{0, 0, 0};    // geometric operations: the colour outside the image

 public:
  bool enabled() const { return policy_ != AutoAugmentPolicy::None; }
  void validate() const;
};

namespace detail {

// torch.linspace(start, end, steps) in float32 as ATen's CPU kernel computes it with its default 32-byte
// vectors (AVX2, and the generic ones): blocks of 16 values as two vectors, each vector's base taken from
// the nearer end and the next 7 values base + k * step (rounded twice); the rest one by one from the nearer
// end. Values from an end are one fused multiply-add, as ATen's AVX2 kernels are built (found by
// comparison). Which it is matters: TranslateX's bin 15 of 32 px is 16.0 this way and 15.999999 another,
// which int() makes 15.
RESNET_EXACT_FLOAT_FN inline std::vector<float> linspace_f32(double start, double end, int steps) {
  RESNET_EXACT_FLOAT_BODY
  const float s = static_cast<float>(start), e = static_cast<float>(end);
  const float step = (e - s) / static_cast<float>(steps - 1);
  const int half = steps / 2, lanes = 8;
  auto from_end = [&](int i) {
    return i < half ? std::fma(step, static_cast<float>(i), s)
                    : std::fma(-step, static_cast<float>(steps - i - 1), e);
  };
  std::vector<float> v(static_cast<size_t>(steps));
  int i = 0;
  for (; i + 2 * lanes <= steps; i += 2 * lanes)
    for (int vec = 0; vec < 2; ++vec) {
      const float base = from_end(i + vec * lanes);
      for (int k = 0; k < lanes; ++k)
        v[static_cast<size_t>(i + vec * lanes + k)] = base + static_cast<float>(k) * step;
    }
  for (; i < steps; ++i) v[static_cast<size_t>(i)] = from_end(i);
  return v;
}

}  // namespace detail

struct OpMagnitudes {
  std::vector<float> values;  // empty: the operation takes no magnitude (0)
  bool is_signed = false;
};

// The magnitudes of `op` under `policy` with `bins` bins for a width x height image (RandAugment's
// translations scale with the image), as torchvision's _augmentation_space gives them.
OpMagnitudes augment_magnitudes(AutoAugmentPolicy policy, AugmentOp op, int bins, int width, int height);

// One drawn operation: what a policy applies.
struct DrawnOp {
  AugmentOp op = AugmentOp::Identity;
  double magnitude = 0;
};

// The operations the policy draws for a width x height image, in order.
std::vector<DrawnOp> draw_auto_augment(const AutoAugmentOptions& o, int width, int height, SampleRng& rng);

// Draws the policy's operations and applies them to `img` in place.
void apply_auto_augment(Image& img, const AutoAugmentOptions& o, SampleRng& rng);

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/data/auto_augment_inl.hpp"
#endif
