// The optimizer updates' per-step values and coefficients, written once for every backend: the CPU
// (backend/cpu/optim.hpp) and the CUDA kernels (kernels/optim.cuh) call these host+device functions, so the
// two cannot round differently in their own code (the GPU's pow may differ from glibc's in the last bit).
//
// The values that change from step to step are read from memory, not passed as arguments: a small tensor
// of optim_state::kSize doubles on the parameters' device, owned by the optimizer (Optimizer::step_state()).
// The host changes the learning rate with a write that does not wait (an asynchronous copy from pinned
// memory on the GPU), a kernel counts the steps, and a CUDA graph that captured the updates replays them
// with whatever the tensor holds then.
//   [kLr]    the learning rate
//   [kStep]  the 1-based number of this update: AdamW's bias correction; SGD's step 1 copies the gradient
//            into the momentum buffer (PyTorch's convention). optim_begin_step() advances it.
//   [kSkip]  non-zero: the updates leave every parameter and state tensor as it is (train::Trainer sets it
//            on the device when the step's loss is not finite, like GradScaler's found_inf); the step
//            count does not advance either.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>

#include "resnet/backend/params.hpp"
#include "resnet/core/dtype.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace optim_state {
enum : int { kLr = 0, kStep = 1, kSkip = 2, kSize = 4 };

RESNET_HD inline bool skipped(const double* state) { return state[kSkip] != 0.0; }
// Start of an optimizer step (one thread): the count advances unless the step is skipped.
RESNET_HD inline void begin_step(double* state) {
  if (!skipped(state)) state[kStep] += 1.0;
}
}  // namespace optim_state

namespace optim_math {

RESNET_HD inline double pow_d(double a, double b) {
#if defined(__CUDA_ARCH__)
  return ::pow(a, b);
#else
  return std::pow(a, b);
#endif
}
RESNET_HD inline double sqrt_d(double a) {
#if defined(__CUDA_ARCH__)
  return ::sqrt(a);
#else
  return std::sqrt(a);
#endif
}

template <typename P>
struct SgdCoeffs {
  P lr, wd, momentum, damp;  // damp = 1 - dampening
  bool nesterov, first_step;
};

template <typename P>
struct AdamCoeffs {
  P decay, beta1, beta2, step_size, inv_sqrt_bc2, eps;
};

// The coefficients from the constant hyper-parameters and the step state, rounded to P.
template <typename P>
RESNET_HD inline SgdCoeffs<P> sgd_coeffs(const SgdHyper& h, const double* state) {
  return SgdCoeffs<P>{static_cast<P>(state[optim_state::kLr]),
                      static_cast<P>(h.weight_decay),
                      static_cast<P>(h.momentum),
                      static_cast<P>(1.0 - h.dampening),
                      h.nesterov,
                      state[optim_state::kStep] == 1.0};
}
template <typename P>
RESNET_HD inline AdamCoeffs<P> adam_coeffs(const AdamHyper& h, const double* state) {
  const double lr = state[optim_state::kLr], step = state[optim_state::kStep];
  const double bc1 = 1.0 - pow_d(h.beta1, step);
  const double bc2 = 1.0 - pow_d(h.beta2, step);
  return AdamCoeffs<P>{static_cast<P>(1.0 - lr * h.weight_decay),
                       static_cast<P>(h.beta1),
                       static_cast<P>(h.beta2),
                       static_cast<P>(lr / bc1),
                       static_cast<P>(1.0 / sqrt_d(bc2)),
                       static_cast<P>(h.eps)};
}

}  // namespace optim_math
}  // namespace RESNET_ABI
}  // namespace resnet
