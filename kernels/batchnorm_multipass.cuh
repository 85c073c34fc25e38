// BatchNorm2d's multi-pass kernels (the library's default path, any shape), NCHW, with the residual add and
// ReLU fused in. The arithmetic is batchnorm_math.hpp's (shared with the CPU backend); this file is the
// passes over memory.
//
// Training forward, three kernels: per-block Welford statistics of each channel (bn_stats, of x minus a
// pivot, the channel's first value, so a large mean with a small spread keeps its digits), a per-channel
// finalize that merges them in double, records the statistics and computes scale/shift (bn_finalize), and
// one elementwise pass (bn_apply). x is read twice, the residual once, y written once: the unfused chain
// (BN, then add, then ReLU) moves about twice the bytes. Inference: a per-channel prep, then bn_apply.
//
// Backward: a reduction pass (bn_backward_reduce) sums dz and dz * (x - mean) per channel and writes
// dresidual = dz on the way; a finalize writes dgamma/dbeta and each channel's bn::Coefficients; the apply
// pass (bn_backward_apply) writes dx. When dresidual was overwritten (not accumulated), the apply pass
// reads dz from it instead of recomputing it from dy and y: one tensor read instead of two.
//
// Gradient rule: each output gradient is overwritten, or added to when its accumulate flag is set.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/batchnorm_math.hpp"
#include "batchnorm_plan.cuh"
#include "channel.cuh"
#include "elementwise.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

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
  const double inv = bn::invstd(var, eps);
  bn::store_statistics(mean, var, inv, w.n, momentum, save_mean + c, save_invstd + c, running_mean + c,
                       running_var + c);
  const bn::ScaleShift<C> k =
      bn::scale_shift<C>(static_cast<double>(gamma[c]), static_cast<double>(beta[c]), inv, w.mean);
  pivots[c] = pivot;
  scale[c] = k.scale;
  shift[c] = k.shift;
}

template <typename P, typename C>
__global__ void __launch_bounds__(kBlock)
    bn_inference_prep_kernel(int64_t channels, const P* __restrict__ gamma, const P* __restrict__ beta,
                             const P* __restrict__ running_mean, const P* __restrict__ running_var,
                             double eps, C* pivots, C* scale, C* shift) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const double inv = bn::invstd(static_cast<double>(running_var[c]), eps);
  const C pivot = static_cast<C>(running_mean[c]);
  const bn::ScaleShift<C> k = bn::scale_shift<C>(static_cast<double>(gamma[c]), static_cast<double>(beta[c]),
                                                 inv, static_cast<double>(running_mean[c]) - pivot);
  pivots[c] = pivot;
  scale[c] = k.scale;
  shift[c] = k.shift;
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
      out.v[j] = from_cmp<T>(bn::apply(to_cmp(xv.v[j]), pv, sc, sh, r ? to_cmp(rv.v[j]) : C(0), relu_on));
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
      const C dz = bn::dz(to_cmp(dyv.v[j]), to_cmp(yv.v[j]), relu_on);
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
                                bool param_acc, bn::Coefficients<C>* coef) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  double sum_dz = 0.0, sum_dz_xmu = 0.0;
  for (int k = 0; k < splits; ++k) {
    sum_dz += static_cast<double>(partial[(c * splits + k) * 2 + 0]);
    sum_dz_xmu += static_cast<double>(partial[(c * splits + k) * 2 + 1]);
  }
  const double is = static_cast<double>(invstd[c]);
  bn::store_param_grads(sum_dz, sum_dz_xmu, is, param_acc, dgamma ? dgamma + c : nullptr,
                        dbeta ? dbeta + c : nullptr);
  coef[c] = bn::dx_coefficients<C>(static_cast<double>(gamma[c]), static_cast<double>(mean[c]), is, sum_dz,
                                   sum_dz_xmu, count, training);
}

// dx = [dx +] bn::dx(dz, x - mean), with dz read from dz_buf when given, else from dy and y; x is not read
// when !use_x (eval mode: its coefficient b is 0).
template <typename T, int V>
__global__ void __launch_bounds__(kBlock)
    bn_backward_apply_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                             const T* __restrict__ dz_buf, T* dx, bool dx_acc, int64_t n, FastDiv hw,
                             FastDiv channels, const bn::Coefficients<cmp_t<T>>* __restrict__ coef,
                             bool relu_on, bool use_x) {
  using C = cmp_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < n / V; p += stride) {
    const uint32_t c = channels.mod(hw.div(static_cast<uint32_t>(p * V)));
    const bn::Coefficients<C> k = coef[c];
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
      const C dz = dz_buf ? to_cmp(dzv.v[j]) : bn::dz(to_cmp(dyv.v[j]), to_cmp(yv.v[j]), relu_on);
      const C g = bn::dx(dz, use_x ? to_cmp(xv.v[j]) - k.mean : C(0), k);
      out.v[j] = from_cmp<T>(dx_acc ? to_cmp(out.v[j]) + g : g);
    }
    reinterpret_cast<Pack<T, V>*>(dx)[p] = out;
  }
}

// ---------------------------------------------------------------- launchers

inline int bn_vmax(int width, std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p && !aligned_to(p, 16)) return 1;
  return width;
}
// Pack width of the elementwise passes over T: a pack never straddles two channels, so it divides HW.
// half_packs: BnOptions::half_packs (pack_width_for).
template <typename T>
int bn_pack_width(int64_t HW, std::initializer_list<const void*> ptrs, bool half_packs) {
  return pack_width_for(HW, bn_vmax(vec_width<T>(), ptrs), half_packs);
}

// Workspace of the multi-pass kernels, in bytes: the partials, then the per-channel values.
template <typename T>
size_t bn_multipass_forward_workspace_bytes(const BatchNormShape& s, int sm_count) {
  const ChannelPlan g = plan_channels(s.N, s.C, s.HW, 1, sm_count);
  return static_cast<size_t>(s.C * g.splits * 3 + 3 * s.C) * sizeof(cmp_t<T>);
}
template <typename T>
size_t bn_multipass_backward_workspace_bytes(const BatchNormShape& s, int sm_count) {
  const ChannelPlan g = plan_channels(s.N, s.C, s.HW, 1, sm_count);
  return static_cast<size_t>(s.C * g.splits * 2) * sizeof(cmp_t<T>) +
         static_cast<size_t>(s.C) * sizeof(bn::Coefficients<cmp_t<T>>);
}

template <typename T>
void launch_bn_apply(const T* x, const T* r, T* y, const BatchNormShape& s, const cmp_t<T>* per_channel,
                     bool relu_on, const LaunchEnv& env, bool half_packs) {
  const int64_t n = s.numel();
  const FastDiv hw(static_cast<uint32_t>(s.HW)), ch(static_cast<uint32_t>(s.C));
  with_pack_width<T>(bn_pack_width<T>(s.HW, {x, r, y}, half_packs), [&](auto v) {
    constexpr int V = decltype(v)::value;
    RESNET_LAUNCH((bn_apply_kernel<T, V>), grid_for(n / V, kBlock, env.sm_count), kBlock, env, x, r, y, n, hw,
                  ch, per_channel, relu_on);
  });
}

// Training forward, multi-pass. workspace: bn_multipass_forward_workspace_bytes<T>(s, env.sm_count).
// half_packs: BnOptions::half_packs.
template <typename T, typename P>
void bn_forward_training_multipass(const T* x, const T* r, const P* gamma, const P* beta, P* running_mean,
                                   P* running_var, P* save_mean, P* save_invstd, T* y,
                                   const BatchNormShape& s, double eps, double momentum, bool relu_on,
                                   void* workspace, const LaunchEnv& env, bool half_packs = false) {
  using C = cmp_t<T>;
  const ChannelPlan g = plan_channels(s.N, s.C, s.HW, bn_vmax(vec_width<T>(), {x}), env.sm_count, half_packs);
  C* partial = static_cast<C*>(workspace);
  C* per_channel = partial + s.C * g.splits * 3;  // pivot, scale, shift
  const dim3 grid(static_cast<unsigned>(s.C), static_cast<unsigned>(g.splits));
  with_pack_width<T>(g.V, [&](auto v) {
    RESNET_LAUNCH((bn_stats_kernel<T, decltype(v)::value>), grid, kBlock, env, x, g, partial);
  });
  RESNET_LAUNCH((bn_finalize_kernel<T, P, C>), dim3(static_cast<unsigned>((s.C + kBlock - 1) / kBlock)),
                kBlock, env, partial, x, s.HW, s.C, g.splits, gamma, beta, running_mean, running_var,
                save_mean, save_invstd, per_channel, per_channel + s.C, per_channel + 2 * s.C, eps, momentum);
  launch_bn_apply(x, r, y, s, per_channel, relu_on, env, half_packs);
}

template <typename T>
size_t bn_inference_workspace_bytes(const BatchNormShape& s) {
  return static_cast<size_t>(3 * s.C) * sizeof(cmp_t<T>);
}

// The per-channel scale, shift and invstd of the running statistics into workspace (3 C values), for the
// inference apply pass of either memory format.
template <typename T, typename P>
cmp_t<T>* launch_bn_inference_prep(const P* gamma, const P* beta, const P* running_mean, const P* running_var,
                                   const BatchNormShape& s, double eps, void* workspace,
                                   const LaunchEnv& env) {
  using C = cmp_t<T>;
  C* per_channel = static_cast<C*>(workspace);
  RESNET_LAUNCH((bn_inference_prep_kernel<P, C>), dim3(static_cast<unsigned>((s.C + kBlock - 1) / kBlock)),
                kBlock, env, s.C, gamma, beta, running_mean, running_var, eps, per_channel, per_channel + s.C,
                per_channel + 2 * s.C);
  return per_channel;
}

// Inference forward (running statistics): a per-channel prep and the apply pass, for every shape.
// half_packs: BnOptions::half_packs.
template <typename T, typename P>
void bn_forward_inference(const T* x, const T* r, const P* gamma, const P* beta, const P* running_mean,
                          const P* running_var, T* y, const BatchNormShape& s, double eps, bool relu_on,
                          void* workspace, const LaunchEnv& env, bool half_packs = false) {
  auto* per_channel =
      launch_bn_inference_prep<T>(gamma, beta, running_mean, running_var, s, eps, workspace, env);
  launch_bn_apply(x, r, y, s, per_channel, relu_on, env, half_packs);
}

// Backward, multi-pass; any of dx, dres, dgamma, dbeta may be null. y is read only when relu_on.
// workspace: bn_multipass_backward_workspace_bytes<T>(s, env.sm_count). half_packs: BnOptions::half_packs.
template <typename T, typename P>
void bn_backward_multipass(const T* x, const T* y, const T* dy, const P* gamma, const P* mean,
                           const P* invstd, bool training, bool relu_on, T* dx, bool dx_acc, T* dres,
                           bool dres_acc, P* dgamma, P* dbeta, bool param_acc, const BatchNormShape& s,
                           void* workspace, const LaunchEnv& env, bool half_packs = false) {
  using C = cmp_t<T>;
  const bool reduce = training || dgamma || dbeta || dres;
  const ChannelPlan g =
      plan_channels(s.N, s.C, s.HW, bn_vmax(vec_width<T>(), {x, relu_on ? y : nullptr, dy, dres}),
                    env.sm_count, half_packs);
  C* partial = static_cast<C*>(workspace);
  auto* coef = reinterpret_cast<bn::Coefficients<C>*>(partial + s.C * g.splits * 2);
  if (reduce) {
    const dim3 grid(static_cast<unsigned>(s.C), static_cast<unsigned>(g.splits));
    with_pack_width<T>(g.V, [&](auto v) {
      RESNET_LAUNCH((bn_backward_reduce_kernel<T, P, decltype(v)::value>), grid, kBlock, env, x, y, dy, mean,
                    g, relu_on, dres, dres_acc, partial);
    });
  }
  RESNET_LAUNCH((bn_backward_finalize_kernel<P, C>), dim3(static_cast<unsigned>((s.C + kBlock - 1) / kBlock)),
                kBlock, env, partial, s.C, reduce ? g.splits : 0, static_cast<double>(s.count()), gamma, mean,
                invstd, training, dgamma, dbeta, param_acc, coef);
  if (!dx) return;
  const T* dz_buf = (dres && !dres_acc) ? dres : nullptr;
  const int64_t n = s.numel();
  const FastDiv hw(static_cast<uint32_t>(s.HW)), ch(static_cast<uint32_t>(s.C));
  with_pack_width<T>(
      bn_pack_width<T>(s.HW, {x, relu_on ? y : nullptr, dy, dz_buf, dx}, half_packs), [&](auto v) {
        constexpr int V = decltype(v)::value;
        RESNET_LAUNCH((bn_backward_apply_kernel<T, V>), grid_for(n / V, kBlock, env.sm_count), kBlock, env, x,
                      y, dy, dz_buf, dx, dx_acc, n, hw, ch, coef, relu_on, training);
      });
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
