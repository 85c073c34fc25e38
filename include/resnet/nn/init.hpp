// Weight initialisation, as torchvision's ResNet does it: Kaiming-normal (fan_out, ReLU gain) for
// convolutions, and PyTorch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for Linear.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>

#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace nn {
namespace init {

template <typename P>
Tensor<P> kaiming_normal_fan_out(const Shape& conv_weight_shape, Generator& gen) {
  const int64_t fan_out = conv_weight_shape[0] * conv_weight_shape[2] * conv_weight_shape[3];
  const double stddev = std::sqrt(2.0 / static_cast<double>(fan_out));
  return Tensor<P>::randn(conv_weight_shape, gen, 0.0, stddev);
}

template <typename P>
Tensor<P> uniform_fan_in(const Shape& shape, int64_t fan_in, Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return Tensor<P>::uniform(shape, -bound, bound, gen);
}

}  // namespace init
}  // namespace nn
}  // namespace RESNET_ABI
}  // namespace resnet
