// Optimizer updates on the CPU, elementwise over one parameter tensor (PyTorch's formulas).
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/optim.hpp"

#include <cmath>

#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

// SGD: g = grad + wd * p; buf = first ? g : momentum * buf + (1 - dampening) * g;
// g = nesterov ? g + momentum * buf : buf; p -= lr * g. momentum_buf is unused when momentum == 0.
template <typename P>
void sgd_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& momentum_buf, const SgdHyper& h) {
  contract::sgd_step("sgd_step", param, grad, momentum_buf, h);
  P* p = param.data();
  const P* g = grad.data();
  P* b = h.momentum != 0.0 ? momentum_buf.data() : nullptr;
  const P lr = static_cast<P>(h.lr), wd = static_cast<P>(h.weight_decay), mom = static_cast<P>(h.momentum);
  const P damp = static_cast<P>(1.0 - h.dampening);
  // The flags are hoisted out of the loops so that each loop is branch-free and vectorises.
  const bool first = h.first_step, nesterov = h.nesterov;
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

// AdamW with decoupled weight decay and bias correction.
template <typename P>
void adamw_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& m, Tensor<P>& v, const AdamHyper& h) {
  contract::adamw_step("adamw_step", param, grad, m, v, h);
  P* p = param.data();
  const P* g = grad.data();
  P* pm = m.data();
  P* pv = v.data();
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  const P decay = static_cast<P>(1.0 - h.lr * h.weight_decay);
  const P b1 = static_cast<P>(h.beta1), b2 = static_cast<P>(h.beta2);
  const P step_size = static_cast<P>(h.lr / bc1);
  const P inv_sqrt_bc2 = static_cast<P>(1.0 / std::sqrt(bc2));
  const P eps = static_cast<P>(h.eps);
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
