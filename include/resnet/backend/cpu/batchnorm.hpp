// BatchNorm2d on the CPU, NCHW, with the optional fused residual add and ReLU:
//   y = act(gamma * (x - mean) * invstd + beta [+ residual])
// Training uses the batch's statistics (two-pass mean and variance, accumulated in double) and updates the
// running statistics with the unbiased variance, as PyTorch does; evaluation uses the running statistics.
// The backward takes dy at the activation's output and the saved y for the ReLU mask, and produces the
// gradients of x, of the residual, and of gamma and beta in one pass per channel.
//
// Two implementations with one signature: `*_reference` (any T; plain loops accumulating in double, the
// reference for tests) and, for float, `*_fast` in batchnorm_fast.hpp (vectorised, one channel's data kept
// in cache across its passes). The unsuffixed functions pick one.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>

#include "resnet/backend/cpu/batchnorm_fast.hpp"
#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

template <typename T, typename P>
void batchnorm_forward_training_reference(const Tensor<T>& x, const Tensor<T>* residual,
                                          const Tensor<P>& gamma, const Tensor<P>& beta,
                                          Tensor<P>& running_mean, Tensor<P>& running_var,
                                          Tensor<P>& save_mean, Tensor<P>& save_invstd, Tensor<T>& y,
                                          const BatchNormParams& bp, Activation act) {
  check_batchnorm_shapes("batch_norm", x, gamma, beta, y);
  if (residual) check_same_shape("batch_norm (residual)", x, *residual);
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  const int64_t M = N * HW;
  RESNET_CHECK(M > 1, "batch_norm: training needs more than one value per channel, input ", x.shape());
  const T* px = x.data();
  const T* pr = residual ? residual->data() : nullptr;
  T* py = y.data();
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const T* xc = px + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) sum += static_cast<double>(xc[i]);
      }
      const double mean = sum / static_cast<double>(M);
      double sq = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const T* xc = px + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) {
          double d = static_cast<double>(xc[i]) - mean;
          sq += d * d;
        }
      }
      const double var = sq / static_cast<double>(M);
      const double invstd = 1.0 / std::sqrt(var + bp.eps);
      save_mean.data()[c] = static_cast<P>(mean);
      save_invstd.data()[c] = static_cast<P>(invstd);
      P& rm = running_mean.data()[c];
      P& rv = running_var.data()[c];
      rm = static_cast<P>((1.0 - bp.momentum) * static_cast<double>(rm) + bp.momentum * mean);
      rv = static_cast<P>((1.0 - bp.momentum) * static_cast<double>(rv) +
                          bp.momentum * var * static_cast<double>(M) / static_cast<double>(M - 1));
      const T scale = static_cast<T>(static_cast<double>(gamma.data()[c]) * invstd);
      const T shift = static_cast<T>(static_cast<double>(beta.data()[c]) - mean * static_cast<double>(scale));
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        const T* xc = px + base;
        T* yc = py + base;
        if (pr) {
          const T* rc = pr + base;
          for (int64_t i = 0; i < HW; ++i) yc[i] = xc[i] * scale + shift + rc[i];
        } else {
          for (int64_t i = 0; i < HW; ++i) yc[i] = xc[i] * scale + shift;
        }
        if (act == Activation::ReLU)
          for (int64_t i = 0; i < HW; ++i) yc[i] = yc[i] > T(0) ? yc[i] : T(0);
      }
    }
  });
}

template <typename T, typename P>
void batchnorm_forward_inference_reference(const Tensor<T>& x, const Tensor<T>* residual,
                                           const Tensor<P>& gamma, const Tensor<P>& beta,
                                           const Tensor<P>& running_mean, const Tensor<P>& running_var,
                                           Tensor<T>& y, const BatchNormParams& bp, Activation act) {
  check_batchnorm_shapes("batch_norm", x, gamma, beta, y);
  if (residual) check_same_shape("batch_norm (residual)", x, *residual);
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  const T* px = x.data();
  const T* pr = residual ? residual->data() : nullptr;
  T* py = y.data();
  parallel_for(N * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t c = nc % C;
      const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var.data()[c]) + bp.eps);
      const T scale = static_cast<T>(static_cast<double>(gamma.data()[c]) * invstd);
      const T shift =
          static_cast<T>(static_cast<double>(beta.data()[c]) -
                         static_cast<double>(running_mean.data()[c]) * static_cast<double>(scale));
      const T* xc = px + nc * HW;
      T* yc = py + nc * HW;
      const T* rc = pr ? pr + nc * HW : nullptr;
      for (int64_t i = 0; i < HW; ++i) {
        T v = xc[i] * scale + shift + (rc ? rc[i] : T(0));
        yc[i] = (act == Activation::ReLU && v < T(0)) ? T(0) : v;
      }
    }
  });
}

// Gradients of y = act(gamma * xhat + beta [+ residual]). `training` says whether the forward used batch
// statistics (then mean/invstd are the saved batch values and the statistics' own gradient flows into dx)
// or running statistics (then mean/invstd are computed from running_mean/var by the caller).
// Any of dx, dresidual, dgamma, dbeta may be null when not needed; dgamma and dbeta share `param_accumulate`.
template <typename T, typename P>
void batchnorm_backward_reference(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                  const Tensor<P>& gamma, const Tensor<P>& mean, const Tensor<P>& invstd,
                                  bool training, Activation act, Tensor<T>* dx, bool dx_accumulate,
                                  Tensor<T>* dresidual, bool dresidual_accumulate, Tensor<P>* dgamma,
                                  Tensor<P>* dbeta, bool param_accumulate) {
  check_same_shape("batch_norm_backward", x, dy);
  if (act == Activation::ReLU) check_same_shape("batch_norm_backward", x, y);
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  const int64_t M = N * HW;
  const T* px = x.data();
  const T* py = act == Activation::ReLU ? y.data() : nullptr;
  const T* pdy = dy.data();
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = static_cast<double>(mean.data()[c]);
      const double is = static_cast<double>(invstd.data()[c]);
      double sum_dz = 0.0, sum_dz_xhat = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) {
          double dz = static_cast<double>(pdy[base + i]);
          if (py && !(py[base + i] > T(0))) dz = 0.0;
          sum_dz += dz;
          sum_dz_xhat += dz * (static_cast<double>(px[base + i]) - mu) * is;
        }
      }
      if (dgamma) {
        P& g = dgamma->data()[c];
        g = static_cast<P>(param_accumulate ? static_cast<double>(g) + sum_dz_xhat : sum_dz_xhat);
      }
      if (dbeta) {
        P& b = dbeta->data()[c];
        b = static_cast<P>(param_accumulate ? static_cast<double>(b) + sum_dz : sum_dz);
      }
      const double k = static_cast<double>(gamma.data()[c]) * is;
      const double mean_dz = sum_dz / static_cast<double>(M);
      const double mean_dz_xhat = sum_dz_xhat / static_cast<double>(M);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t e = base + i;
          double dz = static_cast<double>(pdy[e]);
          if (py && !(py[e] > T(0))) dz = 0.0;
          if (dresidual) {
            T& r = dresidual->data()[e];
            r = dresidual_accumulate ? r + static_cast<T>(dz) : static_cast<T>(dz);
          }
          if (dx) {
            double g;
            if (training) {
              double xhat = (static_cast<double>(px[e]) - mu) * is;
              g = k * (dz - mean_dz - xhat * mean_dz_xhat);
            } else {
              g = k * dz;
            }
            T& out = dx->data()[e];
            out = dx_accumulate ? out + static_cast<T>(g) : static_cast<T>(g);
          }
        }
      }
    }
  });
}

template <typename T, typename P>
void batchnorm_forward_training(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                const Tensor<P>& beta, Tensor<P>& running_mean, Tensor<P>& running_var,
                                Tensor<P>& save_mean, Tensor<P>& save_invstd, Tensor<T>& y,
                                const BatchNormParams& bp, Activation act) {
  if constexpr (std::is_same<T, float>::value && std::is_same<P, float>::value)
    batchnorm_forward_training_fast(x, residual, gamma, beta, running_mean, running_var, save_mean,
                                    save_invstd, y, bp, act);
  else
    batchnorm_forward_training_reference(x, residual, gamma, beta, running_mean, running_var, save_mean,
                                         save_invstd, y, bp, act);
}

template <typename T, typename P>
void batchnorm_forward_inference(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                 const Tensor<P>& beta, const Tensor<P>& running_mean,
                                 const Tensor<P>& running_var, Tensor<T>& y, const BatchNormParams& bp,
                                 Activation act) {
  if constexpr (std::is_same<T, float>::value && std::is_same<P, float>::value)
    batchnorm_forward_inference_fast(x, residual, gamma, beta, running_mean, running_var, y, bp, act);
  else
    batchnorm_forward_inference_reference(x, residual, gamma, beta, running_mean, running_var, y, bp, act);
}

template <typename T, typename P>
void batchnorm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<P>& gamma,
                        const Tensor<P>& mean, const Tensor<P>& invstd, bool training, Activation act,
                        Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual, bool dresidual_accumulate,
                        Tensor<P>* dgamma, Tensor<P>* dbeta, bool param_accumulate) {
  if constexpr (std::is_same<T, float>::value && std::is_same<P, float>::value)
    batchnorm_backward_fast(x, y, dy, gamma, mean, invstd, training, act, dx, dx_accumulate, dresidual,
                            dresidual_accumulate, dgamma, dbeta, param_accumulate);
  else
    batchnorm_backward_reference(x, y, dy, gamma, mean, invstd, training, act, dx, dx_accumulate, dresidual,
                                 dresidual_accumulate, dgamma, dbeta, param_accumulate);
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
