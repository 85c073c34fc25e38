// BatchNorm2d on the CPU, NCHW or channels-last, with the optional fused residual add and ReLU:
//   y = act(gamma * (x - mean) * invstd + beta [+ residual])
// Training uses the batch's statistics (two-pass mean and variance, accumulated in double) and updates the
// running statistics with the unbiased variance, as PyTorch does; evaluation uses the running statistics.
// The backward takes dy at the activation's output and the saved y for the ReLU mask, and produces the
// gradients of x, of the residual, and of gamma and beta in one pass per channel.
//
// The reference (any T; plain loops accumulating in double, what every test compares with). It checks its
// input with contract/batchnorm.hpp and computes with the formulas of batchnorm_math.hpp, which the fast
// float path (batchnorm_fast.hpp) and the CUDA kernels call too: only the loops differ. It knows nothing of
// the fast path; batchnorm.hpp chooses between them.
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
// Where value i (of H * W) of channel c of image n lies, in either memory format (the contract made every
// tensor of the op dense in x's): offset = n * n_stride + c * c_stride + i * i_stride.
struct ChannelStrides {
  int64_t n_stride, c_stride, i_stride;
  ChannelStrides(const TensorBase& x, int64_t C, int64_t HW)
      : n_stride(C * HW),
        c_stride(x.suggest_memory_format() == MemoryFormat::ChannelsLast ? 1 : HW),
        i_stride(x.suggest_memory_format() == MemoryFormat::ChannelsLast ? C : 1) {}
  int64_t at(int64_t n, int64_t c, int64_t i) const { return n * n_stride + c * c_stride + i * i_stride; }
};
}  // namespace bn_detail

template <typename T, typename P>
void batchnorm_forward_training_reference(const Tensor<T>& x, const Tensor<T>* residual,
                                          const Tensor<P>& gamma, const Tensor<P>& beta,
                                          Tensor<P>& running_mean, Tensor<P>& running_var,
                                          Tensor<P>& save_mean, Tensor<P>& save_invstd, Tensor<T>& y,
                                          const BatchNormParams& bp, Activation act) {
  const contract::BatchNormDims d = contract::batchnorm_forward(
      "batch_norm", x, residual, gamma, beta, running_mean, running_var, &save_mean, &save_invstd, y, true);
  const int64_t N = d.N, C = d.C, HW = d.HW;
  const double M = static_cast<double>(d.count());
  const bool relu = act == Activation::ReLU;
  const T* px = x.data();
  const T* pr = residual ? residual->data() : nullptr;
  T* py = y.data();
  const bn_detail::ChannelStrides st(x, C, HW);
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t i = 0; i < HW; ++i) sum += static_cast<double>(px[st.at(n, c, i)]);
      }
      const double mean = sum / M;
      double sq = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t i = 0; i < HW; ++i) {
          const double dev = static_cast<double>(px[st.at(n, c, i)]) - mean;
          sq += dev * dev;
        }
      }
      const double var = sq / M;
      const double inv = bn::invstd(var, bp.eps);
      bn::store_statistics(mean, var, inv, M, bp.momentum, save_mean.data() + c, save_invstd.data() + c,
                           running_mean.data() + c, running_var.data() + c);
      const auto k = bn::scale_shift<T>(static_cast<double>(gamma.data()[c]),
                                        static_cast<double>(beta.data()[c]), inv, mean);  // pivot 0
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t e = st.at(n, c, i);
          py[e] = bn::apply(px[e], T(0), k.scale, k.shift, pr ? pr[e] : T(0), relu);
        }
      }
    }
  });
}

template <typename T, typename P>
void batchnorm_forward_inference_reference(const Tensor<T>& x, const Tensor<T>* residual,
                                           const Tensor<P>& gamma, const Tensor<P>& beta,
                                           const Tensor<P>& running_mean, const Tensor<P>& running_var,
                                           Tensor<T>& y, const BatchNormParams& bp, Activation act) {
  const contract::BatchNormDims d = contract::batchnorm_forward(
      "batch_norm", x, residual, gamma, beta, running_mean, running_var,
      static_cast<const Tensor<P>*>(nullptr), static_cast<const Tensor<P>*>(nullptr), y, false);
  const int64_t C = d.C, HW = d.HW;
  const bool relu = act == Activation::ReLU;
  const T* px = x.data();
  const T* pr = residual ? residual->data() : nullptr;
  T* py = y.data();
  const bn_detail::ChannelStrides st(x, C, HW);
  parallel_for(d.N * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const double inv = bn::invstd(static_cast<double>(running_var.data()[c]), bp.eps);
      const auto k =
          bn::scale_shift<T>(static_cast<double>(gamma.data()[c]), static_cast<double>(beta.data()[c]), inv,
                             static_cast<double>(running_mean.data()[c]));  // pivot 0
      for (int64_t i = 0; i < HW; ++i) {
        const int64_t o = st.at(n, c, i);
        py[o] = bn::apply(px[o], T(0), k.scale, k.shift, pr ? pr[o] : T(0), relu);
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
  const bool relu = act == Activation::ReLU;
  const contract::BatchNormDims d = contract::batchnorm_backward("batch_norm_backward", x, y, dy, gamma, mean,
                                                                 invstd, relu, dx, dresidual, dgamma, dbeta);
  const int64_t N = d.N, C = d.C, HW = d.HW;
  const T* px = x.data();
  const T* py = relu ? y.data() : nullptr;
  const T* pdy = dy.data();
  // dz in double, y's mask applied (y is not read without the ReLU).
  auto dz_at = [&](int64_t e) {
    return bn::dz(static_cast<double>(pdy[e]), py ? static_cast<double>(py[e]) : 0.0, relu);
  };
  const bn_detail::ChannelStrides st(x, C, HW);
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = static_cast<double>(mean.data()[c]);
      const double is = static_cast<double>(invstd.data()[c]);
      double sum_dz = 0.0, sum_dz_xmu = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t e = st.at(n, c, i);
          const double g = dz_at(e);
          sum_dz += g;
          sum_dz_xmu += g * (static_cast<double>(px[e]) - mu);
        }
      }
      bn::store_param_grads(sum_dz, sum_dz_xmu, is, param_accumulate, dgamma ? dgamma->data() + c : nullptr,
                            dbeta ? dbeta->data() + c : nullptr);
      const auto k = bn::dx_coefficients<double>(static_cast<double>(gamma.data()[c]), mu, is, sum_dz,
                                                 sum_dz_xmu, static_cast<double>(d.count()), training);
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t e = st.at(n, c, i);
          const double g = dz_at(e);
          if (dresidual) {
            T& r = dresidual->data()[e];
            r = dresidual_accumulate ? r + static_cast<T>(g) : static_cast<T>(g);
          }
          if (dx) {
            const double v = bn::dx(g, static_cast<double>(px[e]) - k.mean, k);
            T& out = dx->data()[e];
            out = dx_accumulate ? out + static_cast<T>(v) : static_cast<T>(v);
          }
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
