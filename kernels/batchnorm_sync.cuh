// SyncBatchNorm's split pieces as CUDA kernels (the CPU twins are backend/cpu/batchnorm_sync.hpp): the
// per-channel rules are the host+device functions of backend/batchnorm_sync_math.hpp and
// batchnorm_math.hpp, so the formulas cannot drift apart. Statistics and the backward's sums are reduced
// in double, one block per channel (the statistics in two passes: mean, then squared deviations from it);
// the apply pass is a grid-stride loop in the compute type. Row-major NCHW, 64-bit indices.
// These are the simple forms: one block a channel reads the channel twice; fine for the small per-rank
// batches of data parallelism, and tested on the simulator (tests/ops/cases_batchnorm_sync.cpp).
#pragma once

#include "resnet/core/abi.hpp"
#include "launch.cuh"
#include "reduce.cuh"
#include "resnet/backend/batchnorm_sync_math.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

constexpr int kBnSyncBlock = 256;

template <typename T>
__device__ __forceinline__ double load_double(const T* p, int64_t i) {
  return static_cast<double>(to_cmp(p[i]));
}

template <typename T>
__global__ void bn_sync_stats_kernel(const T* x, double* stats, int64_t N, int64_t C, int64_t HW) {
  const int64_t c = blockIdx.x, M = N * HW;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) s += load_double(x, ((i / HW) * C + c) * HW + i % HW);
  const double mean = block_sum(s) / static_cast<double>(M);
  double q = 0.0;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    const double d = load_double(x, ((i / HW) * C + c) * HW + i % HW) - mean;
    q += d * d;
  }
  q = block_sum(q);
  if (threadIdx.x == 0) {
    stats[bn::kCount * C + c] = static_cast<double>(M);
    stats[bn::kMean * C + c] = mean;
    stats[bn::kM2 * C + c] = q;
  }
}

template <typename P>
__global__ void bn_sync_combine_kernel(const double* gathered, int64_t world, int64_t C, P* save_mean,
                                       P* save_invstd, P* var, P* running_mean, P* running_var, double* count,
                                       double eps, double momentum) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const bn::Moments m = bn::gathered_channel(gathered, world, C, c);
  bn::store_global_statistics(m, eps, momentum, save_mean + c, save_invstd + c, var + c, running_mean + c,
                              running_var + c);
  if (c == 0) count[0] = m.count;
}

template <typename T, typename P>
__global__ void bn_sync_backward_reduce_kernel(const T* x, const T* y, const T* dy, const P* mean,
                                               const P* invstd, bool relu, double* sums, P* dgamma, P* dbeta,
                                               bool param_accumulate, int64_t N, int64_t C, int64_t HW) {
  const int64_t c = blockIdx.x, M = N * HW;
  const double mu = static_cast<double>(mean[c]);
  double v[2] = {0.0, 0.0};
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    const int64_t e = ((i / HW) * C + c) * HW + i % HW;
    const double g = bn::dz(load_double(dy, e), relu ? load_double(y, e) : 0.0, relu);
    v[0] += g;
    v[1] += g * (load_double(x, e) - mu);
  }
  block_sum<2>(v);
  if (threadIdx.x == 0) {
    sums[bn::kSumDz * C + c] = v[0];
    sums[bn::kSumDzXmu * C + c] = v[1];
    bn::store_param_grads(v[0], v[1], static_cast<double>(invstd[c]), param_accumulate,
                          dgamma ? dgamma + c : nullptr, dbeta ? dbeta + c : nullptr);
  }
}

template <typename T, typename P>
__global__ void bn_sync_backward_apply_kernel(const T* x, const T* y, const T* dy, const P* gamma,
                                              const P* mean, const P* invstd, const double* sums,
                                              const double* count, bool relu, T* dx, bool dx_accumulate,
                                              T* dres, bool dres_accumulate, int64_t N, int64_t C,
                                              int64_t HW) {
  using Cm = cmp_t<T>;
  const int64_t total = N * C * HW;
  const double n = count[0];
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (e / HW) % C;
    const Cm g = bn::dz(to_cmp(dy[e]), relu ? to_cmp(y[e]) : Cm(0), relu);
    if (dres) dres[e] = from_cmp<T>(dres_accumulate ? to_cmp(dres[e]) + g : g);
    if (dx) {
      const auto k = bn::dx_coefficients<Cm>(static_cast<double>(gamma[c]), static_cast<double>(mean[c]),
                                             static_cast<double>(invstd[c]), sums[bn::kSumDz * C + c],
                                             sums[bn::kSumDzXmu * C + c], n, true);
      const Cm v = bn::dx(g, to_cmp(x[e]) - k.mean, k);
      dx[e] = from_cmp<T>(dx_accumulate ? to_cmp(dx[e]) + v : v);
    }
  }
}

// ---- launchers (host): shapes are checked by the callers (contract/batchnorm_sync.hpp)

template <typename T>
void bn_sync_stats(const T* x, double* stats, int64_t N, int64_t C, int64_t HW, const LaunchEnv& env) {
  RESNET_LAUNCH((bn_sync_stats_kernel<T>), static_cast<unsigned>(C), kBnSyncBlock, env, x, stats, N, C, HW);
}

template <typename P>
void bn_sync_combine(const double* gathered, int64_t world, int64_t C, P* save_mean, P* save_invstd, P* var,
                     P* running_mean, P* running_var, double* count, double eps, double momentum,
                     const LaunchEnv& env) {
  const unsigned grid = static_cast<unsigned>((C + kBnSyncBlock - 1) / kBnSyncBlock);
  RESNET_LAUNCH((bn_sync_combine_kernel<P>), grid, kBnSyncBlock, env, gathered, world, C, save_mean,
                save_invstd, var, running_mean, running_var, count, eps, momentum);
}

template <typename T, typename P>
void bn_sync_backward_reduce(const T* x, const T* y, const T* dy, const P* mean, const P* invstd, bool relu,
                             double* sums, P* dgamma, P* dbeta, bool param_accumulate, int64_t N, int64_t C,
                             int64_t HW, const LaunchEnv& env) {
  RESNET_LAUNCH((bn_sync_backward_reduce_kernel<T, P>), static_cast<unsigned>(C), kBnSyncBlock, env, x, y, dy,
                mean, invstd, relu, sums, dgamma, dbeta, param_accumulate, N, C, HW);
}

template <typename T, typename P>
void bn_sync_backward_apply(const T* x, const T* y, const T* dy, const P* gamma, const P* mean,
                            const P* invstd, const double* sums, const double* count, bool relu, T* dx,
                            bool dx_accumulate, T* dres, bool dres_accumulate, int64_t N, int64_t C,
                            int64_t HW, const LaunchEnv& env) {
  RESNET_LAUNCH((bn_sync_backward_apply_kernel<T, P>), grid_for(N * C * HW, kBlock, env.sm_count), kBlock,
                env, x, y, dy, gamma, mean, invstd, sums, count, relu, dx, dx_accumulate, dres,
                dres_accumulate, N, C, HW);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
