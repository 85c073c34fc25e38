// The multiply-adds per second one core issues as float32 FMAs and as bfloat16 dot products (AVX-512
// VDPBF16PS: two bfloat16 products summed into each float32 lane), measured in a few milliseconds.
//
// Why: without AMX, whether oneDNN's bfloat16 convolutions can beat float32 ones is set by this ratio, and
// CPUs with the same feature flags differ by 4x (benchmarks/RESULTS.md: 0.47-0.49x on an AVX-512-BF16 Xeon,
// 1.98x on an AMD EPYC Zen 4). conv.hpp picks its bfloat16 path from it; bench_cpu_peak prints it.
// x86-64 with GCC or Clang only: elsewhere every rate is 0.
#pragma once

#include "resnet/core/abi.hpp"

#include <chrono>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RESNET_CPU_PEAK_X86 1
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {
namespace peak {

struct Rates {
  double fma_gmacs = 0;   // float32, 16 multiply-adds per FMA
  double bf16_gmacs = 0;  // bfloat16, 32 multiply-adds per VDPBF16PS
  double bf16_over_fp32() const { return fma_gmacs > 0 ? bf16_gmacs / fma_gmacs : 0; }
};

#if defined(RESNET_CPU_PEAK_X86)

inline bool has_avx512_bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

namespace detail {
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace detail

// Each runs `iters` rounds of one instruction on each of 12 independent register accumulators (enough to
// hide a 4-6 cycle latency on two ports) and returns multiply-adds per second / 1e9. Written in assembly so
// that what is timed is the same at every optimisation level: compiled at -O0, intrinsics keep the
// accumulators in memory, and the store-to-load latency is then what is measured, on both sides alike.
// The caller checks has_avx512_bf16() first.
// clang-format off
#define RESNET_PEAK_LOOP(op, xv, yv)                                                                       \
  asm volatile("1:\n\t"                                                                                    \
               #op " %[x], %[y], %[c0]\n\t"                                                                \
               #op " %[x], %[y], %[c1]\n\t"                                                                \
               #op " %[x], %[y], %[c2]\n\t"                                                                \
               #op " %[x], %[y], %[c3]\n\t"                                                                \
               #op " %[x], %[y], %[c4]\n\t"                                                                \
               #op " %[x], %[y], %[c5]\n\t"                                                                \
               #op " %[x], %[y], %[c6]\n\t"                                                                \
               #op " %[x], %[y], %[c7]\n\t"                                                                \
               #op " %[x], %[y], %[c8]\n\t"                                                                \
               #op " %[x], %[y], %[c9]\n\t"                                                                \
               #op " %[x], %[y], %[c10]\n\t"                                                               \
               #op " %[x], %[y], %[c11]\n\t"                                                               \
               "dec %[n]\n\t"                                                                              \
               "jnz 1b\n\t"                                                                                \
               : [c0] "+v"(c0), [c1] "+v"(c1), [c2] "+v"(c2), [c3] "+v"(c3), [c4] "+v"(c4), [c5] "+v"(c5), \
                 [c6] "+v"(c6), [c7] "+v"(c7), [c8] "+v"(c8), [c9] "+v"(c9), [c10] "+v"(c10),              \
                 [c11] "+v"(c11), [n] "+r"(n)                                                              \
               : [x] "v"(xv), [y] "v"(yv)                                                                  \
               : "cc")
// clang-format on

__attribute__((target("avx512f"))) inline double fma_gmacs(long iters) {
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
         c9 = c0, c10 = c0, c11 = c0;
  const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
  const long count = iters > 0 ? iters : 1;  // at least once: dec / jnz from 0 would not stop
  long n = count;
  const auto t0 = std::chrono::steady_clock::now();
  RESNET_PEAK_LOOP(vfmadd231ps, a, b);  // c += a * b: 16 multiply-adds
  return static_cast<double>(count) * 12 * 16 / detail::seconds_since(t0) / 1e9;
}

__attribute__((target("avx512f,avx512bf16"))) inline double bf16_dot_gmacs(long iters) {
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
         c9 = c0, c10 = c0, c11 = c0;
  const __m512i one = _mm512_set1_epi16(0x3f80);  // bfloat16 1.0 in every half
  const long count = iters > 0 ? iters : 1;       // at least once: dec / jnz from 0 would not stop
  long n = count;
  const auto t0 = std::chrono::steady_clock::now();
  RESNET_PEAK_LOOP(vdpbf16ps, one, one);  // c += pairwise dot of bfloat16 halves: 32 multiply-adds
  return static_cast<double>(count) * 12 * 32 / detail::seconds_since(t0) / 1e9;
}
#undef RESNET_PEAK_LOOP

// Best of `rounds`, the two alternating: a busy machine only ever slows a run down, and alternating spreads
// a frequency change over both. Zero rates where the CPU has no avx512_bf16.
inline Rates measure(long iters, int rounds) {
  Rates r;
  if (!has_avx512_bf16()) return r;
  for (int i = 0; i < rounds; ++i) {
    const double f = fma_gmacs(iters), b = bf16_dot_gmacs(iters);
    if (f > r.fma_gmacs) r.fma_gmacs = f;
    if (b > r.bf16_gmacs) r.bf16_gmacs = b;
  }
  return r;
}

#else
inline bool has_avx512_bf16() { return false; }
inline Rates measure(long, int) { return {}; }
#endif

// This CPU's bfloat16 / float32 multiply-add rate, measured once per process (about 10 ms: 5 rounds of 2.4
// million instructions each way); 0 without avx512_bf16.
inline double bf16_over_fp32() {
  static const double ratio = measure(200000, 5).bf16_over_fp32();
  return ratio;
}

}  // namespace peak
}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
