// bench_cpu_peak: the multiply-adds per second one core can issue as float32 FMAs and as bfloat16 dot
// products (AVX-512 VDPBF16PS, two bfloat16 products summed into each float32 lane), side by side.
//
// Why: bfloat16 can only train faster than float32 where the hardware multiplies it faster. Without AMX the
// bound is this ratio: 2x where VDPBF16PS issues as often as an FMA; on the AVX-512-BF16 Xeon of
// benchmarks/RESULTS.md it issues a quarter as often (0.47-0.49x), so no bfloat16 convolution there can
// beat a good float32 one. x86-64 with GCC or Clang only; prints a SKIP line on a CPU without avx512_bf16.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

namespace {

constexpr int kChains = 12;  // independent accumulators: enough to hide a 4-cycle latency on two ports
// The body written out once per accumulator (I = 0..11), so that every accumulator stays in a register: a
// loop over an array leaves them in memory at -O2, and the store-to-load latency then is what is measured.
#define EACH_CHAIN(body)    \
  do {                      \
    {                       \
      constexpr int I = 0;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 1;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 2;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 3;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 4;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 5;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 6;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 7;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 8;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 9;  \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 10; \
      body;                 \
    }                       \
    {                       \
      constexpr int I = 11; \
      body;                 \
    }                       \
  } while (0)

// Stores the accumulators where the compiler cannot see them unused, so the loops are kept.
volatile float g_sink;
__attribute__((target("avx512f"))) void keep(const __m512* acc) {
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  g_sink = lanes[0];
}

__attribute__((target("avx512f"))) double fma_gmacs(long iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-9f);
  const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
  const auto t0 = std::chrono::steady_clock::now();
  for (long k = 0; k < iters; ++k) EACH_CHAIN(acc[I] = _mm512_fmadd_ps(a, b, acc[I]));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  keep(acc);
  return static_cast<double>(iters) * kChains * 16 / s / 1e9;
}

__attribute__((target("avx512f,avx512bf16"))) double dpbf16_gmacs(long iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-9f);
  const __m512bh one = (__m512bh)_mm512_set1_epi16(0x3f80);  // bfloat16 1.0 in every half
  const auto t0 = std::chrono::steady_clock::now();
  for (long k = 0; k < iters; ++k) EACH_CHAIN(acc[I] = _mm512_dpbf16_ps(acc[I], one, one));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  keep(acc);
  return static_cast<double>(iters) * kChains * 32 / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const long iters = argc > 1 ? std::atol(argv[1]) : 20000000;
  if (iters <= 0) {
    std::fprintf(stderr, "bench_cpu_peak: the iteration count must be positive, got '%s'\n", argv[1]);
    return 2;
  }
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) {
    std::printf(
        "SKIP bench_cpu_peak: this CPU has no avx512_bf16 (bfloat16 runs on float arithmetic here)\n");
    return 0;
  }
  // Alternate, best of three each: a shared machine only ever slows a run down.
  double fma = 0, bf = 0;
  for (int r = 0; r < 3; ++r) {
    const double f = fma_gmacs(iters), b = dpbf16_gmacs(iters);
    fma = f > fma ? f : fma;
    bf = b > bf ? b : bf;
  }
  std::printf("one core: float32 FMA %.2f GMAC/s, bfloat16 VDPBF16PS %.2f GMAC/s, bfloat16 / float32 %.2fx\n",
              fma, bf, bf / fma);
  return 0;
}

#else
int main() {
  std::printf("SKIP bench_cpu_peak: x86-64 with GCC or Clang only\n");
  return 0;
}
#endif
