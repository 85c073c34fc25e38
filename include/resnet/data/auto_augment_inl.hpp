// The definitions of auto_augment.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/data/data.cpp). Not for direct inclusion.
#pragma once

#include "resnet/core/abi.hpp"
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>
#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/data/augment_ops.hpp"
#include "resnet/data/sample_rng.hpp"
#include "resnet/data/auto_augment.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {
RESNET_INLINE std::string auto_augment_name(AutoAugmentPolicy p) {
  switch (p) {
    case AutoAugmentPolicy::TrivialAugmentWide:
      return "trivialaugment";
    case AutoAugmentPolicy::RandAugment:
      return "randaugment";
    default:
      return "none";
  }
}

RESNET_INLINE AutoAugmentPolicy parse_auto_augment(const std::string& s) {
  if (s == "trivialaugment" || s == "ta_wide") return AutoAugmentPolicy::TrivialAugmentWide;
  if (s == "randaugment" || s == "ra") return AutoAugmentPolicy::RandAugment;
  if (s == "none") return AutoAugmentPolicy::None;
  RESNET_FAIL("unknown automatic augmentation '", s, "' (expected trivialaugment, randaugment or none)");
}

namespace detail {}  // namespace detail
RESNET_INLINE OpMagnitudes augment_magnitudes(AutoAugmentPolicy policy, AugmentOp op, int bins, int width,
                                              int height) {
  const bool ta = policy == AutoAugmentPolicy::TrivialAugmentWide;
  using detail::linspace_f32;
  switch (op) {
    case AugmentOp::ShearX:
    case AugmentOp::ShearY:
      return {linspace_f32(0.0, ta ? 0.99 : 0.3, bins), true};
    case AugmentOp::TranslateX:
      return {linspace_f32(0.0, ta ? 32.0 : 150.0 / 331.0 * width, bins), true};
    case AugmentOp::TranslateY:
      return {linspace_f32(0.0, ta ? 32.0 : 150.0 / 331.0 * height, bins), true};
    case AugmentOp::Rotate:
      return {linspace_f32(0.0, ta ? 135.0 : 30.0, bins), true};
    case AugmentOp::Brightness:
    case AugmentOp::Color:
    case AugmentOp::Contrast:
    case AugmentOp::Sharpness:
      return {linspace_f32(0.0, ta ? 0.99 : 0.9, bins), true};
    case AugmentOp::Posterize: {  // 8 - round(i / ((bins - 1) / q)) in float32, q = 6 or 4
      std::vector<float> v(static_cast<size_t>(bins));
      const float d = static_cast<float>((bins - 1) / (ta ? 6.0 : 4.0));
      for (int i = 0; i < bins; ++i)
        v[static_cast<size_t>(i)] = 8.0f - std::nearbyint(static_cast<float>(i) / d);
      return {v, false};
    }
    case AugmentOp::Solarize:
      return {linspace_f32(255.0, 0.0, bins), false};
    default:  // Identity, AutoContrast, Equalize
      return {{}, false};
  }
}

RESNET_INLINE std::vector<DrawnOp> draw_auto_augment(const AutoAugmentOptions& o, int width, int height,
                                                     SampleRng& rng) {
  std::vector<DrawnOp> ops;
  if (!o.enabled()) return ops;
  const bool ta = o.policy() == AutoAugmentPolicy::TrivialAugmentWide;
  const int n = ta ? 1 : o.num_ops();
  for (int k = 0; k < n; ++k) {
    DrawnOp d;
    d.op = static_cast<AugmentOp>(rng.below(kAugmentOps));
    const OpMagnitudes m = augment_magnitudes(o.policy(), d.op, o.num_magnitude_bins(), width, height);
    if (!m.values.empty()) {
      const size_t bin =
          ta ? static_cast<size_t>(rng.below(m.values.size())) : static_cast<size_t>(o.magnitude());
      d.magnitude = static_cast<double>(m.values[bin]);
    }
    if (m.is_signed && rng.coin()) d.magnitude = -d.magnitude;
    ops.push_back(d);
  }
  return ops;
}

RESNET_INLINE void apply_auto_augment(Image& img, const AutoAugmentOptions& o, SampleRng& rng) {
  for (const DrawnOp& d : draw_auto_augment(o, img.width, img.height, rng))
    apply_augment_op(img, d.op, d.magnitude, o.fill());
}

RESNET_INLINE void AutoAugmentOptions::validate() const {
  if (!enabled()) return;
  RESNET_CHECK(num_magnitude_bins_ >= 2 && num_magnitude_bins_ <= 1000,
               "auto augment: magnitude bins must be in [2, 1000], got ", num_magnitude_bins_);
  RESNET_CHECK(num_ops_ >= 1 && num_ops_ <= 16,
               "auto augment: RandAugment's operations per image must be in ", "[1, 16], got ", num_ops_);
  RESNET_CHECK(magnitude_ >= 0 && magnitude_ < num_magnitude_bins_, "auto augment: RandAugment's magnitude ",
               magnitude_, " is not a bin of [0, ", num_magnitude_bins_, ")");
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
