// Automatic augmentation policies over torchvision's operation set (data/augment_ops.hpp), with
// torchvision 0.14's magnitudes and bins (transforms/autoaugment.py):
//   TrivialAugmentWide: one operation drawn uniformly, a magnitude drawn uniformly from its bins, a random
//                       sign for the signed ones;
//   RandAugment:        num_ops operations drawn uniformly, each at bin `magnitude` of num_magnitude_bins,
//                       a random sign for the signed ones.
// The draws come from the sample's SampleRng in torchvision's order (operation, magnitude bin, sign), so a
// sample's augmentation is fixed by its seed.
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

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

enum class AutoAugmentPolicy { None, TrivialAugmentWide, RandAugment };

inline std::string auto_augment_name(AutoAugmentPolicy p) {
  switch (p) {
    case AutoAugmentPolicy::TrivialAugmentWide:
      return "trivialaugment";
    case AutoAugmentPolicy::RandAugment:
      return "randaugment";
    default:
      return "none";
  }
}
inline AutoAugmentPolicy parse_auto_augment(const std::string& s) {
  if (s == "trivialaugment" || s == "ta_wide") return AutoAugmentPolicy::TrivialAugmentWide;
  if (s == "randaugment" || s == "ra") return AutoAugmentPolicy::RandAugment;
  if (s == "none") return AutoAugmentPolicy::None;
  RESNET_FAIL("unknown automatic augmentation '", s, "' (expected trivialaugment, randaugment or none)");
}

struct AutoAugmentOptions {
  RESNET_ARG(AutoAugmentPolicy, policy) = AutoAugmentPolicy::None;
  RESNET_ARG(int, num_ops) = 2;              // RandAugment: operations per image
  RESNET_ARG(int, magnitude) = 9;            // RandAugment: the bin every operation uses
  RESNET_ARG(int, num_magnitude_bins) = 31;  // both policies
  RESNET_ARG(Fill, fill) = Fill{0, 0, 0};    // geometric operations: the colour outside the image

 public:
  bool enabled() const { return policy_ != AutoAugmentPolicy::None; }
  void validate() const {
    if (!enabled()) return;
    RESNET_CHECK(num_magnitude_bins_ >= 2 && num_magnitude_bins_ <= 1000,
                 "auto augment: magnitude bins must be in [2, 1000], got ", num_magnitude_bins_);
    RESNET_CHECK(num_ops_ >= 1 && num_ops_ <= 16,
                 "auto augment: RandAugment's operations per image must be in ", "[1, 16], got ", num_ops_);
    RESNET_CHECK(magnitude_ >= 0 && magnitude_ < num_magnitude_bins_,
                 "auto augment: RandAugment's magnitude ", magnitude_, " is not a bin of [0, ",
                 num_magnitude_bins_, ")");
  }
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
inline OpMagnitudes augment_magnitudes(AutoAugmentPolicy policy, AugmentOp op, int bins, int width,
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

// One drawn operation: what a policy applies.
struct DrawnOp {
  AugmentOp op = AugmentOp::Identity;
  double magnitude = 0;
};

// The operations the policy draws for a width x height image, in order.
inline std::vector<DrawnOp> draw_auto_augment(const AutoAugmentOptions& o, int width, int height,
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

// Draws the policy's operations and applies them to `img` in place.
inline void apply_auto_augment(Image& img, const AutoAugmentOptions& o, SampleRng& rng) {
  for (const DrawnOp& d : draw_auto_augment(o, img.width, img.height, rng))
    apply_augment_op(img, d.op, d.magnitude, o.fill());
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
