// CPU threading: OpenMP for our loops, and the BLAS's own pool for GEMMs; set_num_threads sets both.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

#if defined(RESNET_HAVE_OPENBLAS)
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}
#endif

namespace resnet {
inline namespace RESNET_ABI {

inline int get_num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void set_num_threads(int n) {
  if (n < 1) n = 1;
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
#if defined(RESNET_HAVE_OPENBLAS)
  openblas_set_num_threads(n);
#endif
}

// Runs fn(begin, end) over [0, n) split into contiguous chunks, one per thread; serial when the work is
// too small to pay for waking threads (`grain` elements per chunk at least).
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
#if defined(_OPENMP)
  int64_t max_chunks = grain > 0 ? (n + grain - 1) / grain : n;
  int threads = static_cast<int>(max_chunks < omp_get_max_threads() ? max_chunks : omp_get_max_threads());
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    {
      int t = omp_get_thread_num();
      int nt = omp_get_num_threads();
      int64_t begin = n * t / nt, end = n * (t + 1) / nt;
      if (begin < end) fn(begin, end);
    }
    return;
  }
#endif
  (void)grain;
  fn(int64_t(0), n);
}

}  // namespace RESNET_ABI
}  // namespace resnet
