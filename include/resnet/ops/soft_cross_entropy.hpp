// Cross-entropy against probability targets (mixup's and cutmix's mixed labels) with label smoothing folded
// into the targets, as timm's SoftTargetCrossEntropy after its mixup_target: t' = (1 - e) t + e / K.
//
// Composed from ops every backend has: for rows of t' that sum to one,
//   mean_n sum_k t'_nk (lse(x_n) - x_nk) = cross_entropy(x, 0) - (1/N) sum_nk (t'_nk - [k == 0]) x_nk,
// since cross_entropy(x, 0) = mean_n (lse(x_n) - x_n0). Autograd then gives (softmax(x) - t') / N. The
// targets are constants of the loss (no gradient reaches them).
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <type_traits>

#include "resnet/autograd/grad_mode.hpp"
#include "resnet/ops/elementwise.hpp"
#include "resnet/ops/loss.hpp"

namespace resnet {
inline namespace RESNET_ABI {

namespace detail {
// On the host the rows are checked to be distributions (a device's targets are the caller's word).
template <typename T>
void check_target_rows(const Tensor<T>& t) {
  if (!t.device().is_cpu()) return;
  const bool narrow = !std::is_same<T, float>::value && !std::is_same<T, double>::value;
  const double tol = narrow ? 2e-2 : 1e-4;
  const Tensor<T> h = t.contiguous();
  const int64_t N = t.dim(0), K = t.dim(1);
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double v = static_cast<double>(static_cast<float>(h.data()[n * K + k]));
      RESNET_CHECK(v >= -tol && std::isfinite(v), "soft_cross_entropy: target [", n, ", ", k, "] is ", v,
                   "; targets are probabilities");
      s += v;
    }
    RESNET_CHECK(std::abs(s - 1.0) <= tol * static_cast<double>(K), "soft_cross_entropy: target row ", n,
                 " sums to ", s, "; each row must sum to 1");
  }
}
}  // namespace detail

// Mean over the batch of sum_k -t'_nk log softmax(x_n)_k; logits and targets [N, K] on one device.
template <typename T>
Tensor<T> soft_cross_entropy(const Tensor<T>& logits, const Tensor<T>& targets,
                             double label_smoothing = 0.0) {
  const char* op = "soft_cross_entropy";
  check_rank(op, logits, 2, "logits [N, K]");
  check_not_empty(op, logits, "logits");
  check_rank(op, targets, 2, "targets [N, K]");
  RESNET_CHECK(targets.shape() == logits.shape(), op, ": targets ", targets.shape(), " for logits ",
               logits.shape());
  check_same_device(op, logits, targets);
  RESNET_CHECK(label_smoothing >= 0.0 && label_smoothing < 1.0, op,
               ": label_smoothing must be in [0, 1), got ", label_smoothing);
  detail::check_target_rows(targets);
  const int64_t N = logits.dim(0), K = logits.dim(1);
  const Device dev = logits.device();
  Tensor<T> offset = Tensor<T>::empty(logits.shape());  // e / K - [k == 0]
  const double spread = label_smoothing / static_cast<double>(K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const double v = spread - (k == 0 ? 1.0 : 0.0);
      if constexpr (std::is_same<T, double>::value)
        offset.data()[n * K + k] = v;
      else
        offset.data()[n * K + k] = static_cast<T>(static_cast<float>(v));
    }
  Tensor<T> weights;
  {
    NoGradGuard no_grad;
    weights = add(scale(targets.detach(), 1.0 - label_smoothing), to_device_async(offset, dev));
  }
  const Tensor<T> first = cross_entropy(logits, to_device_async(Tensor<int32_t>::zeros({N}), dev), 0.0);
  return add(first, scale(sum(mul(logits, weights)), -1.0 / static_cast<double>(N)));
}

}  // namespace RESNET_ABI
}  // namespace resnet
