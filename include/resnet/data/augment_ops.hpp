// The image operations of torchvision's automatic augmentations (transforms/autoaugment.py's _apply_op) on
// 8-bit RGB images, computed as torchvision's tensor path computes them (functional_tensor.py): geometric
// operations by the inverse affine map sampled at pixel centres with nearest interpolation (grid_sample,
// align_corners=False) and `fill` outside; colour operations as float32 blends truncated to 8 bits. Each
// product and sum rounds to float32 on its own there (one tensor op each), so these functions are compiled
// without fused multiply-adds, which would round differently.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/data/image_decode.hpp"

#if defined(__clang__)
#define RESNET_EXACT_FLOAT_FN
#define RESNET_EXACT_FLOAT_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define RESNET_EXACT_FLOAT_FN __attribute__((optimize("fp-contract=off")))
#define RESNET_EXACT_FLOAT_BODY
#else
#define RESNET_EXACT_FLOAT_FN
#define RESNET_EXACT_FLOAT_BODY
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

// torchvision's operation set, in the order of its augmentation spaces (a policy draws an index into it).
enum class AugmentOp {
  Identity,
  ShearX,
  ShearY,
  TranslateX,
  TranslateY,
  Rotate,
  Brightness,
  Color,
  Contrast,
  Sharpness,
  Posterize,
  Solarize,
  AutoContrast,
  Equalize
};
constexpr int kAugmentOps = 14;

inline const char* augment_op_name(AugmentOp op) {
  static const char* names[kAugmentOps] = {
      "Identity", "ShearX",   "ShearY",    "TranslateX", "TranslateY", "Rotate",       "Brightness",
      "Color",    "Contrast", "Sharpness", "Posterize",  "Solarize",   "AutoContrast", "Equalize"};
  return names[static_cast<int>(op)];
}

using Fill = std::array<uint8_t, 3>;

namespace detail {

inline void check_rgb(const Image& img, const char* op) {
  RESNET_CHECK(img.channels == 3 && img.width > 0 && img.height > 0 &&
                   img.pixels.size() == static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * 3,
               op, ": expected an RGB image, got ", img.width, "x", img.height, "x", img.channels, " with ",
               img.pixels.size(), " bytes");
}

// torchvision's _get_inverse_affine_matrix (centre relative to the image centre), in double as Python does.
inline std::array<double, 6> inverse_affine(double cx, double cy, double angle, double tx, double ty,
                                            double shear_x, double shear_y) {
  const double deg = 3.141592653589793 / 180.0;  // CPython's math.radians factor
  const double rot = angle * deg, sx = shear_x * deg, sy = shear_y * deg;
  const double a = std::cos(rot - sy) / std::cos(sy);
  const double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
  const double c = std::sin(rot - sy) / std::cos(sy);
  const double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
  std::array<double, 6> m{d, -b, 0.0, -c, a, 0.0};
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
  return m;
}

// functional_tensor's _gen_affine_grid + grid_sample(mode="nearest", align_corners=False) in float32.
RESNET_EXACT_FLOAT_FN inline void affine_nearest(Image& img, const std::array<double, 6>& m,
                                                 const Fill& fill) {
  RESNET_EXACT_FLOAT_BODY
  const int w = img.width, h = img.height;
  const float hw = 0.5f * static_cast<float>(w), hh = 0.5f * static_cast<float>(h);
  const float r00 = static_cast<float>(m[0]) / hw, r01 = static_cast<float>(m[1]) / hw,
              r02 = static_cast<float>(m[2]) / hw;
  const float r10 = static_cast<float>(m[3]) / hh, r11 = static_cast<float>(m[4]) / hh,
              r12 = static_cast<float>(m[5]) / hh;
  std::vector<uint8_t> out(img.pixels.size());
  for (int i = 0; i < h; ++i) {
    const float yb = static_cast<float>(i) - hh + 0.5f;
    for (int j = 0; j < w; ++j) {
      const float xb = static_cast<float>(j) - hw + 0.5f;
      const float gx = std::fma(yb, r01, xb * r00) + r02, gy = std::fma(yb, r11, xb * r10) + r12;
      const float ix = std::nearbyint((gx + 1.0f) * hw - 0.5f), iy = std::nearbyint((gy + 1.0f) * hh - 0.5f);
      uint8_t* o = &out[(static_cast<size_t>(i) * w + j) * 3];
      if (ix >= 0 && ix < static_cast<float>(w) && iy >= 0 && iy < static_cast<float>(h)) {
        const uint8_t* s = &img.pixels[(static_cast<size_t>(iy) * w + static_cast<size_t>(ix)) * 3];
        o[0] = s[0], o[1] = s[1], o[2] = s[2];
      } else {
        o[0] = fill[0], o[1] = fill[1], o[2] = fill[2];
      }
    }
  }
  img.pixels.swap(out);
}

// A float32 value clamped to [0, 255] and truncated, as .clamp(0, 255).to(torch.uint8).
inline uint8_t to_u8(float v) { return static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, v))); }

// rgb_to_grayscale: 0.2989 r + 0.587 g + 0.114 b in float32, truncated.
RESNET_EXACT_FLOAT_FN inline std::vector<uint8_t> grey(const Image& img) {
  RESNET_EXACT_FLOAT_BODY
  std::vector<uint8_t> g(img.pixels.size() / 3);
  for (size_t i = 0; i < g.size(); ++i) {
    const uint8_t* p = &img.pixels[i * 3];
    const float a = 0.2989f * p[0], b = 0.587f * p[1], c = 0.114f * p[2];
    g[i] = static_cast<uint8_t>((a + b) + c);
  }
  return g;
}

// _blend(img, other, ratio): ratio * img + (1 - ratio) * other; other[i * pixel_step + c * channel_step]
// holds channel c of pixel i (steps of 0: one value for all).
RESNET_EXACT_FLOAT_FN inline void blend(Image& img, const float* other, size_t pixel_step,
                                        size_t channel_step, double ratio) {
  RESNET_EXACT_FLOAT_BODY
  const float r = static_cast<float>(ratio), q = static_cast<float>(1.0 - ratio);
  const size_t n = img.pixels.size() / 3;
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < 3; ++c) {
      uint8_t& p = img.pixels[i * 3 + c];
      const float s = r * static_cast<float>(p), o = q * other[i * pixel_step + c * channel_step];
      p = to_u8(s + o);
    }
}

// The 3x3 smoothing of adjust_sharpness (centre 5, neighbours 1, over 13), rounded; the border kept.
RESNET_EXACT_FLOAT_FN inline std::vector<float> blurred(const Image& img) {
  RESNET_EXACT_FLOAT_BODY
  const int w = img.width, h = img.height;
  const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
  std::vector<float> out(img.pixels.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = img.pixels[i];
  for (int y = 1; y + 1 < h; ++y)
    for (int x = 1; x + 1 < w; ++x)
      for (int c = 0; c < 3; ++c) {
        float acc = 0.0f;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            const float v = img.pixels[(static_cast<size_t>(y + dy) * w + (x + dx)) * 3 + c];
            acc += v * (dx == 0 && dy == 0 ? k5 : k1);
          }
        out[(static_cast<size_t>(y) * w + x) * 3 + c] = std::nearbyint(acc);
      }
  return out;
}

// _scale_channel: the histogram equalisation of one channel (a lookup table built from the histogram).
inline void equalize_channel(Image& img, int c) {
  int64_t hist[256] = {0};
  const size_t n = img.pixels.size() / 3;
  for (size_t i = 0; i < n; ++i) ++hist[img.pixels[i * 3 + static_cast<size_t>(c)]];
  int last = 255;
  while (last > 0 && hist[last] == 0) --last;
  int64_t nonzero_but_last = 0;
  for (int v = 0; v < last; ++v) nonzero_but_last += hist[v];
  const int64_t step = nonzero_but_last / 255;
  if (step == 0) return;
  uint8_t lut[256];
  int64_t cum = 0;
  for (int v = 0; v < 256;
       ++v) {  // the table shifted by one: entry v is (cumsum up to v - 1 + step / 2) / step
    lut[v] = static_cast<uint8_t>(std::min<int64_t>(255, (cum + step / 2) / step));
    cum += hist[v];
  }
  for (size_t i = 0; i < n; ++i) {
    uint8_t& p = img.pixels[i * 3 + static_cast<size_t>(c)];
    p = lut[p];
  }
}

RESNET_EXACT_FLOAT_FN inline void autocontrast(Image& img) {
  RESNET_EXACT_FLOAT_BODY
  const size_t n = img.pixels.size() / 3;
  for (int c = 0; c < 3; ++c) {
    uint8_t lo = 255, hi = 0;
    for (size_t i = 0; i < n; ++i) {
      lo = std::min(lo, img.pixels[i * 3 + static_cast<size_t>(c)]);
      hi = std::max(hi, img.pixels[i * 3 + static_cast<size_t>(c)]);
    }
    if (lo == hi) continue;  // torchvision's infinite scale: minimum 0, scale 1, the channel unchanged
    // bound / tensor is tensor.reciprocal() * bound in torch
    const float minimum = lo, scale = (1.0f / (static_cast<float>(hi) - minimum)) * 255.0f;
    for (size_t i = 0; i < n; ++i) {
      uint8_t& p = img.pixels[i * 3 + static_cast<size_t>(c)];
      p = to_u8((static_cast<float>(p) - minimum) * scale);
    }
  }
}

}  // namespace detail

// Applies `op` at `magnitude` (the signed value a policy draws, as _apply_op takes it) to `img` in place.
RESNET_EXACT_FLOAT_FN inline void apply_augment_op(Image& img, AugmentOp op, double magnitude,
                                                   const Fill& fill = Fill{0, 0, 0}) {
  RESNET_EXACT_FLOAT_BODY
  detail::check_rgb(img, augment_op_name(op));
  const double to_deg = 180.0 / 3.141592653589793;             // CPython's math.degrees factor
  const double cx = -0.5 * img.width, cy = -0.5 * img.height;  // shears pivot on the top-left corner
  switch (op) {
    case AugmentOp::Identity:
      return;
    case AugmentOp::ShearX:
      return detail::affine_nearest(
          img, detail::inverse_affine(cx, cy, 0, 0, 0, std::atan(magnitude) * to_deg, 0), fill);
    case AugmentOp::ShearY:
      return detail::affine_nearest(
          img, detail::inverse_affine(cx, cy, 0, 0, 0, 0, std::atan(magnitude) * to_deg), fill);
    case AugmentOp::TranslateX:
      return detail::affine_nearest(
          img, detail::inverse_affine(0, 0, 0, static_cast<double>(static_cast<int64_t>(magnitude)), 0, 0, 0),
          fill);
    case AugmentOp::TranslateY:
      return detail::affine_nearest(
          img, detail::inverse_affine(0, 0, 0, 0, static_cast<double>(static_cast<int64_t>(magnitude)), 0, 0),
          fill);
    case AugmentOp::Rotate:  // F.rotate turns counter-clockwise: the affine angle is -magnitude
      return detail::affine_nearest(img, detail::inverse_affine(0, 0, -magnitude, 0, 0, 0, 0), fill);
    case AugmentOp::Brightness: {
      const float zero = 0.0f;
      return detail::blend(img, &zero, 0, 0, 1.0 + magnitude);
    }
    case AugmentOp::Color: {
      const std::vector<uint8_t> g8 = detail::grey(img);
      const std::vector<float> g(g8.begin(), g8.end());
      return detail::blend(img, g.data(), 1, 0, 1.0 + magnitude);
    }
    case AugmentOp::Contrast: {
      const std::vector<uint8_t> g = detail::grey(img);
      double sum = 0;  // integers: exact, as torch's float32 sum is below 2^24
      for (uint8_t v : g) sum += v;
      const float mean = static_cast<float>(sum) / static_cast<float>(g.size());
      return detail::blend(img, &mean, 0, 0, 1.0 + magnitude);
    }
    case AugmentOp::Sharpness: {
      if (img.width <= 2 || img.height <= 2) return;
      const std::vector<float> b = detail::blurred(img);
      return detail::blend(img, b.data(), 3, 1, 1.0 + magnitude);
    }
    case AugmentOp::Posterize: {
      const int bits = static_cast<int>(magnitude);
      RESNET_CHECK(bits >= 0 && bits <= 8, "Posterize: bits must be in [0, 8], got ", bits);
      const uint8_t mask = static_cast<uint8_t>(0x100 - (1 << (8 - bits)));
      for (uint8_t& p : img.pixels) p &= mask;
      return;
    }
    case AugmentOp::Solarize: {
      const float t = static_cast<float>(magnitude);
      for (uint8_t& p : img.pixels)
        if (static_cast<float>(p) >= t) p = static_cast<uint8_t>(255 - p);
      return;
    }
    case AugmentOp::AutoContrast:
      return detail::autocontrast(img);
    case AugmentOp::Equalize:
      for (int c = 0; c < 3; ++c) detail::equalize_channel(img, c);
      return;
  }
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
