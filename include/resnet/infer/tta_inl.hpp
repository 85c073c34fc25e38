// The definitions of tta.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/infer/tta.cpp). Not for direct inclusion.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/infer/tta.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace infer {

RESNET_INLINE Tensor<float> flip_images(const Tensor<float>& x) {
  RESNET_CHECK(x.defined() && x.rank() == 4, "flip_images: expected images [N, C, H, W], got ",
               x.defined() ? x.shape().to_string() : std::string("undefined"));
  std::vector<float> v = x.to(Device::cpu()).to_vector();
  const int64_t w = x.dim(3), rows = x.numel() / w;
  for (int64_t r = 0; r < rows; ++r) std::reverse(v.begin() + r * w, v.begin() + (r + 1) * w);
  return Tensor<float>::from_vector(v, x.shape());
}

RESNET_INLINE std::vector<float> mean_probabilities(const std::vector<float>& a,
                                                    const std::vector<float>& b) {
  RESNET_CHECK(a.size() == b.size(), "mean_probabilities: ", a.size(), " and ", b.size(), " values");
  std::vector<float> p(a.size());
  for (size_t i = 0; i < a.size(); ++i) p[i] = (a[i] + b[i]) * 0.5f;
  return p;
}

RESNET_INLINE Tensor<float> log_values(const Tensor<float>& p) {
  std::vector<float> v = p.to_vector();
  for (float& x : v) x = std::log(x);
  return Tensor<float>::from_vector(v, p.shape());
}

RESNET_INLINE std::vector<double> softmax_rows(const std::vector<float>& logits, int64_t n, int64_t k) {
  std::vector<double> p(logits.size());
  for (int64_t i = 0; i < n; ++i) {
    const float* l = &logits[static_cast<size_t>(i * k)];
    double* o = &p[static_cast<size_t>(i * k)];
    const double m = *std::max_element(l, l + k);
    double s = 0;
    for (int64_t c = 0; c < k; ++c) s += o[c] = std::exp(static_cast<double>(l[c]) - m);
    for (int64_t c = 0; c < k; ++c) o[c] /= s;
  }
  return p;
}

RESNET_INLINE std::vector<double> flip_mean_log_probabilities(const std::vector<float>& a,
                                                              const std::vector<float>& b, int64_t n,
                                                              int64_t k) {
  RESNET_CHECK(a.size() == b.size() && a.size() == static_cast<size_t>(n * k), "flip average: ", a.size(),
               " and ", b.size(), " logits for ", n, " x ", k);
  const std::vector<double> pa = softmax_rows(a, n, k), pb = softmax_rows(b, n, k);
  std::vector<double> out(pa.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = std::log(0.5 * (pa[i] + pb[i]));
  return out;
}

}  // namespace infer
}  // namespace RESNET_ABI
}  // namespace resnet
