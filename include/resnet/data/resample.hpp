// Crop-and-resize of 8-bit HWC images with an antialiased bilinear (triangle) filter, the way PIL resizes:
// when shrinking, the filter widens with the scale so every source pixel contributes (plain bilinear would
// alias when a 200-pixel photo becomes a 64-pixel crop). Separable: a horizontal pass over the rows the crop
// needs, then a vertical pass. Written by hand because it is a few dozen lines and runs in the loader's inner
// loop; the output is float in [0, 255], HWC, ready for normalisation.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

// A rectangle in source pixel coordinates (pixel i covers [i, i + 1)); fractional edges are allowed.
struct CropBox {
  double x = 0, y = 0, width = 0, height = 0;
};

namespace detail {

// For each output position along one axis: the first source index and the normalised filter weights.
struct ResampleTaps {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;  // out_size * max_taps, row o holds count[o] weights
  int max_taps = 0;
};

inline ResampleTaps resample_taps(int in_size, double start, double length, int out_size) {
  ResampleTaps t;
  const double scale = length / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle filter reaches one (scaled) pixel either side
  t.max_taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<size_t>(out_size));
  t.count.resize(static_cast<size_t>(out_size));
  t.weights.assign(static_cast<size_t>(out_size) * static_cast<size_t>(t.max_taps), 0.0f);
  for (int o = 0; o < out_size; ++o) {
    const double center = start + (o + 0.5) * scale;
    int lo = std::max(static_cast<int>(std::floor(center - support + 0.5)), 0);
    int hi = std::min(static_cast<int>(std::floor(center + support + 0.5)), in_size);
    if (hi <= lo) {  // a centre outside the image: take the nearest edge pixel
      lo = std::min(std::max(static_cast<int>(std::floor(center)), 0), in_size - 1);
      hi = lo + 1;
    }
    hi = std::min(hi, lo + t.max_taps);
    float* w = &t.weights[static_cast<size_t>(o) * static_cast<size_t>(t.max_taps)];
    double total = 0.0;
    for (int i = lo; i < hi; ++i) {
      double d = std::abs((i + 0.5 - center) / filter_scale);
      double v = d < 1.0 ? 1.0 - d : 0.0;
      w[i - lo] = static_cast<float>(v);
      total += v;
    }
    if (total <= 0.0) {  // only possible at a degenerate edge: fall back to the nearest pixel
      std::fill(w, w + (hi - lo), 0.0f);
      w[0] = 1.0f;
      total = 1.0;
    }
    for (int i = 0; i < hi - lo; ++i) w[i] = static_cast<float>(w[i] / total);
    t.first[static_cast<size_t>(o)] = lo;
    t.count[static_cast<size_t>(o)] = hi - lo;
  }
  return t;
}

}  // namespace detail

// Resamples `box` of the src image (width x height x channels, 8-bit, row-major HWC) to out_w x out_h; writes
// out_h * out_w * channels floats in [0, 255] to `out` (HWC).
inline void crop_resize(const uint8_t* src, int width, int height, int channels, const CropBox& box,
                        int out_w, int out_h, float* out) {
  RESNET_CHECK(width > 0 && height > 0 && channels > 0, "crop_resize: empty source image ", width, "x",
               height, "x", channels);
  RESNET_CHECK(out_w > 0 && out_h > 0, "crop_resize: output size must be positive, got ", out_w, "x", out_h);
  RESNET_CHECK(box.width > 0 && box.height > 0, "crop_resize: empty crop box ", box.width, "x", box.height);
  const auto tx = detail::resample_taps(width, box.x, box.width, out_w);
  const auto ty = detail::resample_taps(height, box.y, box.height, out_h);
  int row_lo = height, row_hi = 0;
  for (int o = 0; o < out_h; ++o) {
    row_lo = std::min(row_lo, ty.first[static_cast<size_t>(o)]);
    row_hi = std::max(row_hi, ty.first[static_cast<size_t>(o)] + ty.count[static_cast<size_t>(o)]);
  }
  const size_t row_len = static_cast<size_t>(out_w) * static_cast<size_t>(channels);
  std::vector<float> rows(static_cast<size_t>(row_hi - row_lo) * row_len);
  // Horizontal pass: each needed source row -> out_w pixels.
  for (int y = row_lo; y < row_hi; ++y) {
    const uint8_t* s =
        src + static_cast<size_t>(y) * static_cast<size_t>(width) * static_cast<size_t>(channels);
    float* r = &rows[static_cast<size_t>(y - row_lo) * row_len];
    for (int o = 0; o < out_w; ++o) {
      const float* w = &tx.weights[static_cast<size_t>(o) * static_cast<size_t>(tx.max_taps)];
      const int first = tx.first[static_cast<size_t>(o)], n = tx.count[static_cast<size_t>(o)];
      for (int c = 0; c < channels; ++c) {
        float acc = 0.0f;
        for (int k = 0; k < n; ++k) acc += w[k] * static_cast<float>(s[(first + k) * channels + c]);
        r[o * channels + c] = acc;
      }
    }
  }
  // Vertical pass.
  for (int o = 0; o < out_h; ++o) {
    const float* w = &ty.weights[static_cast<size_t>(o) * static_cast<size_t>(ty.max_taps)];
    const int first = ty.first[static_cast<size_t>(o)], n = ty.count[static_cast<size_t>(o)];
    float* d = out + static_cast<size_t>(o) * row_len;
    std::fill(d, d + row_len, 0.0f);
    for (int k = 0; k < n; ++k) {
      const float* r = &rows[static_cast<size_t>(first + k - row_lo) * row_len];
      const float wk = w[k];
      for (size_t i = 0; i < row_len; ++i) d[i] += wk * r[i];
    }
  }
}

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
