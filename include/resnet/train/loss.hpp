// The training loss as a part of the Trainer (Trainer::set_loss): any function of a batch's logits and
// labels that returns the scalar tensor the step differentiates. The default is cross-entropy with the
// options' label smoothing; evaluation reports the plain cross-entropy whatever the training loss is, so
// test losses of runs with different training losses stay comparable.
#pragma once

#include "resnet/core/abi.hpp"

#include <functional>

#include "resnet/ops/ops.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

template <typename T>
using LossFn = std::function<Tensor<T>(const Tensor<T>& logits, const Tensor<int32_t>& labels)>;

template <typename T>
LossFn<T> cross_entropy_loss(double label_smoothing = 0) {
  return [label_smoothing](const Tensor<T>& logits, const Tensor<int32_t>& labels) {
    return cross_entropy(logits, labels, label_smoothing);
  };
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
