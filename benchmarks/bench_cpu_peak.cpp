// bench_cpu_peak: the multiply-adds per second one core can issue as float32 FMAs and as bfloat16 dot
// products (AVX-512 VDPBF16PS, two bfloat16 products summed into each float32 lane), side by side.
//
// Why: bfloat16 can only train faster than float32 where the hardware multiplies it faster. Without AMX the
// bound is this ratio: 2x where VDPBF16PS issues as often as an FMA (the AMD EPYC Zen 4 of
// benchmarks/RESULTS.md: 1.98x); on the AVX-512-BF16 Xeon there it issues a quarter as often (0.47-0.49x),
// so no bfloat16 convolution can beat a good float32 one. The library measures the same ratio, shorter, to
// pick its bfloat16 convolutions (cpu::peak::bf16_over_fp32, backend/cpu/cpu_peak.hpp). Prints a SKIP line
// on a CPU without avx512_bf16.
#include <cstdio>
#include <cstdlib>

#include "resnet/backend/cpu/cpu_peak.hpp"

int main(int argc, char** argv) {
  namespace peak = resnet::cpu::peak;
  const long iters = argc > 1 ? std::atol(argv[1]) : 20000000;
  if (iters <= 0) {
    std::fprintf(stderr, "bench_cpu_peak: the iteration count must be positive, got '%s'\n", argv[1]);
    return 2;
  }
  if (!peak::has_avx512_bf16()) {
    std::printf(
        "SKIP bench_cpu_peak: this CPU has no avx512_bf16 (or is not x86-64), so bfloat16 runs on float "
        "arithmetic here\n");
    return 0;
  }
  const peak::Rates r = peak::measure(iters, 3);
  const double library = peak::bf16_over_fp32();
  std::printf(
      "one core: float32 FMA %.2f GMAC/s, bfloat16 VDPBF16PS %.2f GMAC/s, bfloat16 / float32 %.2fx "
      "(the library's short probe: %.2fx)\n",
      r.fma_gmacs, r.bf16_gmacs, r.bf16_over_fp32(), library);
  return 0;
}
