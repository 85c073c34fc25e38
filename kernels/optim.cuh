// Optimizer updates, elementwise over one parameter tensor of type P (float master weights, or double),
// with PyTorch's formulas, in P arithmetic exactly as the CPU backend writes them.
//   SGD:   d = g + wd p;  buf = first ? d : momentum buf + (1 - dampening) d;
//          d = nesterov ? d + momentum buf : buf;  p -= lr d        (buf unused when momentum == 0)
//   AdamW: p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//          p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
#pragma once

#include "resnet/core/abi.hpp"
#include "launch.cuh"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

template <typename P>
struct SgdCoeffs {
  P lr, wd, momentum, damp;  // damp = 1 - dampening
  bool nesterov, first_step;
};

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
struct AdamCoeffs {
  P decay, beta1, beta2, step_size, inv_sqrt_bc2, eps;
};

template <typename P>
RESNET_HD inline void adamw_update(P& p, P g, P& m, P& v, const AdamCoeffs<P>& h) {
  p *= h.decay;
  m = h.beta1 * m + (P(1) - h.beta1) * g;
  v = h.beta2 * v + (P(1) - h.beta2) * g * g;
  p -= h.step_size * m / (k_sqrt(v) * h.inv_sqrt_bc2 + h.eps);
}

// The coefficients from the hyper-parameters, rounded to P as the CPU backend rounds them.
template <typename P>
SgdCoeffs<P> sgd_coeffs(const SgdHyper& h) {
  return SgdCoeffs<P>{static_cast<P>(h.lr),
                      static_cast<P>(h.weight_decay),
                      static_cast<P>(h.momentum),
                      static_cast<P>(1.0 - h.dampening),
                      h.nesterov,
                      h.first_step};
}
template <typename P>
AdamCoeffs<P> adam_coeffs(const AdamHyper& h) {
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  return AdamCoeffs<P>{static_cast<P>(1.0 - h.lr * h.weight_decay),
                       static_cast<P>(h.beta1),
                       static_cast<P>(h.beta2),
                       static_cast<P>(h.lr / bc1),
                       static_cast<P>(1.0 / std::sqrt(bc2)),
                       static_cast<P>(h.eps)};
}

template <typename P>
__global__ void __launch_bounds__(kBlock) sgd_kernel(P* __restrict__ param, const P* __restrict__ grad,
                                                     P* __restrict__ buf, int64_t n, SgdCoeffs<P> h) {
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
                 int64_t n, AdamCoeffs<P> h) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    P p = param[i], mi = m[i], vi = v[i];
    adamw_update(p, grad[i], mi, vi, h);
    param[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}

template <typename P>
void sgd_step(P* param, const P* grad, P* buf, int64_t n, const SgdCoeffs<P>& h, const LaunchEnv& env) {
  if (n <= 0) return;
  RESNET_LAUNCH((sgd_kernel<P>), grid_for(n, kBlock, env.sm_count), kBlock, env, param, grad, buf, n, h);
}

template <typename P>
void adamw_step(P* param, const P* grad, P* m, P* v, int64_t n, const AdamCoeffs<P>& h,
                const LaunchEnv& env) {
  if (n <= 0) return;
  RESNET_LAUNCH((adamw_kernel<P>), grid_for(n, kBlock, env.sm_count), kBlock, env, param, grad, m, v, n, h);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
