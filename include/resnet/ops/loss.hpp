// softmax over the class dimension and the fused log-softmax + cross-entropy loss, with autograd.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/ops/elementwise.hpp"

namespace resnet {
inline namespace RESNET_ABI {

// Row-wise softmax of [N, K] logits (for predictions; train with cross_entropy, which is stable).
template <typename T>
Tensor<T> softmax(const Tensor<T>& x_in) {
  check_rank("softmax", x_in, 2, "input [N, K]");
  check_not_empty("softmax", x_in, "input");
  Tensor<T> x = detail::prepare("softmax", x_in);
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  RESNET_DISPATCH(x.device(), softmax_forward, x, y);
  Tensor<T> sy = y.detach();
  autograd::record("softmax", {x_in}, y, [sy](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>();
    bool acc;
    Tensor<T> dx = ctx.grad_slot<T>(0, &acc);
    RESNET_DISPATCH(dy.device(), softmax_backward, sy, dy, dx, acc);
  });
  return y;
}

// Mean cross-entropy of [N, K] logits against int32 class labels [N], with optional label smoothing.
template <typename T>
Tensor<T> cross_entropy(const Tensor<T>& logits_in, const Tensor<int32_t>& labels,
                        double label_smoothing = 0.0) {
  const char* op = "cross_entropy";
  check_rank(op, logits_in, 2, "logits [N, K]");
  check_not_empty(op, logits_in, "logits");
  RESNET_CHECK(label_smoothing >= 0.0 && label_smoothing < 1.0, op,
               ": label_smoothing must be in [0, 1), got ", label_smoothing);
  check_rank(op, labels, 1, "labels [N]");
  RESNET_CHECK(labels.dim(0) == logits_in.dim(0), op, ": ", labels.dim(0), " labels for ", logits_in.dim(0),
               " rows of logits ", logits_in.shape());
  check_same_device(op, logits_in, labels);
  Tensor<T> x = detail::prepare(op, logits_in);
  Tensor<T> loss = Tensor<T>::empty(Shape{}, x.device());
  Tensor<T> probs = Tensor<T>::empty(x.shape(), x.device());
  RESNET_DISPATCH(x.device(), cross_entropy_forward, x, labels, label_smoothing, loss, probs);
  autograd::record(op, {logits_in}, loss, [probs, labels, label_smoothing](autograd::BackwardContext& ctx) {
    Tensor<T> dloss = ctx.grad_output_as<T>();
    bool acc;
    Tensor<T> dx = ctx.grad_slot<T>(0, &acc);
    RESNET_DISPATCH(dloss.device(), cross_entropy_backward, probs, labels, label_smoothing, dloss, dx, acc);
  });
  return loss;
}

template <typename T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<int32_t>& labels,
                        double label_smoothing = 0.0) {
  Tensor<int32_t> host = Tensor<int32_t>::from_vector(labels, {static_cast<int64_t>(labels.size())});
  if (logits.defined() && logits.rank() == 2)
    cpu::check_labels("cross_entropy", host, logits.dim(0), logits.dim(1));
  return cross_entropy(logits, to_device_async(host, logits.device()), label_smoothing);
}

}  // namespace RESNET_ABI
}  // namespace resnet
