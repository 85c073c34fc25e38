// What a training step may do beyond forward, backward and update: gradient accumulation (the batch run as
// `accumulate` micro-batches whose gradients add up to the whole batch's, then one update: the memory of a
// smaller batch for the step of a larger one) and clipping the gradients by their global L2 norm before the
// update (torch.nn.utils.clip_grad_norm_). Both off by default, and then the step is the plain one.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <cstdint>

#include "resnet/autograd/grad_mode.hpp"
#include "resnet/core/arg.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/optim/optimizer.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

struct StepOptions {
  // Micro-batches per optimizer step (1: none). A batch of B rows splits into pieces of B / accumulate rows
  // (the first B % accumulate one row more), each loss weighted by its share of the rows.
  RESNET_ARG(int64_t, accumulate) = 1;
  // > 0: the gradients are scaled so that their global L2 norm is at most this (0: no clipping).
  RESNET_ARG(double, clip_grad_norm) = 0.0;

 public:
  bool any() const { return accumulate() > 1 || clip_grad_norm() > 0; }
  void check() const {
    RESNET_CHECK(accumulate() >= 1, "StepOptions: accumulate must be at least 1, got ", accumulate());
    RESNET_CHECK(std::isfinite(clip_grad_norm()) && clip_grad_norm() >= 0,
                 "StepOptions: clip_grad_norm must be finite and >= 0 (0: off), got ", clip_grad_norm());
  }
};

// The global L2 norm of the parameters' gradients, as torch's clip_grad_norm_: when max_norm / (norm +
// 1e-6) is below 1 every gradient is scaled by it. The norm is read on the host (the step waits for the
// device once); a non-finite norm leaves the gradients as they are (the step's loss check skips the update).
template <typename P>
double clip_grad_norm(const optim::NamedParameters<P>& params, double max_norm) {
  NoGradGuard no_grad;
  Tensor<P> total;
  for (auto& kv : params) {
    const Tensor<P> g = kv.second.grad();
    if (!g.defined()) continue;
    const Tensor<P> sq = sum(mul(g, g));
    total = total.defined() ? add(total, sq) : sq;
  }
  if (!total.defined()) return 0.0;
  const double norm = std::sqrt(static_cast<double>(total.item()));
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (auto& kv : params) {
      Tensor<P> g = kv.second.grad();
      if (g.defined()) RESNET_DISPATCH(g.device(), scale, g, coef, g);
    }
  return norm;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
