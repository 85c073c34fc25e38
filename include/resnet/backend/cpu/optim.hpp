// Optimizer updates on the CPU, elementwise over one parameter tensor (PyTorch's formulas).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"

#include "resnet/backend/contract/optim.hpp"

#include <cmath>

#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/optim_math.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

// SGD: g = grad + wd * p; buf = first ? g : momentum * buf + (1 - dampening) * g;
// g = nesterov ? g + momentum * buf : buf; p -= lr * g. momentum_buf is unused when momentum == 0.
// lr and first (step 1) come from `state`; a skipped step changes nothing.
template <typename P>
void sgd_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& momentum_buf, const Tensor<double>& state,
              const SgdHyper& h) {
  contract::sgd_step("sgd_step", param, grad, momentum_buf, state, h);
  if (optim_state::skipped(state.data())) return;
  const optim_math::SgdCoeffs<P> c = optim_math::sgd_coeffs<P>(h, state.data());
  P* p = param.data();
  const P* g = grad.data();
  P* b = h.momentum != 0.0 ? momentum_buf.data() : nullptr;
  const P lr = c.lr, wd = c.wd, mom = c.momentum, damp = c.damp;
  // The flags are hoisted out of the loops so that each loop is branch-free and vectorises.
  const bool first = c.first_step, nesterov = c.nesterov;
  parallel_for(param.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    if (!b) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) p[i] -= lr * (g[i] + wd * p[i]);
    } else if (first) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) {
        const P d = g[i] + wd * p[i];
        b[i] = d;
        p[i] -= lr * (nesterov ? d + mom * d : d);
      }
    } else if (nesterov) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) {
        const P d = g[i] + wd * p[i];
        b[i] = mom * b[i] + damp * d;
        p[i] -= lr * (d + mom * b[i]);
      }
    } else {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) {
        const P d = g[i] + wd * p[i];
        b[i] = mom * b[i] + damp * d;
        p[i] -= lr * b[i];
      }
    }
  });
}

// AdamW with decoupled weight decay and bias correction (lr and the step number from `state`).
template <typename P>
void adamw_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& m, Tensor<P>& v,
                const Tensor<double>& state, const AdamHyper& h) {
  contract::adamw_step("adamw_step", param, grad, m, v, state, h);
  if (optim_state::skipped(state.data())) return;
  const optim_math::AdamCoeffs<P> c = optim_math::adam_coeffs<P>(h, state.data());
  P* p = param.data();
  const P* g = grad.data();
  P* pm = m.data();
  P* pv = v.data();
  const P decay = c.decay, b1 = c.beta1, b2 = c.beta2, step_size = c.step_size, inv_sqrt_bc2 = c.inv_sqrt_bc2;
  const P eps = c.eps;
  parallel_for(param.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      p[i] *= decay;
      pm[i] = b1 * pm[i] + (P(1) - b1) * g[i];
      pv[i] = b2 * pv[i] + (P(1) - b2) * g[i] * g[i];
      p[i] -= step_size * pm[i] / (std::sqrt(pv[i]) * inv_sqrt_bc2 + eps);
    }
  });
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
