// Optimizer updates, elementwise over one parameter tensor of type P (float master weights, or double),
// with PyTorch's formulas, in P arithmetic exactly as the CPU backend writes them.
//   SGD:   d = g + wd p;  buf = first ? d : momentum buf + (1 - dampening) d;
//          d = nesterov ? d + momentum buf : buf;  p -= lr d        (buf unused when momentum == 0)
//   AdamW: p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//          p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
// lr, the step number (first = step 1) and the skip flag come from the optimizer's step state.
#pragma once

#include "resnet/core/abi.hpp"
#include "launch.cuh"
#include "resnet/backend/optim_math.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

using optim_math::AdamCoeffs;
using optim_math::SgdCoeffs;

template <typename P>
RESNET_HD inline void sgd_update(P& p, P g, P* buf, const SgdCoeffs<P>& h) {
  P d = g + h.wd * p;
  if (buf) {
    *buf = h.first_step ? d : h.momentum * *buf + h.damp * d;
    d = h.nesterov ? d + h.momentum * *buf : *buf;
  }
  p -= h.lr * d;
}

template <typename P>
RESNET_HD inline void adamw_update(P& p, P g, P& m, P& v, const AdamCoeffs<P>& h) {
  p *= h.decay;
  m = h.beta1 * m + (P(1) - h.beta1) * g;
  v = h.beta2 * v + (P(1) - h.beta2) * g * g;
  p -= h.step_size * m / (k_sqrt(v) * h.inv_sqrt_bc2 + h.eps);
}

// The per-step values (learning rate, step number, skip flag) are read from `state` in device memory, so
// a captured graph replays what the host or a kernel last wrote there; each thread forms the coefficients
// once, in double as the CPU does (backend/optim_math.hpp).
template <typename P>
__global__ void __launch_bounds__(kBlock)
    sgd_kernel(P* __restrict__ param, const P* __restrict__ grad, P* __restrict__ buf, int64_t n,
               const double* __restrict__ state, SgdHyper hyper) {
  if (optim_state::skipped(state)) return;
  const SgdCoeffs<P> h = optim_math::sgd_coeffs<P>(hyper, state);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    P p = param[i];
    sgd_update(p, grad[i], buf ? buf + i : nullptr, h);
    param[i] = p;
  }
}

template <typename P>
__global__ void __launch_bounds__(kBlock)
    adamw_kernel(P* __restrict__ param, const P* __restrict__ grad, P* __restrict__ m, P* __restrict__ v,
                 int64_t n, const double* __restrict__ state, AdamHyper hyper) {
  if (optim_state::skipped(state)) return;
  const AdamCoeffs<P> h = optim_math::adam_coeffs<P>(hyper, state);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    P p = param[i], mi = m[i], vi = v[i];
    adamw_update(p, grad[i], mi, vi, h);
    param[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}

// One thread: the step count advances unless the step is skipped.
template <typename = void>
__global__ void optim_begin_step_kernel(double* state) {
  optim_state::begin_step(state);
}

template <typename P>
void sgd_step(P* param, const P* grad, P* buf, int64_t n, const double* state, const SgdHyper& h,
              const LaunchEnv& env) {
  if (n <= 0) return;
  RESNET_LAUNCH((sgd_kernel<P>), grid_for(n, kBlock, env.sm_count), kBlock, env, param, grad, buf, n, state,
                h);
}

template <typename P>
void adamw_step(P* param, const P* grad, P* m, P* v, int64_t n, const double* state, const AdamHyper& h,
                const LaunchEnv& env) {
  if (n <= 0) return;
  RESNET_LAUNCH((adamw_kernel<P>), grid_for(n, kBlock, env.sm_count), kBlock, env, param, grad, m, v, n,
                state, h);
}

inline void optim_begin_step(double* state, const LaunchEnv& env) {
  RESNET_LAUNCH((optim_begin_step_kernel<>), 1, 1, env, state);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
