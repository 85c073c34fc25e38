// BatchNorm2d (+ residual add + ReLU) for float32 on the CPU: the fast path behind cpu::batchnorm_*.
//
// The same contract (contract/batchnorm.hpp) and the same formulas (batchnorm_math.hpp) as the reference
// in batchnorm_reference.hpp and the CUDA kernels, arranged for speed: threads split the channels; one
// channel's values (N rows of H*W) are read from memory once and then stay in the core's L2 for the other
// passes (statistics, then the output); inner loops are branch-free and vectorised (`omp simd` reductions,
// float partial sums per row added up in double across rows, so accuracy stays near the reference's). The
// per-element rules are called with constant flags in each loop variant, so they inline without branches.
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/batchnorm_math.hpp"
#include "resnet/backend/contract/batchnorm.hpp"
#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

namespace bn_detail {

inline float row_sum(const float* x, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

inline float row_centered_sq(const float* x, int64_t n, float mean) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - mean;
    s += d * d;
  }
  return s;
}

// y = act(x * scale + shift [+ r]) over one row (pivot 0).
inline void row_apply(const float* x, const float* r, float* y, int64_t n, float scale, float shift,
                      bool relu) {
  if (r && relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = bn::apply(x[i], 0.f, scale, shift, r[i], true);
  } else if (r) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = bn::apply(x[i], 0.f, scale, shift, r[i], false);
  } else if (relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = bn::apply(x[i], 0.f, scale, shift, 0.f, true);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = bn::apply(x[i], 0.f, scale, shift, 0.f, false);
  }
}

}  // namespace bn_detail

inline void batchnorm_forward_training_fast(const Tensor<float>& x, const Tensor<float>* residual,
                                            const Tensor<float>& gamma, const Tensor<float>& beta,
                                            Tensor<float>& running_mean, Tensor<float>& running_var,
                                            Tensor<float>& save_mean, Tensor<float>& save_invstd,
                                            Tensor<float>& y, const BatchNormParams& bp, Activation act) {
  const contract::BatchNormDims d = contract::batchnorm_forward(
      "batch_norm", x, residual, gamma, beta, running_mean, running_var, &save_mean, &save_invstd, y, true);
  const int64_t N = d.N, C = d.C, HW = d.HW;
  const double M = static_cast<double>(d.count());
  const float* px = x.data();
  const float* pr = residual ? residual->data() : nullptr;
  float* py = y.data();
  const bool relu = act == Activation::ReLU;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n) sum += bn_detail::row_sum(px + (n * C + c) * HW, HW);
      const double mean = sum / M;
      double sq = 0.0;
      for (int64_t n = 0; n < N; ++n)
        sq += bn_detail::row_centered_sq(px + (n * C + c) * HW, HW, static_cast<float>(mean));
      const double var = sq / M;
      const double inv = bn::invstd(var, bp.eps);
      bn::store_statistics(mean, var, inv, M, bp.momentum, save_mean.data() + c, save_invstd.data() + c,
                           running_mean.data() + c, running_var.data() + c);
      const auto k = bn::scale_shift<float>(static_cast<double>(gamma.data()[c]),
                                            static_cast<double>(beta.data()[c]), inv, mean);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        bn_detail::row_apply(px + base, pr ? pr + base : nullptr, py + base, HW, k.scale, k.shift, relu);
      }
    }
  });
}

inline void batchnorm_forward_inference_fast(const Tensor<float>& x, const Tensor<float>* residual,
                                             const Tensor<float>& gamma, const Tensor<float>& beta,
                                             const Tensor<float>& running_mean,
                                             const Tensor<float>& running_var, Tensor<float>& y,
                                             const BatchNormParams& bp, Activation act) {
  const contract::BatchNormDims d = contract::batchnorm_forward(
      "batch_norm", x, residual, gamma, beta, running_mean, running_var,
      static_cast<const Tensor<float>*>(nullptr), static_cast<const Tensor<float>*>(nullptr), y, false);
  const int64_t C = d.C, HW = d.HW;
  const float* px = x.data();
  const float* pr = residual ? residual->data() : nullptr;
  float* py = y.data();
  const bool relu = act == Activation::ReLU;
  parallel_for(d.N * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t c = nc % C;
      const double inv = bn::invstd(static_cast<double>(running_var.data()[c]), bp.eps);
      const auto k =
          bn::scale_shift<float>(static_cast<double>(gamma.data()[c]), static_cast<double>(beta.data()[c]),
                                 inv, static_cast<double>(running_mean.data()[c]));
      bn_detail::row_apply(px + nc * HW, pr ? pr + nc * HW : nullptr, py + nc * HW, HW, k.scale, k.shift,
                           relu);
    }
  });
}

namespace bn_detail {

// One row of the backward's second pass: dresidual = [dresidual +] dz and dx = [dx +] bn::dx(dz, x - mean),
// with dz = bn::dz(dy, y); RELU, DR (write dresidual), DR_ACC, DX, DX_ACC fixed per loop so that each
// variant is one branch-free vectorised loop.
template <bool RELU, bool DR, bool DR_ACC, bool DX, bool DX_ACC>
inline void backward_row(const float* xr, const float* yr, const float* dyr, float* dro, float* dxo,
                         int64_t n, const bn::Coefficients<float>& k) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = bn::dz(dyr[i], RELU ? yr[i] : 0.f, RELU);
    if (DR) dro[i] = DR_ACC ? dro[i] + g : g;
    if (DX) {
      const float v = bn::dx(g, xr[i] - k.mean, k);
      dxo[i] = DX_ACC ? dxo[i] + v : v;
    }
  }
}
template <bool RELU, bool DR, bool DR_ACC>
inline void backward_row_dx(bool dx, bool dx_acc, const float* xr, const float* yr, const float* dyr,
                            float* dro, float* dxo, int64_t n, const bn::Coefficients<float>& k) {
  if (!dx)
    backward_row<RELU, DR, DR_ACC, false, false>(xr, yr, dyr, dro, dxo, n, k);
  else if (dx_acc)
    backward_row<RELU, DR, DR_ACC, true, true>(xr, yr, dyr, dro, dxo, n, k);
  else
    backward_row<RELU, DR, DR_ACC, true, false>(xr, yr, dyr, dro, dxo, n, k);
}
template <bool RELU>
inline void backward_row_any(bool dr, bool dr_acc, bool dx, bool dx_acc, const float* xr, const float* yr,
                             const float* dyr, float* dro, float* dxo, int64_t n,
                             const bn::Coefficients<float>& k) {
  if (!dr)
    backward_row_dx<RELU, false, false>(dx, dx_acc, xr, yr, dyr, dro, dxo, n, k);
  else if (dr_acc)
    backward_row_dx<RELU, true, true>(dx, dx_acc, xr, yr, dyr, dro, dxo, n, k);
  else
    backward_row_dx<RELU, true, false>(dx, dx_acc, xr, yr, dyr, dro, dxo, n, k);
}

}  // namespace bn_detail

// The backward: per channel, the sums of dz and dz * (x - mean) in one vectorised pass, then dgamma/dbeta
// and the coefficients of dx (bn::dx_coefficients), then dx and dresidual in a second pass.
inline void batchnorm_backward_fast(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& dy,
                                    const Tensor<float>& gamma, const Tensor<float>& mean,
                                    const Tensor<float>& invstd, bool training, Activation act,
                                    Tensor<float>* dx, bool dx_accumulate, Tensor<float>* dresidual,
                                    bool dresidual_accumulate, Tensor<float>* dgamma, Tensor<float>* dbeta,
                                    bool param_accumulate) {
  const bool relu = act == Activation::ReLU;
  const contract::BatchNormDims d = contract::batchnorm_backward("batch_norm_backward", x, y, dy, gamma, mean,
                                                                 invstd, relu, dx, dresidual, dgamma, dbeta);
  const int64_t N = d.N, C = d.C, HW = d.HW;
  const float* px = x.data();
  const float* py = relu ? y.data() : nullptr;
  const float* pdy = dy.data();
  float* pdx = dx ? dx->data() : nullptr;
  float* pdr = dresidual ? dresidual->data() : nullptr;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float mu = mean.data()[c];
      const double is = static_cast<double>(invstd.data()[c]);
      double sum_dz = 0.0, sum_dz_xmu = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        const float* xr = px + base;
        const float* dyr = pdy + base;
        float a = 0.f, b = 0.f;
        if (py) {
          const float* yr = py + base;
#pragma omp simd reduction(+ : a, b)
          for (int64_t i = 0; i < HW; ++i) {
            const float g = bn::dz(dyr[i], yr[i], true);
            a += g;
            b += g * (xr[i] - mu);
          }
        } else {
#pragma omp simd reduction(+ : a, b)
          for (int64_t i = 0; i < HW; ++i) {
            a += dyr[i];
            b += dyr[i] * (xr[i] - mu);
          }
        }
        sum_dz += a;
        sum_dz_xmu += b;
      }
      bn::store_param_grads(sum_dz, sum_dz_xmu, is, param_accumulate, dgamma ? dgamma->data() + c : nullptr,
                            dbeta ? dbeta->data() + c : nullptr);
      if (!pdx && !pdr) continue;
      const auto k =
          bn::dx_coefficients<float>(static_cast<double>(gamma.data()[c]), static_cast<double>(mu), is,
                                     sum_dz, sum_dz_xmu, static_cast<double>(d.count()), training);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        const float* yr = py ? py + base : nullptr;
        float* dro = pdr ? pdr + base : nullptr;
        float* dxo = pdx ? pdx + base : nullptr;
        if (yr)
          bn_detail::backward_row_any<true>(pdr != nullptr, dresidual_accumulate, pdx != nullptr,
                                            dx_accumulate, px + base, yr, pdy + base, dro, dxo, HW, k);
        else
          bn_detail::backward_row_any<false>(pdr != nullptr, dresidual_accumulate, pdx != nullptr,
                                             dx_accumulate, px + base, yr, pdy + base, dro, dxo, HW, k);
      }
    }
  });
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
