// What every kernel file shares: the compute type of each storage type, loads and stores that convert
// between them (hardware conversions on the GPU, the bit-exact software ones of core/dtype.hpp on the
// CPU simulator), 16-byte packs for vector loads, and division by a runtime constant without a divide.
//
// Kernel files compile two ways: by nvcc into the resnet::cuda library, and by g++ into the CPU tests
// through the simulator tests/cuda/sim.hpp (which must be included first). Both run the same source.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <cstdint>

#include "resnet/core/dtype.hpp"

#if defined(__CUDACC__)
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#elif !defined(RESNET_KERNEL_SIM)
#error "kernels/*.cuh build with nvcc, or with g++ after tests/cuda/sim.hpp (the CPU simulator)"
#endif

// `#pragma unroll` in __host__ __device__ functions: only the device pass knows it.
#if defined(__CUDA_ARCH__)
#define RESNET_UNROLL _Pragma("unroll")
#else
#define RESNET_UNROLL
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

#if defined(__CUDACC__)
using stream_t = cudaStream_t;
#else
using stream_t = void*;
#endif

// Arithmetic happens in float for the 16-bit types and float, in double for double.
template <typename T>
struct compute_type {
  using type = float;
};
template <>
struct compute_type<double> {
  using type = double;
};
template <typename T>
using cmp_t = typename compute_type<T>::type;

RESNET_HD inline float to_cmp(float v) { return v; }
RESNET_HD inline double to_cmp(double v) { return v; }
RESNET_HD inline float to_cmp(half_t v) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(v.bits));
#else
  return static_cast<float>(v);
#endif
}
RESNET_HD inline float to_cmp(bf16_t v) {
#if defined(__CUDA_ARCH__)
  return __bfloat162float(__ushort_as_bfloat16(v.bits));
#else
  return static_cast<float>(v);
#endif
}

template <typename T>
struct store_as;
template <>
struct store_as<float> {
  static RESNET_HD float from(float v) { return v; }
  static RESNET_HD float from(double v) { return static_cast<float>(v); }
};
template <>
struct store_as<double> {
  static RESNET_HD double from(double v) { return v; }
};
template <>
struct store_as<half_t> {
  static RESNET_HD half_t from(float v) {
    half_t h;
#if defined(__CUDA_ARCH__)
    h.bits = __half_as_ushort(__float2half_rn(v));
#else
    h.bits = half_t::from_float(v);
#endif
    return h;
  }
};
template <>
struct store_as<bf16_t> {
  static RESNET_HD bf16_t from(float v) {
    bf16_t b;
#if defined(__CUDA_ARCH__)
    b.bits = __bfloat16_as_ushort(__float2bfloat16_rn(v));
#else
    b.bits = bf16_t::from_float(v);
#endif
    return b;
  }
};
// from_cmp<T>(v): round a compute value to storage type T (round to nearest even).
template <typename T, typename C>
RESNET_HD inline T from_cmp(C v) {
  return store_as<T>::from(v);
}

// V elements of T in one aligned 16-byte (or smaller) load.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};
// Elements per 16-byte vector load.
template <typename T>
constexpr int vec_width() {
  return static_cast<int>(16 / sizeof(T));
}
inline bool aligned_to(const void* p, int bytes) {
  return (reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes)) == 0;
}

// n / d and n % d for a fixed d >= 1 and any 32-bit n, with a multiply and a shift (Granlund and
// Montgomery): l = ceil(log2 d), m = floor(2^32 (2^l - d) / d) + 1, n / d = (umulhi(n, m) + n) >> l.
struct FastDiv {
  uint32_t d = 1, m = 0, l = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t divisor) : d(divisor) {
    l = 0;
    while ((uint64_t(1) << l) < divisor) ++l;
    m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << l) - divisor)) / divisor + 1);
  }
  RESNET_HD uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    uint64_t t = static_cast<uint64_t>(__umulhi(n, m)) + n;
#else
    uint64_t t = ((static_cast<uint64_t>(n) * m) >> 32) + n;
#endif
    return static_cast<uint32_t>(t >> l);
  }
  RESNET_HD uint32_t mod(uint32_t n) const { return n - div(n) * d; }
};

// *p += v for every storage type (hardware atomics: half needs sm_70, bfloat16 sm_80).
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(half_t* p, float v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(reinterpret_cast<__half*>(p), __float2half_rn(v));
#else
  *p = half_t(static_cast<float>(*p) + v);
#endif
}
__device__ __forceinline__ void atomic_add(bf16_t* p, float v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __float2bfloat16_rn(v));
#else
  *p = bf16_t(static_cast<float>(*p) + v);
#endif
}

// Waits for every thread of the thread-block cluster, and makes the memory writes before it (global ones
// included) visible to the whole cluster after it (barrier.cluster arrive.release / wait.acquire). Hopper
// and newer; the launchers never run a cluster elsewhere.
__device__ __forceinline__ void cluster_sync() {
#if defined(RESNET_KERNEL_SIM)
  ::sim::detail::cluster_barrier();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cooperative_groups::this_cluster().sync();
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// Math on the compute types, the same names on both compilers.
RESNET_HD inline float k_exp(float x) { return ::expf(x); }
RESNET_HD inline double k_exp(double x) { return ::exp(x); }
RESNET_HD inline float k_log(float x) { return ::logf(x); }
RESNET_HD inline double k_log(double x) { return ::log(x); }
RESNET_HD inline float k_sqrt(float x) { return ::sqrtf(x); }
RESNET_HD inline double k_sqrt(double x) { return ::sqrt(x); }
RESNET_HD inline float k_max(float a, float b) { return a > b ? a : b; }
RESNET_HD inline double k_max(double a, double b) { return a > b ? a : b; }
template <typename C>
RESNET_HD inline bool k_isfinite(C x) {
  return x - x == x - x;  // false for inf and nan, without relying on a library isfinite in device code
}

// Launch shape: 256 threads a block unless a kernel says otherwise; grids of grid-stride loops are capped
// at a few waves of blocks per multiprocessor.
constexpr int kBlock = 256;
inline unsigned grid_for(int64_t work_items, int threads, int sm_count, int waves = 8) {
  int64_t blocks = (work_items + threads - 1) / threads;
  int64_t cap = static_cast<int64_t>(sm_count > 0 ? sm_count : 1) * waves * (2048 / threads);
  if (blocks > cap) blocks = cap;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
