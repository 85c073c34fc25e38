// Memory-layout changes on the device: a batched transpose, dst[b, j, i] = [dst +] src[b, i, j] for src
// [B, I, J]. The channels-last convolutions use it to hand cuDNN OHWI (KRSC) filters made from the model's
// OIHW weights (B = O, I = C, J = KH * KW) and to bring the filter gradient back (I = KH * KW, J = C).
// Weights are small (at most a few MB): a plain grid-stride loop with coalesced writes is enough.
#pragma once

#include "resnet/core/abi.hpp"
#include "launch.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

template <typename T>
__global__ void __launch_bounds__(kBlock)
    batched_transpose_kernel(const T* __restrict__ src, T* dst, int64_t n, FastDiv rows, FastDiv plane,
                             bool acc) {
  const int64_t I = rows.d;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const uint32_t u = static_cast<uint32_t>(e);
    const int64_t b = plane.div(u), rem = e - b * plane.d;  // plane: I * J
    const int64_t j = rows.div(static_cast<uint32_t>(rem)), i = rem - j * I;
    const int64_t J = plane.d / I;
    const T v = src[(b * I + i) * J + j];
    dst[e] = acc ? from_cmp<T>(to_cmp(dst[e]) + to_cmp(v)) : v;
  }
}

// dst [B, J, I] = [dst +] the transpose of each of src's B matrices [I, J]. n = B * I * J < 2^32.
template <typename T>
void batched_transpose(const T* src, T* dst, int64_t B, int64_t I, int64_t J, bool acc,
                       const LaunchEnv& env) {
  const int64_t n = B * I * J;
  if (n == 0) return;
  RESNET_LAUNCH((batched_transpose_kernel<T>), grid_for(n, kBlock, env.sm_count), kBlock, env, src, dst, n,
                FastDiv(static_cast<uint32_t>(I)), FastDiv(static_cast<uint32_t>(I * J)), acc);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
