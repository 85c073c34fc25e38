// Whole-tensor reductions: the sum of all elements (accumulated in double, two kernels, a fixed order so
// the result is deterministic) and the all-finite check (any thread that sees inf or NaN sets a flag).
#pragma once

#include "resnet/core/abi.hpp"
#include "reduce.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

constexpr int kSumMaxBlocks = 1024;

template <typename T>
__global__ void __launch_bounds__(kBlock)
    sum_partial_kernel(const T* __restrict__ x, int64_t n, double* __restrict__ partial) {
  double acc = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc += static_cast<double>(to_cmp(x[i]));
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <typename T>
__global__ void __launch_bounds__(kBlock)
    sum_final_kernel(const double* __restrict__ partial, int blocks, T* y) {
  double acc = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < blocks; i += static_cast<int>(blockDim.x))
    acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) y[0] = from_cmp<T>(static_cast<cmp_t<T>>(acc));
}

inline size_t sum_all_workspace_bytes() { return kSumMaxBlocks * sizeof(double); }

// y[0] = sum of x[0..n).
template <typename T>
void sum_all(const T* x, int64_t n, T* y, void* workspace, const LaunchEnv& env) {
  unsigned blocks = grid_for(n, kBlock, env.sm_count, 2);
  if (blocks > kSumMaxBlocks) blocks = kSumMaxBlocks;
  auto* partial = static_cast<double*>(workspace);
  RESNET_LAUNCH((sum_partial_kernel<T>), dim3(blocks), kBlock, env, x, n, partial);
  RESNET_LAUNCH((sum_final_kernel<T>), dim3(1), kBlock, env, partial, static_cast<int>(blocks), y);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) non_finite_kernel(const T* __restrict__ x, int64_t n, int* flag) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  bool bad = false;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    bad = bad || !k_isfinite(to_cmp(x[i]));
  if (bad) *flag = 1;  // every writer writes the same value
}

// Sets *flag (zeroed by the caller) to 1 when x holds an inf or NaN.
template <typename T>
void find_non_finite(const T* x, int64_t n, int* flag, const LaunchEnv& env) {
  if (n <= 0) return;
  RESNET_LAUNCH((non_finite_kernel<T>), dim3(grid_for(n, kBlock, env.sm_count, 2)), kBlock, env, x, n, flag);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
