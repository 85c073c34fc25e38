// SyncBatchNorm's arithmetic across ranks, written once for the CPU backend and the CUDA kernels
// (kernels/batchnorm_sync.cuh), beside BatchNorm2d's own (batchnorm_math.hpp), whose per-element and
// per-channel rules the split pieces reuse.
//
// Forward: each rank reduces a channel to (count, mean, M2 = sum (x - mean)^2), two passes in double; the
// ranks' rows are all-gathered and merged with Chan et al.'s pairwise rule, which never subtracts two
// large sums (sum x^2 - (sum x)^2 / n loses every digit of data with a large mean and a small spread):
//   n = na + nb,  delta = mean_b - mean_a,  mean = mean_a + delta * nb / n,
//   M2 = M2_a + M2_b + delta^2 * na * nb / n,  var = M2 / n (biased; the running average takes n / (n - 1)).
// Backward: each rank reduces sum(dz) and sum(dz * (x - mean)) around the global mean; dgamma and dbeta
// come from this rank's sums (data parallelism averages them like every other gradient), dx from the sums
// all-reduced over ranks and the global count (bn::dx_coefficients).
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>

#include "resnet/backend/batchnorm_math.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace bn {

struct Moments {
  double count, mean, m2;
};

RESNET_HD inline Moments merge(const Moments& a, const Moments& b) {
  if (b.count == 0.0) return a;
  if (a.count == 0.0) return b;
  const double n = a.count + b.count, delta = b.mean - a.mean;
  return Moments{n, a.mean + delta * (b.count / n), a.m2 + b.m2 + delta * delta * (a.count * (b.count / n))};
}

// Rows of the per-rank statistics tensor [3, C]: count, mean, M2 of each channel.
enum StatRow : int64_t { kCount = 0, kMean = 1, kM2 = 2, kStatRows = 3 };
// Rows of the backward reductions [2, C].
enum SumRow : int64_t { kSumDz = 0, kSumDzXmu = 1, kSumRows = 2 };

// Channel c merged over `world` gathered [world, 3, C] rows, in rank order (the same on every rank).
RESNET_HD inline Moments gathered_channel(const double* gathered, int64_t world, int64_t C, int64_t c) {
  Moments m{0.0, 0.0, 0.0};
  for (int64_t r = 0; r < world; ++r) {
    const double* row = gathered + r * kStatRows * C;
    m = merge(m, Moments{row[kCount * C + c], row[kMean * C + c], row[kM2 * C + c]});
  }
  return m;
}

// What the combine step writes for one channel: saved mean and invstd (for the backward), the biased
// variance the apply pass normalises with, and the running statistics updated with the global count.
template <typename P>
RESNET_HD inline void store_global_statistics(const Moments& m, double eps, double momentum, P* save_mean,
                                              P* save_invstd, P* var, P* running_mean, P* running_var) {
  const double v = m.m2 / m.count;
  store_statistics(m.mean, v, invstd(v, eps), m.count, momentum, save_mean, save_invstd, running_mean,
                   running_var);
  *var = static_cast<P>(v);
}

}  // namespace bn
}  // namespace RESNET_ABI
}  // namespace resnet
