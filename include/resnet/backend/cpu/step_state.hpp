// Per-step bookkeeping ops on the CPU (the CUDA backend runs the same functions in one-thread kernels,
// src/cuda/step_state.cu): BatchNorm's batch counter, the Trainer's loss statistics and skip flag, and
// eval-mode BatchNorm's inverse standard deviation from the running variance.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"

#include <type_traits>

#include "resnet/backend/contract/step_state.hpp"
#include "resnet/backend/step_math.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

// One training step's loss into `stats` (backend/step_math.hpp), setting the optimizer's skip flag when
// `optim_state` is given. n: this rank's samples, N: the global batch's.
template <typename T>
void record_step_loss(const Tensor<T>& loss, Tensor<double>& stats, Tensor<double>* optim_state, double n,
                      double N) {
  contract::record_step_loss("record_step_loss", loss, stats, optim_state);
  double v;
  if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value)
    v = static_cast<double>(loss.data()[0]);
  else
    v = static_cast<double>(static_cast<float>(loss.data()[0]));
  loss_stats::record(v, n, N, stats.data(), optim_state ? optim_state->data() : nullptr);
}

// invstd = 1 / sqrt(running_var + eps), rounded to P (eval-mode BatchNorm's backward).
template <typename P>
void bn_running_invstd(const Tensor<P>& running_var, double eps, Tensor<P>& invstd) {
  contract::bn_running_invstd("bn_running_invstd", running_var, invstd);
  for (int64_t i = 0; i < invstd.numel(); ++i)
    invstd.data()[i] = bn::running_invstd(running_var.data()[i], eps);
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
