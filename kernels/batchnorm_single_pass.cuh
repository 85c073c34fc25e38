// BatchNorm2d's single pass for small channels (N * H * W values that fit one block's registers: the 7x7
// and 14x14 maps, and any map at a small batch): one block per channel loads the channel once, reduces it,
// finalizes and writes the outputs from registers. One launch instead of three, and x (dy, y) read once:
// the multi-pass kernels are launch-bound at these sizes. The arithmetic is batchnorm_math.hpp's.
//
// Off by default: it has never run on a GPU (batchnorm_plan.cuh, benchmarks/RESULTS.md "Kernel policy").
//
// The kernel bodies are written once for a channel held by a group of blocks (`Blocks`): here one block
// (OneBlock, the kernels below); batchnorm_cluster.cuh runs the same bodies over a thread-block cluster.
// Statistics are the textbook two passes, both over registers: the mean, then the squared deviations.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/batchnorm_math.hpp"
#include "batchnorm_plan.cuh"
#include "elementwise.cuh"
#include "reduce.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

// Where a thread's values of channel c lie when `blocks` blocks share the channel: thread t of block rank
// holds values e = rank * blockDim + t + k * blocks * blockDim of the channel's N * HW (pixel e % HW of
// image e / HW), so a warp's loads are consecutive within each image. 32-bit offsets (the ops refuse
// tensors of 2^32 elements or more).
struct SingleIndex {
  uint32_t t, step, count, c, channels;
  FastDiv hw;
  RESNET_HD bool valid(int k) const { return t + static_cast<uint32_t>(k) * step < count; }
  RESNET_HD uint32_t offset(int k) const {
    const uint32_t e = t + static_cast<uint32_t>(k) * step, n = hw.div(e);
    return (n * channels + c) * hw.d + (e - n * hw.d);
  }
  // Hides t from the optimiser, so that the offsets of a later loop are recomputed (a few integer ops a
  // value) rather than kept from an earlier one in K registers.
  RESNET_HD void forget_offsets() {
#if defined(__CUDA_ARCH__)
    asm volatile("" : "+r"(t));
#endif
  }
};

// One block holds the channel: block b serves channel b, and its sums need no exchange.
struct OneBlock {
  RESNET_HD unsigned rank() const { return 0; }
  RESNET_HD unsigned blocks() const { return 1; }
  RESNET_HD unsigned channel() const { return blockIdx.x; }
  // Sums of exchange `which` over the group's blocks: a block's own sums already are.
  template <int N, typename C>
  __device__ void sum(C (&)[N], int /*which*/) const {}
};

template <typename Blocks>
RESNET_HD inline SingleIndex single_index(const Blocks& b, int64_t channels, int64_t count, FastDiv hw) {
  return SingleIndex{b.rank() * blockDim.x + threadIdx.x, b.blocks() * blockDim.x,
                     static_cast<uint32_t>(count),        b.channel(),
                     static_cast<uint32_t>(channels),     hw};
}

// Training forward of a channel held in registers: statistics, running statistics and y in one launch.
template <typename T, typename P, int K, typename Blocks>
__device__ inline void bn_forward_single_body(const Blocks& b, const T* __restrict__ x,
                                              const T* __restrict__ r, T* __restrict__ y, int64_t channels,
                                              int64_t count, FastDiv hw, const P* __restrict__ gamma,
                                              const P* __restrict__ beta, P* running_mean, P* running_var,
                                              P* save_mean, P* save_invstd, double eps, double momentum,
                                              bool relu_on) {
  using C = cmp_t<T>;
  SingleIndex ix = single_index(b, channels, count, hw);
  const int64_t c = ix.c;
  const C pivot = to_cmp(x[c * hw.d]);
  C v[K];  // x - pivot, 0 past the channel's end
  C sum[1] = {C(0)};
#pragma unroll
  for (int k = 0; k < K; ++k) {
    v[k] = ix.valid(k) ? to_cmp(x[ix.offset(k)]) - pivot : C(0);
    sum[0] += v[k];
  }
  block_sum<1>(sum);
  b.sum(sum, 0);
  const C mean_v = sum[0] / static_cast<C>(count);
  C sq[1] = {C(0)};
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const C d = ix.valid(k) ? v[k] - mean_v : C(0);
    sq[0] += d * d;
  }
  block_sum<1>(sq);
  b.sum(sq, 1);
  const double n = static_cast<double>(count);
  const double mean = static_cast<double>(pivot) + static_cast<double>(mean_v);
  const double var = static_cast<double>(sq[0]) / n;
  const double inv = bn::invstd(var, eps);
  if (ix.t == 0)
    bn::store_statistics(mean, var, inv, n, momentum, save_mean + c, save_invstd + c, running_mean + c,
                         running_var + c);
  const bn::ScaleShift<C> ss = bn::scale_shift<C>(static_cast<double>(gamma[c]), static_cast<double>(beta[c]),
                                                  inv, static_cast<double>(mean_v));
  ix.forget_offsets();
#pragma unroll
  for (int k = 0; k < K; ++k)
    if (ix.valid(k)) {
      const uint32_t off = ix.offset(k);
      const C res = r ? to_cmp(r[off]) : C(0);
      y[off] = from_cmp<T>(bn::apply(v[k], C(0), ss.scale, ss.shift, res, relu_on));  // v is x - pivot
    }
}

// Backward of a channel held in registers: the sums, dgamma/dbeta, dresidual and dx in one launch, dz and
// x - mean kept in registers between the reduction and dx.
template <typename T, typename P, int K, typename Blocks>
__device__ inline void bn_backward_single_body(const Blocks& b, const T* __restrict__ x,
                                               const T* __restrict__ y, const T* __restrict__ dy,
                                               const P* __restrict__ gamma, const P* __restrict__ mean,
                                               const P* __restrict__ invstd, bool training, bool relu_on,
                                               T* dx, bool dx_acc, T* dres, bool dres_acc, P* dgamma,
                                               P* dbeta, bool param_acc, int64_t channels, int64_t count,
                                               FastDiv hw) {
  using C = cmp_t<T>;
  SingleIndex ix = single_index(b, channels, count, hw);
  const int64_t c = ix.c;
  const C mu = static_cast<C>(mean[c]);
  C dz[K], xm[K];
  C sums[2] = {C(0), C(0)};  // sum dz, sum dz * (x - mean)
#pragma unroll
  for (int k = 0; k < K; ++k) {
    dz[k] = C(0);
    xm[k] = C(0);
    if (ix.valid(k)) {
      const uint32_t off = ix.offset(k);
      const C d = bn::dz(to_cmp(dy[off]), relu_on ? to_cmp(y[off]) : C(0), relu_on);
      dz[k] = d;
      xm[k] = to_cmp(x[off]) - mu;
      sums[0] += d;
      sums[1] += d * xm[k];
      if (dres) dres[off] = from_cmp<T>(dres_acc ? to_cmp(dres[off]) + d : d);
    }
  }
  block_sum<2>(sums);
  b.sum(sums, 0);
  const double is = static_cast<double>(invstd[c]);
  const double sum_dz = static_cast<double>(sums[0]), sum_dz_xmu = static_cast<double>(sums[1]);
  if (ix.t == 0)
    bn::store_param_grads(sum_dz, sum_dz_xmu, is, param_acc, dgamma ? dgamma + c : nullptr,
                          dbeta ? dbeta + c : nullptr);
  if (!dx) return;
  const bn::Coefficients<C> coef =
      bn::dx_coefficients<C>(static_cast<double>(gamma[c]), static_cast<double>(mu), is, sum_dz, sum_dz_xmu,
                             static_cast<double>(count), training);
  ix.forget_offsets();
#pragma unroll
  for (int k = 0; k < K; ++k)
    if (ix.valid(k)) {
      const uint32_t off = ix.offset(k);
      const C g = bn::dx(dz[k], xm[k], coef);
      dx[off] = from_cmp<T>(dx_acc ? to_cmp(dx[off]) + g : g);
    }
}

// ---------------------------------------------------------------- the kernels (one block a channel)

template <typename T, typename P, int K>
__global__ void __launch_bounds__(kSingleBlock)
    bn_forward_single_kernel(const T* __restrict__ x, const T* __restrict__ r, T* __restrict__ y,
                             int64_t channels, int64_t count, FastDiv hw, const P* __restrict__ gamma,
                             const P* __restrict__ beta, P* running_mean, P* running_var, P* save_mean,
                             P* save_invstd, double eps, double momentum, bool relu_on) {
  bn_forward_single_body<T, P, K>(OneBlock{}, x, r, y, channels, count, hw, gamma, beta, running_mean,
                                  running_var, save_mean, save_invstd, eps, momentum, relu_on);
}

template <typename T, typename P, int K>
__global__ void __launch_bounds__(kSingleBlock)
    bn_backward_single_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                              const P* __restrict__ gamma, const P* __restrict__ mean,
                              const P* __restrict__ invstd, bool training, bool relu_on, T* dx, bool dx_acc,
                              T* dres, bool dres_acc, P* dgamma, P* dbeta, bool param_acc, int64_t channels,
                              int64_t count, FastDiv hw) {
  bn_backward_single_body<T, P, K>(OneBlock{}, x, y, dy, gamma, mean, invstd, training, relu_on, dx, dx_acc,
                                   dres, dres_acc, dgamma, dbeta, param_acc, channels, count, hw);
}

// Calls f(std::integral_constant<int, K>{}) for the plan's K: one kernel instance per width (32 only where
// the compute type is 4 bytes). Returns what f returns, false for a K without an instance.
template <typename T, typename F>
bool with_single_width(int K, F&& f) {
  if (K == 8) return f(std::integral_constant<int, 8>{});
  if constexpr (sizeof(cmp_t<T>) == 4)
    if (K == 32) return f(std::integral_constant<int, 32>{});
  return false;
}

// Launchers of a plan with p.path == BnPath::SinglePass (one block of p.threads a channel). Return false,
// launching nothing, for a K without a kernel instance.
template <typename T, typename P>
bool bn_forward_training_single(const T* x, const T* r, const P* gamma, const P* beta, P* running_mean,
                                P* running_var, P* save_mean, P* save_invstd, T* y, const BatchNormShape& s,
                                double eps, double momentum, bool relu_on, const BnPlan& p,
                                const LaunchEnv& env) {
  const FastDiv hw(static_cast<uint32_t>(s.HW));
  return with_single_width<T>(p.K, [&](auto k) {
    RESNET_LAUNCH((bn_forward_single_kernel<T, P, decltype(k)::value>), dim3(static_cast<unsigned>(s.C)),
                  dim3(p.threads), env, x, r, y, s.C, s.count(), hw, gamma, beta, running_mean, running_var,
                  save_mean, save_invstd, eps, momentum, relu_on);
    return true;
  });
}

template <typename T, typename P>
bool bn_backward_single(const T* x, const T* y, const T* dy, const P* gamma, const P* mean, const P* invstd,
                        bool training, bool relu_on, T* dx, bool dx_acc, T* dres, bool dres_acc, P* dgamma,
                        P* dbeta, bool param_acc, const BatchNormShape& s, const BnPlan& p,
                        const LaunchEnv& env) {
  const FastDiv hw(static_cast<uint32_t>(s.HW));
  return with_single_width<T>(p.K, [&](auto k) {
    RESNET_LAUNCH((bn_backward_single_kernel<T, P, decltype(k)::value>), dim3(static_cast<unsigned>(s.C)),
                  dim3(p.threads), env, x, y, dy, gamma, mean, invstd, training, relu_on, dx, dx_acc, dres,
                  dres_acc, dgamma, dbeta, param_acc, s.C, s.count(), hw);
    return true;
  });
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
