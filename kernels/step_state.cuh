// One-thread bookkeeping kernels that keep per-step values on the device, so a training step needs no host
// read (backend/step_math.hpp holds the arithmetic, shared with the CPU backend):
//   count_up:          counter += 1 (BatchNorm2d's num_batches_tracked)
//   record_step_loss:  the Trainer's loss sums, first non-finite step and the optimizer's skip flag
//   bn_running_invstd: 1 / sqrt(running_var + eps) for eval-mode BatchNorm's backward (grid-stride)
#pragma once

#include "resnet/core/abi.hpp"
#include "launch.cuh"
#include "resnet/backend/step_math.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

template <typename = void>
__global__ void count_up_kernel(int64_t* counter, int64_t n) {
  for (int64_t i = 0; i < n; ++i) counter[i] += 1;
}

template <typename T>
__global__ void record_step_loss_kernel(const T* loss, double* stats, double* optim, double n, double N) {
  loss_stats::record(static_cast<double>(to_cmp(loss[0])), n, N, stats, optim);
}

template <typename P>
__global__ void __launch_bounds__(kBlock)
    bn_running_invstd_kernel(const P* __restrict__ var, double eps, P* __restrict__ invstd, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    invstd[i] = bn::running_invstd(var[i], eps);
}

inline void count_up(int64_t* counter, int64_t n, const LaunchEnv& env) {
  if (n <= 0) return;
  RESNET_LAUNCH((count_up_kernel<>), 1, 1, env, counter, n);
}

template <typename T>
void record_step_loss(const T* loss, double* stats, double* optim, double n, double N, const LaunchEnv& env) {
  RESNET_LAUNCH((record_step_loss_kernel<T>), 1, 1, env, loss, stats, optim, n, N);
}

template <typename P>
void bn_running_invstd(const P* var, double eps, P* invstd, int64_t n, const LaunchEnv& env) {
  if (n <= 0) return;
  RESNET_LAUNCH((bn_running_invstd_kernel<P>), grid_for(n, kBlock, env.sm_count), kBlock, env, var, eps,
                invstd, n);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
