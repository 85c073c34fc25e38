// SyncBatchNorm's split pieces on the CPU (NCHW, any T, per-channel work in double; formulas from
// batchnorm_sync_math.hpp and batchnorm_math.hpp, the same the CUDA kernels call). The forward between
// them, normalising with the global statistics, is batchnorm_forward_inference with the global mean and
// biased variance in place of the running ones (dist/sync_batchnorm_op.hpp runs the sequence).
//   batchnorm_sync_stats:           x -> this rank's [count, mean, M2] per channel
//   batchnorm_sync_combine:         [world, 3, C] gathered -> saved mean/invstd, variance, running stats,
//   count batchnorm_sync_backward_reduce: this rank's sum(dz), sum(dz * (x - mean)); dgamma, dbeta from them
//   batchnorm_sync_backward_apply:  dx from the all-reduced sums and the global count; dresidual = dz
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"

#include "resnet/backend/batchnorm_sync_math.hpp"
#include "resnet/backend/contract/batchnorm_sync.hpp"
#include "resnet/backend/params.hpp"
#include "resnet/core/parallel.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

template <typename T>
void batchnorm_sync_stats(const Tensor<T>& x, Tensor<double>& stats) {
  const contract::BatchNormDims d = contract::batchnorm_sync_stats("sync_batch_norm (statistics)", x, stats);
  const int64_t N = d.N, C = d.C, HW = d.HW;
  const double M = static_cast<double>(d.count());
  const T* px = x.data();
  double* ps = stats.data();
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const T* xc = px + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) sum += static_cast<double>(xc[i]);
      }
      const double mean = sum / M;
      double m2 = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const T* xc = px + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) {
          const double dev = static_cast<double>(xc[i]) - mean;
          m2 += dev * dev;
        }
      }
      ps[bn::kCount * C + c] = M;
      ps[bn::kMean * C + c] = mean;
      ps[bn::kM2 * C + c] = m2;
    }
  });
}

template <typename P>
void batchnorm_sync_combine(const Tensor<double>& gathered, Tensor<P>& save_mean, Tensor<P>& save_invstd,
                            Tensor<P>& var, Tensor<P>& running_mean, Tensor<P>& running_var,
                            Tensor<double>& count, const BatchNormParams& bp) {
  const int64_t C = contract::batchnorm_sync_combine("sync_batch_norm (combine)", gathered, save_mean,
                                                     save_invstd, var, running_mean, running_var, count);
  const int64_t world = gathered.dim(0);
  for (int64_t c = 0; c < C; ++c) {
    const bn::Moments m = bn::gathered_channel(gathered.data(), world, C, c);
    RESNET_CHECK(m.count > 1.0, "sync_batch_norm: training needs more than one value per channel over all ",
                 world, " ranks, got ", m.count);
    bn::store_global_statistics(m, bp.eps, bp.momentum, save_mean.data() + c, save_invstd.data() + c,
                                var.data() + c, running_mean.data() + c, running_var.data() + c);
    if (c == 0) count.data()[0] = m.count;
  }
}

template <typename T, typename P>
void batchnorm_sync_backward_reduce(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                    const Tensor<P>& mean, const Tensor<P>& invstd, Activation act,
                                    Tensor<double>& sums, Tensor<P>* dgamma, Tensor<P>* dbeta,
                                    bool param_accumulate) {
  const bool relu = act == Activation::ReLU;
  const contract::BatchNormDims d = contract::batchnorm_sync_backward_reduce(
      "sync_batch_norm_backward (reduce)", x, y, dy, mean, invstd, relu, sums, dgamma, dbeta);
  const int64_t N = d.N, C = d.C, HW = d.HW;
  const T* px = x.data();
  const T* py = relu ? y.data() : nullptr;
  const T* pdy = dy.data();
  double* ps = sums.data();
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const double mu = static_cast<double>(mean.data()[c]);
      double s = 0.0, sx = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        for (int64_t i = 0; i < HW; ++i) {
          const double g =
              bn::dz(static_cast<double>(pdy[base + i]), py ? static_cast<double>(py[base + i]) : 0.0, relu);
          s += g;
          sx += g * (static_cast<double>(px[base + i]) - mu);
        }
      }
      ps[bn::kSumDz * C + c] = s;
      ps[bn::kSumDzXmu * C + c] = sx;
      bn::store_param_grads(s, sx, static_cast<double>(invstd.data()[c]), param_accumulate,
                            dgamma ? dgamma->data() + c : nullptr, dbeta ? dbeta->data() + c : nullptr);
    }
  });
}

template <typename T, typename P>
void batchnorm_sync_backward_apply(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                   const Tensor<P>& gamma, const Tensor<P>& mean, const Tensor<P>& invstd,
                                   const Tensor<double>& sums, const Tensor<double>& count, Activation act,
                                   Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual,
                                   bool dresidual_accumulate) {
  const bool relu = act == Activation::ReLU;
  const contract::BatchNormDims d = contract::batchnorm_sync_backward_apply(
      "sync_batch_norm_backward (apply)", x, y, dy, gamma, mean, invstd, sums, count, relu, dx, dresidual);
  const int64_t C = d.C, HW = d.HW;
  const T* px = x.data();
  const T* py = relu ? y.data() : nullptr;
  const T* pdy = dy.data();
  const double* ps = sums.data();
  const double total = count.data()[0];
  parallel_for(d.N * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t c = nc % C;
      const auto k = bn::dx_coefficients<double>(
          static_cast<double>(gamma.data()[c]), static_cast<double>(mean.data()[c]),
          static_cast<double>(invstd.data()[c]), ps[bn::kSumDz * C + c], ps[bn::kSumDzXmu * C + c], total,
          true);
      const int64_t base = nc * HW;
      for (int64_t i = 0; i < HW; ++i) {
        const int64_t el = base + i;
        const double g = bn::dz(static_cast<double>(pdy[el]), py ? static_cast<double>(py[el]) : 0.0, relu);
        if (dresidual) {
          T& r = dresidual->data()[el];
          r = dresidual_accumulate ? static_cast<T>(static_cast<double>(r) + g) : static_cast<T>(g);
        }
        if (dx) {
          const double v = bn::dx(g, static_cast<double>(px[el]) - k.mean, k);
          T& out = dx->data()[el];
          out = dx_accumulate ? static_cast<T>(static_cast<double>(out) + v) : static_cast<T>(v);
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
