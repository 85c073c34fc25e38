// Reductions inside a block: warp shuffles, then one value per warp through shared memory. And Welford's
// running (count, mean, M2) with Chan's merge, which the BatchNorm statistics use so that a channel with
// a large mean and a small spread keeps its variance (a sum of squares minus a squared sum would not).
//
// Block reductions need blockDim.x to be a multiple of 32 (at most 1024) and every thread to call them.
#pragma once

#include "resnet/core/abi.hpp"
#include "common.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

constexpr unsigned kFullMask = 0xffffffffu;

template <typename C>
__device__ __forceinline__ C warp_sum(C v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}
template <typename C>
__device__ __forceinline__ C warp_max(C v) {
  for (int o = 16; o > 0; o >>= 1) v = k_max(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// K sums over the block at once (one pair of barriers for all of them), returned to every thread.
template <int K, typename C>
__device__ void block_sum(C (&v)[K]) {
  __shared__ C partial[K][32];
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int nwarps = static_cast<int>(blockDim.x) >> 5;
  for (int k = 0; k < K; ++k) v[k] = warp_sum(v[k]);
  if (lane == 0)
    for (int k = 0; k < K; ++k) partial[k][warp] = v[k];
  __syncthreads();
  for (int k = 0; k < K; ++k) {
    C s = lane < nwarps ? partial[k][lane] : C(0);
    v[k] = warp_sum(s);
  }
  __syncthreads();  // partial may be reused by the next call
}

template <typename C>
__device__ C block_sum(C v) {
  C a[1] = {v};
  block_sum<1>(a);
  return a[0];
}

template <typename C>
__device__ C block_max(C v) {
  __shared__ C partial[32];
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int nwarps = static_cast<int>(blockDim.x) >> 5;
  v = warp_max(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  C m = partial[0];
  for (int w = 1; w < nwarps; ++w) m = k_max(m, partial[w]);
  __syncthreads();
  return m;
}

// ---------------------------------------------------------------- Welford / Chan

template <typename C>
struct Welford {
  C n, mean, m2;  // count, mean, sum of squared deviations from the mean
};

template <typename C>
RESNET_HD inline Welford<C> welford_merge(const Welford<C>& a, const Welford<C>& b) {
  const C n = a.n + b.n;
  if (n == C(0)) return Welford<C>{C(0), C(0), C(0)};
  const C delta = b.mean - a.mean;
  const C wb = b.n / n;
  return Welford<C>{n, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.n * wb};
}

// The statistics of a handful of values held in registers (two-pass: exact enough, no division by n
// per value). Unrolled so that v stays in registers.
template <typename C, int V>
RESNET_HD inline Welford<C> welford_of(const C (&v)[V], int count = V) {
  C s = C(0);
  RESNET_UNROLL
  for (int i = 0; i < V; ++i)
    if (i < count) s += v[i];
  if (count == 0) return Welford<C>{C(0), C(0), C(0)};
  const C mean = s / C(count);
  C m2 = C(0);
  RESNET_UNROLL
  for (int i = 0; i < V; ++i)
    if (i < count) m2 += (v[i] - mean) * (v[i] - mean);
  return Welford<C>{C(count), mean, m2};
}

template <typename C>
__device__ __forceinline__ Welford<C> warp_welford(Welford<C> w) {
  for (int o = 16; o > 0; o >>= 1) {
    Welford<C> other{__shfl_xor_sync(kFullMask, w.n, o), __shfl_xor_sync(kFullMask, w.mean, o),
                     __shfl_xor_sync(kFullMask, w.m2, o)};
    w = welford_merge(w, other);
  }
  return w;
}

// Merge over the block, returned to every thread.
template <typename C>
__device__ Welford<C> block_welford(Welford<C> w) {
  __shared__ C part_n[32], part_mean[32], part_m2[32];
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int nwarps = static_cast<int>(blockDim.x) >> 5;
  w = warp_welford(w);
  if (lane == 0) {
    part_n[warp] = w.n;
    part_mean[warp] = w.mean;
    part_m2[warp] = w.m2;
  }
  __syncthreads();
  Welford<C> s{C(0), C(0), C(0)};
  if (lane < nwarps) s = Welford<C>{part_n[lane], part_mean[lane], part_m2[lane]};
  s = warp_welford(s);
  __syncthreads();
  return s;
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
