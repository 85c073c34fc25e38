// Matrix products on the CPU: float goes to the system CBLAS (OpenBLAS on Debian); double uses a plain
// loop, which is the reference the float path is checked against and is fast enough for gradient checks.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>

#include "resnet/core/parallel.hpp"

#if defined(RESNET_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

// C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, row-major, with leading dimensions lda/ldb/ldc.
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
#if defined(RESNET_HAVE_CBLAS)
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda),
              b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
#else
  parallel_for(m, 4, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < n; ++j) {
        float acc = 0.f;
        for (int64_t p = 0; p < k; ++p)
          acc += (trans_a ? a[p * lda + i] : a[i * lda + p]) * (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
        c[i * ldc + j] = alpha * acc + (beta == 0.f ? 0.f : beta * c[i * ldc + j]);
      }
  });
#endif
}

inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                 int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p)
        acc += (trans_a ? a[p * lda + i] : a[i * lda + p]) * (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * acc + (beta == 0.0 ? 0.0 : beta * c[i * ldc + j]);
    }
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
