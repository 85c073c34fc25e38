// BatchNorm2d (+ residual add + ReLU) for float32 on the CPU: the fast path behind cpu::batchnorm_*.
//
// Same formulas as the reference in batchnorm.hpp, arranged for speed: threads split the channels; one
// channel's values (N rows of H*W) are read from memory once and then stay in the core's L2 for the other
// passes (statistics, then the output); inner loops are branch-free and vectorised (`omp simd` reductions,
// float partial sums per row added up in double across rows, so accuracy stays near the reference's).
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cmath>

#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

template <typename T, typename P>
void check_batchnorm_shapes(const char* op, const Tensor<T>& x, const Tensor<P>& gamma, const Tensor<P>& beta,
                            const Tensor<T>& y) {
  check_rank(op, x, 4, "input");
  RESNET_CHECK(gamma.numel() == x.dim(1) && beta.numel() == x.dim(1), op, ": input ", x.shape(), " has ",
               x.dim(1), " channels but weight/bias have ", gamma.numel(), "/", beta.numel());
  check_same_shape(op, x, y);
}

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

// y = act(x * scale + shift [+ r]) over one row.
inline void row_apply(const float* x, const float* r, float* y, int64_t n, float scale, float shift,
                      bool relu) {
  if (r && relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = std::max(x[i] * scale + shift + r[i], 0.f);
  } else if (r) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale + shift + r[i];
  } else if (relu) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = std::max(x[i] * scale + shift, 0.f);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale + shift;
  }
}

}  // namespace bn_detail

inline void batchnorm_forward_training_fast(const Tensor<float>& x, const Tensor<float>* residual,
                                            const Tensor<float>& gamma, const Tensor<float>& beta,
                                            Tensor<float>& running_mean, Tensor<float>& running_var,
                                            Tensor<float>& save_mean, Tensor<float>& save_invstd,
                                            Tensor<float>& y, const BatchNormParams& bp, Activation act) {
  check_batchnorm_shapes("batch_norm", x, gamma, beta, y);
  if (residual) check_same_shape("batch_norm (residual)", x, *residual);
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  const int64_t M = N * HW;
  RESNET_CHECK(M > 1, "batch_norm: training needs more than one value per channel, input ", x.shape());
  const float* px = x.data();
  const float* pr = residual ? residual->data() : nullptr;
  float* py = y.data();
  const bool relu = act == Activation::ReLU;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n) sum += bn_detail::row_sum(px + (n * C + c) * HW, HW);
      const double mean = sum / static_cast<double>(M);
      double sq = 0.0;
      for (int64_t n = 0; n < N; ++n)
        sq += bn_detail::row_centered_sq(px + (n * C + c) * HW, HW, static_cast<float>(mean));
      const double var = sq / static_cast<double>(M);
      const double invstd = 1.0 / std::sqrt(var + bp.eps);
      save_mean.data()[c] = static_cast<float>(mean);
      save_invstd.data()[c] = static_cast<float>(invstd);
      float& rm = running_mean.data()[c];
      float& rv = running_var.data()[c];
      rm = static_cast<float>((1.0 - bp.momentum) * static_cast<double>(rm) + bp.momentum * mean);
      rv = static_cast<float>((1.0 - bp.momentum) * static_cast<double>(rv) +
                              bp.momentum * var * static_cast<double>(M) / static_cast<double>(M - 1));
      const float scale = static_cast<float>(static_cast<double>(gamma.data()[c]) * invstd);
      const float shift =
          static_cast<float>(static_cast<double>(beta.data()[c]) - mean * static_cast<double>(scale));
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        bn_detail::row_apply(px + base, pr ? pr + base : nullptr, py + base, HW, scale, shift, relu);
      }
    }
  });
}

inline void batchnorm_forward_inference_fast(const Tensor<float>& x, const Tensor<float>* residual,
                                             const Tensor<float>& gamma, const Tensor<float>& beta,
                                             const Tensor<float>& running_mean,
                                             const Tensor<float>& running_var, Tensor<float>& y,
                                             const BatchNormParams& bp, Activation act) {
  check_batchnorm_shapes("batch_norm", x, gamma, beta, y);
  if (residual) check_same_shape("batch_norm (residual)", x, *residual);
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  const float* px = x.data();
  const float* pr = residual ? residual->data() : nullptr;
  float* py = y.data();
  const bool relu = act == Activation::ReLU;
  parallel_for(N * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t c = nc % C;
      const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var.data()[c]) + bp.eps);
      const float scale = static_cast<float>(static_cast<double>(gamma.data()[c]) * invstd);
      const float shift =
          static_cast<float>(static_cast<double>(beta.data()[c]) -
                             static_cast<double>(running_mean.data()[c]) * static_cast<double>(scale));
      bn_detail::row_apply(px + nc * HW, pr ? pr + nc * HW : nullptr, py + nc * HW, HW, scale, shift, relu);
    }
  });
}

// dz = dy masked by the ReLU (y > 0); dx = k * (dz - mean(dz) - xhat * mean(dz * xhat)) in training, k * dz
// in evaluation, with k = gamma * invstd; written as dx = a * dz + b * x + c0 so one row is one fused loop.
inline void batchnorm_backward_fast(const Tensor<float>& x, const Tensor<float>& y, const Tensor<float>& dy,
                                    const Tensor<float>& gamma, const Tensor<float>& mean,
                                    const Tensor<float>& invstd, bool training, Activation act,
                                    Tensor<float>* dx, bool dx_accumulate, Tensor<float>* dresidual,
                                    bool dresidual_accumulate, Tensor<float>* dgamma, Tensor<float>* dbeta,
                                    bool param_accumulate) {
  check_same_shape("batch_norm_backward", x, dy);
  if (act == Activation::ReLU) check_same_shape("batch_norm_backward", x, y);
  if (dx) check_same_shape("batch_norm_backward (dx)", x, *dx);
  if (dresidual) check_same_shape("batch_norm_backward (dresidual)", x, *dresidual);
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  const int64_t M = N * HW;
  const float* px = x.data();
  const float* py = act == Activation::ReLU ? y.data() : nullptr;
  const float* pdy = dy.data();
  float* pdx = dx ? dx->data() : nullptr;
  float* pdr = dresidual ? dresidual->data() : nullptr;
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float mu = mean.data()[c];
      const double is = static_cast<double>(invstd.data()[c]);
      double sum_dz = 0.0, sum_dz_xc = 0.0;  // sum(dz), sum(dz * (x - mu))
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        const float* xr = px + base;
        const float* dyr = pdy + base;
        float a = 0.f, b = 0.f;
        if (py) {
          const float* yr = py + base;
#pragma omp simd reduction(+ : a, b)
          for (int64_t i = 0; i < HW; ++i) {
            const float dz = yr[i] > 0.f ? dyr[i] : 0.f;
            a += dz;
            b += dz * (xr[i] - mu);
          }
        } else {
#pragma omp simd reduction(+ : a, b)
          for (int64_t i = 0; i < HW; ++i) {
            a += dyr[i];
            b += dyr[i] * (xr[i] - mu);
          }
        }
        sum_dz += a;
        sum_dz_xc += b;
      }
      const double sum_dz_xhat = sum_dz_xc * is;
      if (dgamma) {
        float& g = dgamma->data()[c];
        g = static_cast<float>(param_accumulate ? static_cast<double>(g) + sum_dz_xhat : sum_dz_xhat);
      }
      if (dbeta) {
        float& bb = dbeta->data()[c];
        bb = static_cast<float>(param_accumulate ? static_cast<double>(bb) + sum_dz : sum_dz);
      }
      const double k = static_cast<double>(gamma.data()[c]) * is;
      double cx = 0.0, c0d = 0.0;
      if (training) {
        const double mean_dz = sum_dz / static_cast<double>(M);
        const double mean_dz_xhat = sum_dz_xhat / static_cast<double>(M);
        cx = -k * is * mean_dz_xhat;
        c0d = -k * mean_dz - cx * static_cast<double>(mu);
      }
      const float ka = static_cast<float>(k), kx = static_cast<float>(cx), k0 = static_cast<float>(c0d);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        const float* xr = px + base;
        const float* dyr = pdy + base;
        const float* yr = py ? py + base : nullptr;
        if (pdr) {
          float* o = pdr + base;
          if (dresidual_accumulate) {
            if (yr) {
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] += yr[i] > 0.f ? dyr[i] : 0.f;
            } else {
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] += dyr[i];
            }
          } else {
            if (yr) {
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] = yr[i] > 0.f ? dyr[i] : 0.f;
            } else {
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] = dyr[i];
            }
          }
        }
        if (pdx) {
          float* o = pdx + base;
          if (dx_accumulate) {
            if (yr) {
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] += ka * (yr[i] > 0.f ? dyr[i] : 0.f) + kx * xr[i] + k0;
            } else {
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] += ka * dyr[i] + kx * xr[i] + k0;
            }
          } else {
            if (yr) {
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] = ka * (yr[i] > 0.f ? dyr[i] : 0.f) + kx * xr[i] + k0;
            } else {
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] = ka * dyr[i] + kx * xr[i] + k0;
            }
          }
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
