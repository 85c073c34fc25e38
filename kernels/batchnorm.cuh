// BatchNorm2d over NCHW with the residual add and ReLU fused in, forward and backward:
//   y = act((x - pivot[c]) * scale[c] + shift[c] [+ residual]),
//   scale = gamma * invstd,  shift = beta - (mean - pivot) * scale,
// where the pivot is a value near the mean (a sample of the channel in training, the running mean in eval):
// x - pivot is exact for values near it, so a large mean with a small spread keeps its digits.
//
// Training forward, three kernels: per-block Welford statistics of each channel (bn_stats, of x minus a
// pivot, the channel's first value, so a large mean with a small spread keeps its digits), a per-channel
// finalize that merges them in double, updates the running statistics (unbiased variance, as PyTorch) and
// computes scale/shift (bn_finalize), and one elementwise pass (bn_apply). x is read twice, the residual
// once, y written once: the unfused chain (BN, then add, then ReLU) moves about twice the bytes.
//
// Backward, given dy at the activation's output and the saved y as the ReLU mask (y > 0 exactly where the
// pre-activation was positive): dz = relu ? (y > 0 ? dy : 0) : dy is the gradient of the residual and of
// BN's output. A reduction pass (bn_backward_reduce) sums dz and dz * (x - mean) per channel and writes
// dresidual = dz on the way; a finalize writes dgamma/dbeta and the per-channel coefficients of
//   dx = a * dz + b * (x - mean) + c1,  a = gamma * invstd,  b = -a * invstd^2 * sum(dz (x - mean)) / M,
//   c1 = -a * sum(dz) / M   (b = c1 = 0 in eval mode, where the statistics are constants),
// and the apply pass (bn_backward_apply) writes dx. When dresidual was overwritten (not accumulated), the
// apply pass reads dz from it instead of recomputing it from dy and y: one tensor read instead of two.
//
// Small channels (N * H * W values that fit one block's registers: the 7x7 and 14x14 maps, and any map at a
// small batch) take a single pass instead: one block per channel loads the channel once, reduces it,
// finalizes and writes the outputs from registers (bn_forward_single, bn_backward_single). One launch
// instead of three, and x (dy, y) read once: the multi-pass kernels are launch-bound at these sizes. On
// Hopper, when asked (BnOptions::max_cluster, off in the library until measured), a channel may spread over
// a thread-block cluster of up to 8 blocks that swap their sums at a cluster barrier.
//
// Gradient rule: each output gradient is overwritten, or added to when its accumulate flag is set.
#pragma once

#include "resnet/core/abi.hpp"
#include "channel.cuh"
#include "elementwise.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

// ---------------------------------------------------------------- per-element rules (shared with tests)

template <typename C>
RESNET_HD inline C bn_apply(C x, C pivot, C scale, C shift, C residual, bool relu_on) {
  const C v = (x - pivot) * scale + shift + residual;
  return relu_on ? relu(v) : v;
}
template <typename C>
RESNET_HD inline C bn_dz(C dy, C y, bool relu_on) {
  return relu_on ? relu_grad(y, dy) : dy;
}
template <typename C>
RESNET_HD inline C bn_dx_centered(C dz, C x_minus_mean, C a, C b, C c1) {
  return a * dz + b * x_minus_mean + c1;
}
template <typename C>
RESNET_HD inline C bn_dx(C dz, C x, const C* coef) {  // coef = {a, b, mean, c1}
  return bn_dx_centered(dz, x - coef[2], coef[0], coef[1], coef[3]);
}

// ---------------------------------------------------------------- forward

template <typename T, int V>
__global__ void __launch_bounds__(kBlock)
    bn_stats_kernel(const T* __restrict__ x, ChannelPlan g, cmp_t<T>* __restrict__ partial) {
  using C = cmp_t<T>;
  const int64_t c = blockIdx.x, s = blockIdx.y;
  int64_t begin, end;
  split_range(g, s, &begin, &end);
  const C pivot = to_cmp(x[c * g.HW]);
  Welford<C> w{C(0), C(0), C(0)};
  if constexpr (V > 1) {
    for (int64_t p = begin + threadIdx.x; p < end; p += blockDim.x) {
      const Pack<T, V> v = *reinterpret_cast<const Pack<T, V>*>(x + channel_offset(g, c, p));
      C vals[V];
#pragma unroll
      for (int j = 0; j < V; ++j) vals[j] = to_cmp(v.v[j]) - pivot;
      w = welford_merge(w, welford_of(vals));
    }
  } else {
    // Scalar loads (H * W not a multiple of the pack): gather a few values, then merge them at once.
    constexpr int U = 4;
    const int64_t step = static_cast<int64_t>(blockDim.x);
    for (int64_t base = begin + threadIdx.x; base < end; base += U * step) {
      C vals[U];
      int count = 0;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t p = base + u * step;
        vals[u] = p < end ? to_cmp(x[channel_offset(g, c, p)]) - pivot : C(0);
        count += p < end;
      }
      w = welford_merge(w, welford_of(vals, count));
    }
  }
  w = block_welford(w);
  if (threadIdx.x == 0) {
    cmp_t<T>* out = partial + (c * g.splits + s) * 3;
    out[0] = w.n;
    out[1] = w.mean;
    out[2] = w.m2;
  }
}

template <typename T, typename P, typename C>
__global__ void __launch_bounds__(kBlock)
    bn_finalize_kernel(const C* __restrict__ partial, const T* __restrict__ x, int64_t hw, int64_t channels,
                       int splits, const P* __restrict__ gamma, const P* __restrict__ beta, P* running_mean,
                       P* running_var, P* save_mean, P* save_invstd, C* pivots, C* scale, C* shift,
                       double eps, double momentum) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  Welford<double> w{0.0, 0.0, 0.0};
  for (int k = 0; k < splits; ++k) {
    const C* q = partial + (c * splits + k) * 3;
    w = welford_merge(
        w, Welford<double>{static_cast<double>(q[0]), static_cast<double>(q[1]), static_cast<double>(q[2])});
  }
  const C pivot = to_cmp(x[c * hw]);
  const double mean = static_cast<double>(pivot) + w.mean;  // the statistics are of x - pivot
  const double var = w.m2 / w.n;
  const double invstd = 1.0 / k_sqrt(var + eps);
  save_mean[c] = static_cast<P>(mean);
  save_invstd[c] = static_cast<P>(invstd);
  running_mean[c] = static_cast<P>((1.0 - momentum) * static_cast<double>(running_mean[c]) + momentum * mean);
  running_var[c] = static_cast<P>((1.0 - momentum) * static_cast<double>(running_var[c]) +
                                  momentum * var * w.n / (w.n - 1.0));
  const C sc = static_cast<C>(static_cast<double>(gamma[c]) * invstd);
  pivots[c] = pivot;
  scale[c] = sc;
  shift[c] = static_cast<C>(static_cast<double>(beta[c]) - w.mean * static_cast<double>(sc));
}

template <typename P, typename C>
__global__ void __launch_bounds__(kBlock)
    bn_inference_prep_kernel(int64_t channels, const P* __restrict__ gamma, const P* __restrict__ beta,
                             const P* __restrict__ running_mean, const P* __restrict__ running_var,
                             double eps, C* pivots, C* scale, C* shift) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const double invstd = 1.0 / k_sqrt(static_cast<double>(running_var[c]) + eps);
  const C sc = static_cast<C>(static_cast<double>(gamma[c]) * invstd);
  const C pivot = static_cast<C>(running_mean[c]);
  pivots[c] = pivot;
  scale[c] = sc;
  shift[c] =
      static_cast<C>(static_cast<double>(beta[c]) - (static_cast<double>(running_mean[c]) - pivot) * sc);
}

// y = act((x - pivot[c]) * scale[c] + shift[c] [+ r]) over n elements; V divides H * W, so a pack has one
// channel. `per_channel` holds pivot, scale and shift, C values each.
template <typename T, int V>
__global__ void __launch_bounds__(kBlock)
    bn_apply_kernel(const T* __restrict__ x, const T* __restrict__ r, T* __restrict__ y, int64_t n,
                    FastDiv hw, FastDiv channels, const cmp_t<T>* __restrict__ per_channel, bool relu_on) {
  using C = cmp_t<T>;
  const C* pivot = per_channel;
  const C* scale = per_channel + channels.d;
  const C* shift = scale + channels.d;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n / V; p += stride) {
    const uint32_t c = channels.mod(hw.div(static_cast<uint32_t>(p * V)));
    const C pv = pivot[c], sc = scale[c], sh = shift[c];
    const Pack<T, V> xv = reinterpret_cast<const Pack<T, V>*>(x)[p];
    Pack<T, V> rv{};
    if (r) rv = reinterpret_cast<const Pack<T, V>*>(r)[p];
    Pack<T, V> out;
#pragma unroll
    for (int j = 0; j < V; ++j)
      out.v[j] = from_cmp<T>(bn_apply(to_cmp(xv.v[j]), pv, sc, sh, r ? to_cmp(rv.v[j]) : C(0), relu_on));
    reinterpret_cast<Pack<T, V>*>(y)[p] = out;
  }
}

// ---------------------------------------------------------------- backward

template <typename T, typename P, int V>
__global__ void __launch_bounds__(kBlock)
    bn_backward_reduce_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                              const P* __restrict__ mean, ChannelPlan g, bool relu_on, T* dres, bool dres_acc,
                              cmp_t<T>* __restrict__ partial) {
  using C = cmp_t<T>;
  const int64_t c = blockIdx.x, s = blockIdx.y;
  int64_t begin, end;
  split_range(g, s, &begin, &end);
  const C mu = static_cast<C>(mean[c]);
  C sums[2] = {C(0), C(0)};  // sum dz, sum dz * (x - mean)
  for (int64_t p = begin + threadIdx.x; p < end; p += blockDim.x) {
    const int64_t off = channel_offset(g, c, p);
    const Pack<T, V> dyv = *reinterpret_cast<const Pack<T, V>*>(dy + off);
    const Pack<T, V> xv = *reinterpret_cast<const Pack<T, V>*>(x + off);
    Pack<T, V> yv{};
    if (relu_on) yv = *reinterpret_cast<const Pack<T, V>*>(y + off);
    Pack<T, V> rv{};
    if (dres && dres_acc) rv = *reinterpret_cast<const Pack<T, V>*>(dres + off);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const C dz = bn_dz(to_cmp(dyv.v[j]), to_cmp(yv.v[j]), relu_on);
      sums[0] += dz;
      sums[1] += dz * (to_cmp(xv.v[j]) - mu);
      if (dres) rv.v[j] = from_cmp<T>(dres_acc ? to_cmp(rv.v[j]) + dz : dz);
    }
    if (dres) *reinterpret_cast<Pack<T, V>*>(dres + off) = rv;
  }
  block_sum<2>(sums);
  if (threadIdx.x == 0) {
    partial[(c * g.splits + s) * 2 + 0] = sums[0];
    partial[(c * g.splits + s) * 2 + 1] = sums[1];
  }
}

template <typename P, typename C>
__global__ void __launch_bounds__(kBlock)
    bn_backward_finalize_kernel(const C* __restrict__ partial, int64_t channels, int splits, double count,
                                const P* __restrict__ gamma, const P* __restrict__ mean,
                                const P* __restrict__ invstd, bool training, P* dgamma, P* dbeta,
                                bool param_acc, C* coef) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  double sum_dz = 0.0, sum_dzx = 0.0;
  for (int k = 0; k < splits; ++k) {
    sum_dz += static_cast<double>(partial[(c * splits + k) * 2 + 0]);
    sum_dzx += static_cast<double>(partial[(c * splits + k) * 2 + 1]);
  }
  const double is = static_cast<double>(invstd[c]);
  if (dgamma) dgamma[c] = static_cast<P>((param_acc ? static_cast<double>(dgamma[c]) : 0.0) + sum_dzx * is);
  if (dbeta) dbeta[c] = static_cast<P>((param_acc ? static_cast<double>(dbeta[c]) : 0.0) + sum_dz);
  const double a = static_cast<double>(gamma[c]) * is;
  coef[c * 4 + 0] = static_cast<C>(a);
  coef[c * 4 + 1] = static_cast<C>(training ? -a * is * is * sum_dzx / count : 0.0);
  coef[c * 4 + 2] = static_cast<C>(mean[c]);
  coef[c * 4 + 3] = static_cast<C>(training ? -a * sum_dz / count : 0.0);
}

// dx = [dx +] a * dz + b * (x - mean) + c1, with dz read from dz_buf when given, else from dy and y.
template <typename T, int V>
__global__ void __launch_bounds__(kBlock)
    bn_backward_apply_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                             const T* __restrict__ dz_buf, T* dx, bool dx_acc, int64_t n, FastDiv hw,
                             FastDiv channels, const cmp_t<T>* __restrict__ coef, bool relu_on, bool use_x) {
  using C = cmp_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n / V; p += stride) {
    const uint32_t c = channels.mod(hw.div(static_cast<uint32_t>(p * V)));
    C k[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) k[i] = coef[c * 4 + i];
    Pack<T, V> dzv{}, dyv{}, yv{}, xv{}, out{};
    if (dz_buf) {
      dzv = reinterpret_cast<const Pack<T, V>*>(dz_buf)[p];
    } else {
      dyv = reinterpret_cast<const Pack<T, V>*>(dy)[p];
      if (relu_on) yv = reinterpret_cast<const Pack<T, V>*>(y)[p];
    }
    if (use_x) xv = reinterpret_cast<const Pack<T, V>*>(x)[p];
    if (dx_acc) out = reinterpret_cast<const Pack<T, V>*>(dx)[p];
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const C dz = dz_buf ? to_cmp(dzv.v[j]) : bn_dz(to_cmp(dyv.v[j]), to_cmp(yv.v[j]), relu_on);
      const C g = bn_dx(dz, use_x ? to_cmp(xv.v[j]) : k[2], k);
      out.v[j] = from_cmp<T>(dx_acc ? to_cmp(out.v[j]) + g : g);
    }
    reinterpret_cast<Pack<T, V>*>(dx)[p] = out;
  }
}

// ---------------------------------------------------------------- single pass (small channels)

// Largest block of the single-pass kernels; each thread holds K of its channel's values in registers.
constexpr int kSingleBlock = 512;
// Most blocks a channel is spread over (a thread-block cluster: the portable maximum).
constexpr int kMaxCluster = 8;

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
// Block b of the grid serves channel b / blocks as rank b % blocks (a cluster's blocks are consecutive).
RESNET_HD inline SingleIndex single_index(int64_t channels, int64_t count, FastDiv hw, unsigned blocks) {
  const unsigned rank = blockIdx.x % blocks;
  return SingleIndex{rank * blockDim.x + threadIdx.x, blocks * blockDim.x,
                     static_cast<uint32_t>(count),    blockIdx.x / blocks,
                     static_cast<uint32_t>(channels), hw};
}

// Sums over the blocks of a cluster: each block's sums (already summed over the block, the same in every
// thread) go to slots[rank * N + i] in global memory, and after the cluster barrier every block adds all
// of them in the same order, so every block gets the same bits. slots: blocks * N values of this channel.
template <int N, typename C>
__device__ void cluster_sum(C (&v)[N], C* slots, unsigned blocks) {
  if (blocks == 1) return;
  const unsigned rank = blockIdx.x % blocks;
  if (threadIdx.x == 0)
    for (int i = 0; i < N; ++i) slots[rank * N + i] = v[i];
  cluster_sync();
  for (int i = 0; i < N; ++i) {
    C total = C(0);
    for (unsigned b = 0; b < blocks; ++b) total += __ldcg(slots + b * N + i);
    v[i] = total;
  }
}

// Training forward of a channel held in registers by one block, or by a cluster of `blocks` blocks:
// statistics, running statistics and y in one launch. slots: 2 * blocks values a channel (blocks > 1).
template <typename T, typename P, int K>
__global__ void __launch_bounds__(kSingleBlock)
    bn_forward_single_kernel(const T* __restrict__ x, const T* __restrict__ r, T* __restrict__ y,
                             int64_t channels, int64_t count, FastDiv hw, unsigned blocks, cmp_t<T>* slots,
                             const P* __restrict__ gamma, const P* __restrict__ beta, P* running_mean,
                             P* running_var, P* save_mean, P* save_invstd, double eps, double momentum,
                             bool relu_on) {
  using C = cmp_t<T>;
  SingleIndex ix = single_index(channels, count, hw, blocks);
  const int64_t c = ix.c;
  if (blocks > 1) slots += c * 2 * blocks;
  const C pivot = to_cmp(x[c * hw.d]);
  C v[K];  // x - pivot, 0 past the channel's end
  C sum[1] = {C(0)};
#pragma unroll
  for (int k = 0; k < K; ++k) {
    v[k] = ix.valid(k) ? to_cmp(x[ix.offset(k)]) - pivot : C(0);
    sum[0] += v[k];
  }
  // The textbook two passes, both over registers: the mean, then the squared deviations from it.
  block_sum<1>(sum);
  cluster_sum<1>(sum, slots, blocks);
  const C mean_v = sum[0] / static_cast<C>(count);
  C sq[1] = {C(0)};
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const C d = ix.valid(k) ? v[k] - mean_v : C(0);
    sq[0] += d * d;
  }
  block_sum<1>(sq);
  cluster_sum<1>(sq, slots + blocks, blocks);
  const double n = static_cast<double>(count);
  const double mean = static_cast<double>(pivot) + static_cast<double>(mean_v);
  const double var = static_cast<double>(sq[0]) / n;
  const double invstd = 1.0 / k_sqrt(var + eps);
  if (ix.t == 0) {
    save_mean[c] = static_cast<P>(mean);
    save_invstd[c] = static_cast<P>(invstd);
    running_mean[c] =
        static_cast<P>((1.0 - momentum) * static_cast<double>(running_mean[c]) + momentum * mean);
    running_var[c] = static_cast<P>((1.0 - momentum) * static_cast<double>(running_var[c]) +
                                    momentum * var * n / (n - 1.0));
  }
  const C sc = static_cast<C>(static_cast<double>(gamma[c]) * invstd);
  const C sh =
      static_cast<C>(static_cast<double>(beta[c]) - static_cast<double>(mean_v) * static_cast<double>(sc));
  ix.forget_offsets();
#pragma unroll
  for (int k = 0; k < K; ++k)
    if (ix.valid(k)) {
      const uint32_t off = ix.offset(k);
      const C res = r ? to_cmp(r[off]) : C(0);
      y[off] = from_cmp<T>(bn_apply(v[k], C(0), sc, sh, res, relu_on));  // v is already x - pivot
    }
}

// Backward of a channel held in registers by one block or a cluster: the sums, dgamma/dbeta, dresidual and
// dx in one launch, dz and x - mean kept in registers between the reduction and dx. slots: 2 * blocks
// values a channel (blocks > 1).
template <typename T, typename P, int K>
__global__ void __launch_bounds__(kSingleBlock)
    bn_backward_single_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                              const P* __restrict__ gamma, const P* __restrict__ mean,
                              const P* __restrict__ invstd, bool training, bool relu_on, T* dx, bool dx_acc,
                              T* dres, bool dres_acc, P* dgamma, P* dbeta, bool param_acc, int64_t channels,
                              int64_t count, FastDiv hw, unsigned blocks, cmp_t<T>* slots) {
  using C = cmp_t<T>;
  SingleIndex ix = single_index(channels, count, hw, blocks);
  const int64_t c = ix.c;
  if (blocks > 1) slots += c * 2 * blocks;
  const C mu = static_cast<C>(mean[c]);
  C dz[K], xm[K];
  C sums[2] = {C(0), C(0)};  // sum dz, sum dz * (x - mean)
#pragma unroll
  for (int k = 0; k < K; ++k) {
    dz[k] = C(0);
    xm[k] = C(0);
    if (ix.valid(k)) {
      const uint32_t off = ix.offset(k);
      const C d = bn_dz(to_cmp(dy[off]), relu_on ? to_cmp(y[off]) : C(0), relu_on);
      dz[k] = d;
      xm[k] = to_cmp(x[off]) - mu;
      sums[0] += d;
      sums[1] += d * xm[k];
      if (dres) dres[off] = from_cmp<T>(dres_acc ? to_cmp(dres[off]) + d : d);
    }
  }
  block_sum<2>(sums);
  cluster_sum<2>(sums, slots, blocks);
  const double is = static_cast<double>(invstd[c]);
  const double sum_dz = static_cast<double>(sums[0]), sum_dzx = static_cast<double>(sums[1]);
  if (ix.t == 0) {
    if (dgamma) dgamma[c] = static_cast<P>((param_acc ? static_cast<double>(dgamma[c]) : 0.0) + sum_dzx * is);
    if (dbeta) dbeta[c] = static_cast<P>((param_acc ? static_cast<double>(dbeta[c]) : 0.0) + sum_dz);
  }
  if (!dx) return;
  const double a = static_cast<double>(gamma[c]) * is, m = static_cast<double>(count);
  const C ka = static_cast<C>(a), kb = static_cast<C>(training ? -a * is * is * sum_dzx / m : 0.0),
          kc = static_cast<C>(training ? -a * sum_dz / m : 0.0);
  ix.forget_offsets();
#pragma unroll
  for (int k = 0; k < K; ++k)
    if (ix.valid(k)) {
      const uint32_t off = ix.offset(k);
      const C g = bn_dx_centered(dz[k], xm[k], ka, kb, kc);
      dx[off] = from_cmp<T>(dx_acc ? to_cmp(dx[off]) + g : g);
    }
}

// ---------------------------------------------------------------- launchers

struct BatchNormShape {
  int64_t N = 0, C = 0, HW = 0;
  int64_t numel() const { return N * C * HW; }
};

// Which kernels a training forward or a backward may run. The defaults are the library's: the single pass
// wherever a channel fits one block, else the multi-pass kernels. Benchmarks and tests set the others.
struct BnOptions {
  bool single_pass = true;           // false: the multi-pass kernels everywhere
  int max_cluster = 1;               // blocks a channel may spread over in a cluster (1, 2, 4 or 8; sm_90+)
  int block_threads = kSingleBlock;  // most threads in a single-pass block (tests use fewer)
};

// The single pass for one shape: K values a thread (8 or 32; double keeps 8 at most, a value taking two
// registers), `threads` a block, `blocks` blocks a channel (a cluster when more than one). K == 0: the
// channel fits nowhere, and the multi-pass kernels run.
struct BnSinglePlan {
  int K = 0;
  unsigned threads = 0, blocks = 1;
};
// Threads for `values` values a thread: whole warps, as few as hold the channel.
inline unsigned bn_single_threads(int64_t count, int64_t values) {
  const int64_t warps = (count + 32 * values - 1) / (32 * values);
  return static_cast<unsigned>(warps < 1 ? 32 : warps * 32);
}
template <typename T>
BnSinglePlan bn_single_plan(const BatchNormShape& s, const BnOptions& o, const LaunchEnv& env) {
  BnSinglePlan p;
  if (!o.single_pass) return p;
  const int64_t count = s.N * s.HW;
  const int kmax = sizeof(cmp_t<T>) == 4 ? 32 : 8;
  const int most = env.cc_major >= 9 ? (o.max_cluster < kMaxCluster ? o.max_cluster : kMaxCluster) : 1;
  for (int g = 1; g <= most; g *= 2) {
    const int64_t room = static_cast<int64_t>(g) * o.block_threads;  // threads over the cluster
    if (count > room * kmax) continue;
    p.K = count <= room * 8 ? 8 : kmax;
    p.blocks = static_cast<unsigned>(g);
    p.threads = bn_single_threads(count, static_cast<int64_t>(p.K) * g);
    return p;
  }
  return p;
}

inline int bn_vmax(int width, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p && !aligned_to(p, 16)) return 1;
  return width;
}
// Pack width of the elementwise passes over T: a pack never straddles two channels, so it divides HW.
template <typename T>
int bn_pack_width(int64_t HW, std::initializer_list<const void*> ptrs) {
  return pack_width_for(HW, bn_vmax(vec_width<T>(), ptrs));
}

// Workspace of either pass: the multi-pass partials, or the cluster's slots (2 * kMaxCluster a channel).
template <typename T>
size_t bn_forward_workspace_bytes(const BatchNormShape& s, int sm_count) {
  const ChannelPlan g = plan_channels(s.N, s.C, s.HW, 1, sm_count);
  const int64_t multi = s.C * g.splits * 3 + 3 * s.C, single = 2 * kMaxCluster * s.C;
  return static_cast<size_t>(multi > single ? multi : single) * sizeof(cmp_t<T>);
}

template <typename T>
void launch_bn_apply(const T* x, const T* r, T* y, const BatchNormShape& s, const cmp_t<T>* per_channel,
                     bool relu_on, const LaunchEnv& env) {
  const int64_t n = s.numel();
  const FastDiv hw(static_cast<uint32_t>(s.HW)), ch(static_cast<uint32_t>(s.C));
  with_pack_width<T>(bn_pack_width<T>(s.HW, {x, r, y}), [&](auto v) {
    constexpr int V = decltype(v)::value;
    RESNET_LAUNCH((bn_apply_kernel<T, V>), grid_for(n / V, kBlock, env.sm_count), kBlock, env, x, r, y, n, hw,
                  ch, per_channel, relu_on);
  });
}

// Launches one single-pass kernel as planned: in clusters when p.blocks > 1, if the device can hold one.
// Returns false (nothing launched) when it cannot, and the caller runs the multi-pass kernels.
template <typename... KArgs, typename... Args>
bool launch_bn_single(void (*kernel)(KArgs...), const char* name, const BnSinglePlan& p, int64_t channels,
                      const LaunchEnv& env, Args&&... args) {
  const dim3 grid(static_cast<unsigned>(channels) * p.blocks);
  if (p.blocks == 1) {
    launch(kernel, name, __FILE__, __LINE__, grid, dim3(p.threads), env, std::forward<Args>(args)...);
    return true;
  }
  if (!cluster_launch_fits(kernel, p.threads, p.blocks, env)) return false;
  launch_cluster(kernel, name, __FILE__, __LINE__, grid, dim3(p.threads), p.blocks, env,
                 std::forward<Args>(args)...);
  return true;
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

// Training forward. workspace: bn_forward_workspace_bytes<T>(s, env.sm_count) bytes.
template <typename T, typename P>
void bn_forward_training(const T* x, const T* r, const P* gamma, const P* beta, P* running_mean,
                         P* running_var, P* save_mean, P* save_invstd, T* y, const BatchNormShape& s,
                         double eps, double momentum, bool relu_on, void* workspace, const LaunchEnv& env,
                         const BnOptions& opt = {}) {
  using C = cmp_t<T>;
  const int64_t count = s.N * s.HW;
  const BnSinglePlan sp = bn_single_plan<T>(s, opt, env);
  const FastDiv hw(static_cast<uint32_t>(s.HW));
  C* slots = static_cast<C*>(workspace);
  if (with_single_width<T>(sp.K, [&](auto k) {
        return launch_bn_single(bn_forward_single_kernel<T, P, decltype(k)::value>,
                                "bn_forward_single_kernel", sp, s.C, env, x, r, y, s.C, count, hw, sp.blocks,
                                slots, gamma, beta, running_mean, running_var, save_mean, save_invstd, eps,
                                momentum, relu_on);
      }))
    return;
  const ChannelPlan g = plan_channels(s.N, s.C, s.HW, bn_vmax(vec_width<T>(), {x}), env.sm_count);
  C* partial = static_cast<C*>(workspace);
  C* per_channel = partial + s.C * g.splits * 3;  // pivot, scale, shift
  const dim3 grid(static_cast<unsigned>(s.C), static_cast<unsigned>(g.splits));
  with_pack_width<T>(g.V, [&](auto v) {
    RESNET_LAUNCH((bn_stats_kernel<T, decltype(v)::value>), grid, kBlock, env, x, g, partial);
  });
  RESNET_LAUNCH((bn_finalize_kernel<T, P, C>), dim3(static_cast<unsigned>((s.C + kBlock - 1) / kBlock)),
                kBlock, env, partial, x, s.HW, s.C, g.splits, gamma, beta, running_mean, running_var,
                save_mean, save_invstd, per_channel, per_channel + s.C, per_channel + 2 * s.C, eps, momentum);
  launch_bn_apply(x, r, y, s, per_channel, relu_on, env);
}

template <typename T>
size_t bn_inference_workspace_bytes(const BatchNormShape& s) {
  return static_cast<size_t>(3 * s.C) * sizeof(cmp_t<T>);
}

template <typename T, typename P>
void bn_forward_inference(const T* x, const T* r, const P* gamma, const P* beta, const P* running_mean,
                          const P* running_var, T* y, const BatchNormShape& s, double eps, bool relu_on,
                          void* workspace, const LaunchEnv& env) {
  using C = cmp_t<T>;
  C* per_channel = static_cast<C*>(workspace);
  RESNET_LAUNCH((bn_inference_prep_kernel<P, C>), dim3(static_cast<unsigned>((s.C + kBlock - 1) / kBlock)),
                kBlock, env, s.C, gamma, beta, running_mean, running_var, eps, per_channel, per_channel + s.C,
                per_channel + 2 * s.C);
  launch_bn_apply(x, r, y, s, per_channel, relu_on, env);
}

template <typename T>
size_t bn_backward_workspace_bytes(const BatchNormShape& s, int sm_count) {
  const ChannelPlan g = plan_channels(s.N, s.C, s.HW, 1, sm_count);
  const int64_t multi = s.C * g.splits * 2 + 4 * s.C, single = 2 * kMaxCluster * s.C;
  return static_cast<size_t>(multi > single ? multi : single) * sizeof(cmp_t<T>);
}

// Backward; any of dx, dres, dgamma, dbeta may be null. y is read only when relu_on. workspace:
// bn_backward_workspace_bytes<T>(s, env.sm_count) bytes.
template <typename T, typename P>
void bn_backward(const T* x, const T* y, const T* dy, const P* gamma, const P* mean, const P* invstd,
                 bool training, bool relu_on, T* dx, bool dx_acc, T* dres, bool dres_acc, P* dgamma, P* dbeta,
                 bool param_acc, const BatchNormShape& s, void* workspace, const LaunchEnv& env,
                 const BnOptions& opt = {}) {
  using C = cmp_t<T>;
  const bool need_sums = training || dgamma || dbeta;
  const bool reduce = need_sums || dres;
  if (!dx && !reduce) return;
  const int64_t count = s.N * s.HW;
  const BnSinglePlan sp = bn_single_plan<T>(s, opt, env);
  if (with_single_width<T>(sp.K, [&](auto k) {
        return launch_bn_single(bn_backward_single_kernel<T, P, decltype(k)::value>,
                                "bn_backward_single_kernel", sp, s.C, env, x, y, dy, gamma, mean, invstd,
                                training, relu_on, dx, dx_acc, dres, dres_acc, dgamma, dbeta, param_acc, s.C,
                                count, FastDiv(static_cast<uint32_t>(s.HW)), sp.blocks,
                                static_cast<C*>(workspace));
      }))
    return;
  const ChannelPlan g = plan_channels(
      s.N, s.C, s.HW, bn_vmax(vec_width<T>(), {x, relu_on ? y : nullptr, dy, dres}), env.sm_count);
  C* partial = static_cast<C*>(workspace);
  C* coef = partial + s.C * g.splits * 2;
  if (reduce) {
    const dim3 grid(static_cast<unsigned>(s.C), static_cast<unsigned>(g.splits));
    with_pack_width<T>(g.V, [&](auto v) {
      RESNET_LAUNCH((bn_backward_reduce_kernel<T, P, decltype(v)::value>), grid, kBlock, env, x, y, dy, mean,
                    g, relu_on, dres, dres_acc, partial);
    });
  }
  RESNET_LAUNCH((bn_backward_finalize_kernel<P, C>), dim3(static_cast<unsigned>((s.C + kBlock - 1) / kBlock)),
                kBlock, env, partial, s.C, reduce ? g.splits : 0, static_cast<double>(count), gamma, mean,
                invstd, training, dgamma, dbeta, param_acc, coef);
  if (!dx) return;
  const T* dz_buf = (dres && !dres_acc) ? dres : nullptr;
  const int64_t n = s.numel();
  const FastDiv hw(static_cast<uint32_t>(s.HW)), ch(static_cast<uint32_t>(s.C));
  with_pack_width<T>(bn_pack_width<T>(s.HW, {x, relu_on ? y : nullptr, dy, dz_buf, dx}), [&](auto v) {
    constexpr int V = decltype(v)::value;
    RESNET_LAUNCH((bn_backward_apply_kernel<T, V>), grid_for(n / V, kBlock, env.sm_count), kBlock, env, x, y,
                  dy, dz_buf, dx, dx_acc, n, hw, ch, coef, relu_on, training);
  });
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
