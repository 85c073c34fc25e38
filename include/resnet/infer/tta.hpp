// Test-time augmentation by horizontal flip: the prediction for an image is the mean of the softmax
// probabilities of the image and of its mirror image. Probabilities, not logits: the mean of two
// distributions is the mixture of the two predictions, each weighted as much as the other, whereas the mean
// of the logits is their renormalised geometric mean, in which one view that gives a class almost no
// probability vetoes it whatever the other view says. What evaluation and the Classifier report as logits
// with it on is the log of the mean probabilities (its softmax is the mean again).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace infer {

// Images [N, C, H, W] (any device) mirrored left-right, on the CPU.
Tensor<float> flip_images(const Tensor<float>& x);

// The mean of two rows of probabilities, element by element: (a + b) * 0.5 in float.
std::vector<float> mean_probabilities(const std::vector<float>& a, const std::vector<float>& b);

// The natural log of each value of a CPU tensor.
Tensor<float> log_values(const Tensor<float>& p);

// Softmax of each row of n x k logits, in double.
std::vector<double> softmax_rows(const std::vector<float>& logits, int64_t n, int64_t k);

// log of the mean of softmax(a) and softmax(b), row by row (n x k each), in double.
std::vector<double> flip_mean_log_probabilities(const std::vector<float>& a, const std::vector<float>& b,
                                                int64_t n, int64_t k);

}  // namespace infer
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/infer/tta_inl.hpp"
#endif
