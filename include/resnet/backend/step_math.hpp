// Per-step bookkeeping that stays on the device between host reads, written once for every backend: the
// CPU (backend/cpu/step_state.hpp) and the CUDA kernels (kernels/step_state.cuh) run these host+device
// functions on one thread.
//
// train::Trainer's loss statistics: a tensor of loss_stats::kSize doubles on the model's device.
//   [kWindowSum] sum of the step losses since the last log line, each weighted n / N (this rank's samples
//                over the global batch's), so summing the ranks' values gives the global batch means
//   [kEpochSum]  the same since the start of the epoch
//   [kStep]      the global step number of the last recorded step (1-based)
//   [kBadStep]   the first step whose loss was not finite (0: none yet); from then on every step is skipped
//   [kBadKind]   1: NaN, 2: +infinity, 3: -infinity
//   [kLastLoss]  the last step's weighted loss (what a per-step callback reads)
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>

#include "resnet/backend/optim_math.hpp"
#include "resnet/core/dtype.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace loss_stats {
enum : int { kWindowSum = 0, kEpochSum = 1, kStep = 2, kBadStep = 3, kBadKind = 4, kLastLoss = 5, kSize = 8 };

// One step: `loss` is this rank's mean loss over its n samples of a global batch of N. A non-finite loss
// records the step, and from then on the optimizer's skip flag is set (optim may be null) so no update
// reaches the weights; a finite one adds (loss * n) / N.
RESNET_HD inline void record(double loss, double n, double N, double* stats, double* optim) {
  stats[kStep] += 1.0;
  const double v = loss;
  const bool finite = v - v == 0.0;  // false for NaN and both infinities
  if (!finite && stats[kBadStep] == 0.0) {
    stats[kBadStep] = stats[kStep];
    stats[kBadKind] = v != v ? 1.0 : (v > 0 ? 2.0 : 3.0);
  }
  const bool skip = stats[kBadStep] != 0.0;
  if (optim) optim[optim_state::kSkip] = skip ? 1.0 : 0.0;
  if (skip) {
    stats[kLastLoss] = v;
    return;
  }
  const double w = v * n / N;
  stats[kLastLoss] = w;
  stats[kWindowSum] += w;
  stats[kEpochSum] += w;
}
}  // namespace loss_stats

namespace bn {
// Eval-mode BatchNorm's inverse standard deviation from the running variance (what its backward uses).
template <typename P>
RESNET_HD inline P running_invstd(P running_var, double eps) {
  return static_cast<P>(1.0 / optim_math::sqrt_d(static_cast<double>(running_var) + eps));
}
}  // namespace bn

}  // namespace RESNET_ABI
}  // namespace resnet
