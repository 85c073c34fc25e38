// BatchNorm2d over channels-last (NHWC) tensors, with the residual add and ReLU fused exactly as the NCHW
// kernels (batchnorm_multipass.cuh): the same arithmetic (resnet/backend/batchnorm_math.hpp), the same
// finalize kernels, other passes over memory. Opt-in (cuda::set_channels_last): never run on a GPU yet.
//
// An [N, C, H, W] tensor in NHWC is R = N * H * W rows of C contiguous values, so a channel is a column.
// A reduction block covers `lanes` adjacent channels (threads across C: a warp reads 32 neighbouring
// values, coalesced) and `row_threads` = kBlock / lanes rows at a time; the grid is (channel groups, row
// splits). Each thread keeps Welford statistics (or sums) of its column, the block merges its row threads
// in a fixed tree in shared memory, and writes one partial per (channel, split) in the NCHW kernels'
// layout, so their finalize kernels merge the splits in double in a fixed order: results do not depend on
// the launch order. The pivot of channel c is x[c], its first value (what the NCHW finalize reads as
// x[c * hw] with hw = 1).
//
// The elementwise passes take packs of V adjacent channels of one row (V divides C).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/batchnorm_math.hpp"
#include "batchnorm_multipass.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

struct NhwcPlan {
  int64_t rows = 0, C = 0;  // R = N * H * W rows of C channels
  int lanes = 32;           // channels a block covers: a power of two, at most 32
  int row_threads = 8;      // kBlock / lanes
  int64_t col_blocks = 1;   // ceil(C / lanes)
  int splits = 1;           // row blocks per channel group
  int64_t rows_per_split = 0;
};

// The split depends on the shape and the device only (never on alignment), so workspace sizes are fixed.
inline NhwcPlan plan_nhwc(int64_t rows, int64_t C, int sm_count) {
  NhwcPlan p;
  p.rows = rows;
  p.C = C;
  p.lanes = 1;
  while (p.lanes < 32 && p.lanes < C) p.lanes *= 2;  // small C: more threads along the rows
  p.row_threads = kBlock / p.lanes;
  p.col_blocks = (C + p.lanes - 1) / p.lanes;
  const int64_t target_blocks = static_cast<int64_t>(sm_count > 0 ? sm_count : 1) * 8;
  int64_t splits = (target_blocks + p.col_blocks - 1) / p.col_blocks;
  const int64_t most = rows / (static_cast<int64_t>(p.row_threads) * 16);  // at least 16 rows a thread
  if (splits > most) splits = most;
  if (splits > 1024) splits = 1024;
  if (splits < 1) splits = 1;
  p.splits = static_cast<int>(splits);
  p.rows_per_split = (rows + splits - 1) / splits;  // trailing splits may be empty: they add zeros
  return p;
}

RESNET_HD inline void nhwc_split_range(const NhwcPlan& g, int64_t s, int64_t* begin, int64_t* end) {
  *begin = s * g.rows_per_split;
  const int64_t e = *begin + g.rows_per_split;
  *end = e < g.rows ? e : g.rows;
  if (*begin > *end) *begin = *end;
}

// Merges the row threads' values of each column into row thread 0, by a fixed tree (row_threads is a
// power of two). Every thread of the block calls it.
template <typename C>
__device__ Welford<C> nhwc_column_welford(Welford<C> w, const NhwcPlan& g) {
  __shared__ C sn[kBlock], smean[kBlock], sm2[kBlock];
  const int t = static_cast<int>(threadIdx.x), ty = t / g.lanes;
  sn[t] = w.n;
  smean[t] = w.mean;
  sm2[t] = w.m2;
  __syncthreads();
  for (int step = g.row_threads / 2; step > 0; step /= 2) {
    if (ty < step) {
      const int o = t + step * g.lanes;
      const Welford<C> m =
          welford_merge(Welford<C>{sn[t], smean[t], sm2[t]}, Welford<C>{sn[o], smean[o], sm2[o]});
      sn[t] = m.n;
      smean[t] = m.mean;
      sm2[t] = m.m2;
    }
    __syncthreads();
  }
  const Welford<C> r{sn[t], smean[t], sm2[t]};
  __syncthreads();  // the arrays may be reused by the next call
  return r;
}

template <typename C>
__device__ void nhwc_column_sum2(C (&v)[2], const NhwcPlan& g) {
  __shared__ C s0[kBlock], s1[kBlock];
  const int t = static_cast<int>(threadIdx.x), ty = t / g.lanes;
  s0[t] = v[0];
  s1[t] = v[1];
  __syncthreads();
  for (int step = g.row_threads / 2; step > 0; step /= 2) {
    if (ty < step) {
      s0[t] += s0[t + step * g.lanes];
      s1[t] += s1[t + step * g.lanes];
    }
    __syncthreads();
  }
  v[0] = s0[t];
  v[1] = s1[t];
  __syncthreads();
}

// ---------------------------------------------------------------- forward

template <typename T>
__global__ void __launch_bounds__(kBlock)
    bn_nhwc_stats_kernel(const T* __restrict__ x, NhwcPlan g, cmp_t<T>* __restrict__ partial) {
  using C = cmp_t<T>;
  const int lane = static_cast<int>(threadIdx.x) % g.lanes, ty = static_cast<int>(threadIdx.x) / g.lanes;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * g.lanes + lane, s = blockIdx.y;
  const bool on = c < g.C;
  int64_t begin, end;
  nhwc_split_range(g, s, &begin, &end);
  const C pivot = on ? to_cmp(x[c]) : C(0);
  Welford<C> w{C(0), C(0), C(0)};
  if (on) {
    // A few rows at once, merged together: one division per U values, not per value.
    constexpr int U = 4;
    const int64_t step = g.row_threads;
    for (int64_t base = begin + ty; base < end; base += U * step) {
      C vals[U];
      int count = 0;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t r = base + u * step;
        vals[u] = r < end ? to_cmp(x[r * g.C + c]) - pivot : C(0);
        count += r < end;
      }
      w = welford_merge(w, welford_of(vals, count));
    }
  }
  w = nhwc_column_welford(w, g);
  if (ty == 0 && on) {
    C* out = partial + (c * g.splits + s) * 3;
    out[0] = w.n;
    out[1] = w.mean;
    out[2] = w.m2;
  }
}

// y = act((x - pivot[c]) * scale[c] + shift[c] [+ r]) over n elements in packs of V channels of a row.
template <typename T, int V>
__global__ void __launch_bounds__(kBlock)
    bn_nhwc_apply_kernel(const T* __restrict__ x, const T* __restrict__ r, T* __restrict__ y, int64_t n,
                         FastDiv channels, const cmp_t<T>* __restrict__ per_channel, bool relu_on) {
  using C = cmp_t<T>;
  const C* pivot = per_channel;
  const C* scale = per_channel + channels.d;
  const C* shift = scale + channels.d;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n / V; p += stride) {
    const uint32_t c0 = channels.mod(static_cast<uint32_t>(p * V));
    const Pack<T, V> xv = reinterpret_cast<const Pack<T, V>*>(x)[p];
    Pack<T, V> rv{};
    if (r) rv = reinterpret_cast<const Pack<T, V>*>(r)[p];
    Pack<T, V> out;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const uint32_t c = c0 + j;
      out.v[j] = from_cmp<T>(
          bn::apply(to_cmp(xv.v[j]), pivot[c], scale[c], shift[c], r ? to_cmp(rv.v[j]) : C(0), relu_on));
    }
    reinterpret_cast<Pack<T, V>*>(y)[p] = out;
  }
}

// ---------------------------------------------------------------- backward

template <typename T, typename P>
__global__ void __launch_bounds__(kBlock)
    bn_nhwc_backward_reduce_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                                   const P* __restrict__ mean, NhwcPlan g, bool relu_on, T* dres,
                                   bool dres_acc, cmp_t<T>* __restrict__ partial) {
  using C = cmp_t<T>;
  const int lane = static_cast<int>(threadIdx.x) % g.lanes, ty = static_cast<int>(threadIdx.x) / g.lanes;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * g.lanes + lane, s = blockIdx.y;
  const bool on = c < g.C;
  int64_t begin, end;
  nhwc_split_range(g, s, &begin, &end);
  C sums[2] = {C(0), C(0)};  // sum dz, sum dz * (x - mean)
  if (on) {
    const C mu = static_cast<C>(mean[c]);
    for (int64_t r = begin + ty; r < end; r += g.row_threads) {
      const int64_t off = r * g.C + c;
      const C dz = bn::dz(to_cmp(dy[off]), relu_on ? to_cmp(y[off]) : C(0), relu_on);
      sums[0] += dz;
      sums[1] += dz * (to_cmp(x[off]) - mu);
      if (dres) dres[off] = from_cmp<T>(dres_acc ? to_cmp(dres[off]) + dz : dz);
    }
  }
  nhwc_column_sum2(sums, g);
  if (ty == 0 && on) {
    partial[(c * g.splits + s) * 2 + 0] = sums[0];
    partial[(c * g.splits + s) * 2 + 1] = sums[1];
  }
}

// dx = [dx +] bn::dx(dz, x - mean), as bn_backward_apply_kernel, in packs of V channels of a row.
template <typename T, int V>
__global__ void __launch_bounds__(kBlock)
    bn_nhwc_backward_apply_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                                  const T* __restrict__ dz_buf, T* dx, bool dx_acc, int64_t n,
                                  FastDiv channels, const bn::Coefficients<cmp_t<T>>* __restrict__ coef,
                                  bool relu_on, bool use_x) {
  using C = cmp_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n / V; p += stride) {
    const uint32_t c0 = channels.mod(static_cast<uint32_t>(p * V));
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
      const bn::Coefficients<C> k = coef[c0 + j];
      const C dz = dz_buf ? to_cmp(dzv.v[j]) : bn::dz(to_cmp(dyv.v[j]), to_cmp(yv.v[j]), relu_on);
      const C gr = bn::dx(dz, use_x ? to_cmp(xv.v[j]) - k.mean : C(0), k);
      out.v[j] = from_cmp<T>(dx_acc ? to_cmp(out.v[j]) + gr : gr);
    }
    reinterpret_cast<Pack<T, V>*>(dx)[p] = out;
  }
}

// ---------------------------------------------------------------- launchers

// Workspace, in bytes: the partials (the NCHW kernels' layout), then the per-channel values.
template <typename T>
size_t bn_nhwc_forward_workspace_bytes(const BatchNormShape& s, int sm_count) {
  const NhwcPlan g = plan_nhwc(s.N * s.HW, s.C, sm_count);
  return static_cast<size_t>(s.C * g.splits * 3 + 3 * s.C) * sizeof(cmp_t<T>);
}
template <typename T>
size_t bn_nhwc_backward_workspace_bytes(const BatchNormShape& s, int sm_count) {
  const NhwcPlan g = plan_nhwc(s.N * s.HW, s.C, sm_count);
  return static_cast<size_t>(s.C * g.splits * 2) * sizeof(cmp_t<T>) +
         static_cast<size_t>(s.C) * sizeof(bn::Coefficients<cmp_t<T>>);
}

template <typename T>
void launch_bn_nhwc_apply(const T* x, const T* r, T* y, const BatchNormShape& s, const cmp_t<T>* per_channel,
                          bool relu_on, const LaunchEnv& env) {
  const int64_t n = s.numel();
  const FastDiv ch(static_cast<uint32_t>(s.C));
  // Half packs always: the NHWC kernels are behind their own switch (cuda::set_channels_last, off).
  with_pack_width<T>(bn_pack_width<T>(s.C, {x, r, y}, true), [&](auto v) {
    constexpr int V = decltype(v)::value;
    RESNET_LAUNCH((bn_nhwc_apply_kernel<T, V>), grid_for(n / V, kBlock, env.sm_count), kBlock, env, x, r, y,
                  n, ch, per_channel, relu_on);
  });
}

// Training forward. workspace: bn_nhwc_forward_workspace_bytes<T>(s, env.sm_count).
template <typename T, typename P>
void bn_nhwc_forward_training(const T* x, const T* r, const P* gamma, const P* beta, P* running_mean,
                              P* running_var, P* save_mean, P* save_invstd, T* y, const BatchNormShape& s,
                              double eps, double momentum, bool relu_on, void* workspace,
                              const LaunchEnv& env) {
  using C = cmp_t<T>;
  const NhwcPlan g = plan_nhwc(s.N * s.HW, s.C, env.sm_count);
  C* partial = static_cast<C*>(workspace);
  C* per_channel = partial + s.C * g.splits * 3;  // pivot, scale, shift
  RESNET_LAUNCH((bn_nhwc_stats_kernel<T>), dim3(static_cast<unsigned>(g.col_blocks), g.splits), kBlock, env,
                x, g, partial);
  // The NCHW finalize with hw = 1 reads the pivot x[c]: channel c's first value in NHWC too.
  RESNET_LAUNCH((bn_finalize_kernel<T, P, C>), dim3(static_cast<unsigned>((s.C + kBlock - 1) / kBlock)),
                kBlock, env, partial, x, int64_t(1), s.C, g.splits, gamma, beta, running_mean, running_var,
                save_mean, save_invstd, per_channel, per_channel + s.C, per_channel + 2 * s.C, eps, momentum);
  launch_bn_nhwc_apply(x, r, y, s, per_channel, relu_on, env);
}

// Inference forward: the NCHW per-channel prep, then the NHWC apply pass. workspace:
// bn_inference_workspace_bytes<T>(s).
template <typename T, typename P>
void bn_nhwc_forward_inference(const T* x, const T* r, const P* gamma, const P* beta, const P* running_mean,
                               const P* running_var, T* y, const BatchNormShape& s, double eps, bool relu_on,
                               void* workspace, const LaunchEnv& env) {
  auto* per_channel =
      launch_bn_inference_prep<T>(gamma, beta, running_mean, running_var, s, eps, workspace, env);
  launch_bn_nhwc_apply(x, r, y, s, per_channel, relu_on, env);
}

// Backward; any of dx, dres, dgamma, dbeta may be null; y is read only when relu_on. workspace:
// bn_nhwc_backward_workspace_bytes<T>(s, env.sm_count).
template <typename T, typename P>
void bn_nhwc_backward(const T* x, const T* y, const T* dy, const P* gamma, const P* mean, const P* invstd,
                      bool training, bool relu_on, T* dx, bool dx_acc, T* dres, bool dres_acc, P* dgamma,
                      P* dbeta, bool param_acc, const BatchNormShape& s, void* workspace,
                      const LaunchEnv& env) {
  using C = cmp_t<T>;
  if (!dx && !(training || dgamma || dbeta || dres)) return;
  const bool reduce = training || dgamma || dbeta || dres;
  const NhwcPlan g = plan_nhwc(s.N * s.HW, s.C, env.sm_count);
  C* partial = static_cast<C*>(workspace);
  auto* coef = reinterpret_cast<bn::Coefficients<C>*>(partial + s.C * g.splits * 2);
  if (reduce)
    RESNET_LAUNCH((bn_nhwc_backward_reduce_kernel<T, P>), dim3(static_cast<unsigned>(g.col_blocks), g.splits),
                  kBlock, env, x, y, dy, mean, g, relu_on, dres, dres_acc, partial);
  RESNET_LAUNCH((bn_backward_finalize_kernel<P, C>), dim3(static_cast<unsigned>((s.C + kBlock - 1) / kBlock)),
                kBlock, env, partial, s.C, reduce ? g.splits : 0, static_cast<double>(s.count()), gamma, mean,
                invstd, training, dgamma, dbeta, param_acc, coef);
  if (!dx) return;
  const T* dz_buf = (dres && !dres_acc) ? dres : nullptr;
  const int64_t n = s.numel();
  const FastDiv ch(static_cast<uint32_t>(s.C));
  with_pack_width<T>(bn_pack_width<T>(s.C, {x, relu_on ? y : nullptr, dy, dz_buf, dx}, true), [&](auto v) {
    constexpr int V = decltype(v)::value;
    RESNET_LAUNCH((bn_nhwc_backward_apply_kernel<T, V>), grid_for(n / V, kBlock, env.sm_count), kBlock, env,
                  x, y, dy, dz_buf, dx, dx_acc, n, ch, coef, relu_on, training);
  });
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
