// Pooling over NCHW: max pooling (saving the argmax as ih * W + iw, the first maximum on ties, as the CPU
// backend and PyTorch), average pooling (PyTorch's divisor rules), and global average pooling.
//
// The average-pool backward gathers: each input element sums the outputs whose window covers it, so it
// needs no atomics and is deterministic. The max-pool backward scatters (see its kernel).
#pragma once

#include "resnet/core/abi.hpp"
#include "elementwise.cuh"
#include "reduce.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

struct PoolGeom {
  int64_t NC = 0, H = 0, W = 0, OH = 0, OW = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  bool count_include_pad = true;
};

// The range [lo, hi] of output rows (or columns) whose window covers input row i; empty when lo > hi.
RESNET_HD inline void covering_outputs(int64_t i, int k, int s, int pad, int64_t out, int64_t* lo,
                                       int64_t* hi) {
  const int64_t first = i + pad - k + 1;  // o * s >= first
  *lo = first <= 0 ? 0 : (first + s - 1) / s;
  int64_t h = (i + pad) / s;  // o * s <= i + pad
  *hi = h < out - 1 ? h : out - 1;
}

// PyTorch's average-pool divisor of output (oh, ow).
RESNET_HD inline int64_t avg_divisor(const PoolGeom& g, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  const int64_t h1 = h0 + g.kh < g.H + g.ph ? h0 + g.kh : g.H + g.ph;
  const int64_t w1 = w0 + g.kw < g.W + g.pw ? w0 + g.kw : g.W + g.pw;
  if (g.count_include_pad) return (h1 - h0) * (w1 - w0);
  const int64_t hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;
  const int64_t he = h1 < g.H ? h1 : g.H, we = w1 < g.W ? w1 : g.W;
  return (he - hs) * (we - ws);
}

template <typename T>
__global__ void __launch_bounds__(kBlock) maxpool_forward_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                                 int32_t* __restrict__ idx, PoolGeom g) {
  const int64_t total = g.NC * g.OH * g.OW;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH, nc = o / (g.OW * g.OH);
    const T* xc = x + nc * g.H * g.W;
    T best{};
    cmp_t<T> best_v = cmp_t<T>(0);
    int64_t arg = -1;
    for (int i = 0; i < g.kh; ++i) {
      const int64_t ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.H) continue;
      for (int j = 0; j < g.kw; ++j) {
        const int64_t iw = ow * g.sw - g.pw + j;
        if (iw < 0 || iw >= g.W) continue;
        const T v = xc[ih * g.W + iw];
        if (arg < 0 || to_cmp(v) > best_v) {
          best = v;
          best_v = to_cmp(v);
          arg = ih * g.W + iw;
        }
      }
    }
    y[o] = best;
    idx[o] = static_cast<int32_t>(arg);
  }
}

// The max-pool backward gets only the saved argmax (no window geometry, as in the CPU backend), so it
// scatters: each output adds its gradient to the input that won. Overlapping windows (3x3, stride 2) can
// pick the same input, hence the atomic add; the order of those few additions is not fixed.
template <typename T>
__global__ void __launch_bounds__(kBlock)
    maxpool_backward_kernel(const T* __restrict__ dy, const int32_t* __restrict__ idx, T* dx, int64_t outputs,
                            FastDiv out_plane, int64_t in_plane) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs; o += stride) {
    const int64_t plane = out_plane.div(static_cast<uint32_t>(o));
    atomic_add(dx + plane * in_plane + idx[o], to_cmp(dy[o]));
  }
}

template <typename T>
__global__ void __launch_bounds__(kBlock)
    avgpool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeom g) {
  const int64_t total = g.NC * g.OH * g.OW;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH, nc = o / (g.OW * g.OH);
    const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    const int64_t hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;
    const int64_t he = h0 + g.kh < g.H ? h0 + g.kh : g.H, we = w0 + g.kw < g.W ? w0 + g.kw : g.W;
    cmp_t<T> s = cmp_t<T>(0);
    for (int64_t ih = hs; ih < he; ++ih)
      for (int64_t iw = ws; iw < we; ++iw) s += to_cmp(x[(nc * g.H + ih) * g.W + iw]);
    y[o] = from_cmp<T>(s / static_cast<cmp_t<T>>(avg_divisor(g, oh, ow)));
  }
}

template <typename T>
__global__ void __launch_bounds__(kBlock)
    avgpool_backward_kernel(const T* __restrict__ dy, T* dx, PoolGeom g, bool acc) {
  const int64_t total = g.NC * g.H * g.W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t iw = e % g.W, ih = (e / g.W) % g.H, nc = e / (g.W * g.H);
    int64_t oh0, oh1, ow0, ow1;
    covering_outputs(ih, g.kh, g.sh, g.ph, g.OH, &oh0, &oh1);
    covering_outputs(iw, g.kw, g.sw, g.pw, g.OW, &ow0, &ow1);
    cmp_t<T> s = cmp_t<T>(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        s += to_cmp(dy[(nc * g.OH + oh) * g.OW + ow]) / static_cast<cmp_t<T>>(avg_divisor(g, oh, ow));
    dx[e] = from_cmp<T>(acc ? to_cmp(dx[e]) + s : s);
  }
}

// One warp per (n, c) plane.
template <typename T>
__global__ void __launch_bounds__(kBlock)
    global_avgpool_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes, int64_t hw) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t warps_per_block = blockDim.x / 32;
  const int64_t step = static_cast<int64_t>(gridDim.x) * warps_per_block;
  for (int64_t pl = static_cast<int64_t>(blockIdx.x) * warps_per_block + (threadIdx.x >> 5); pl < planes;
       pl += step) {
    cmp_t<T> s = cmp_t<T>(0);
    for (int64_t i = lane; i < hw; i += 32) s += to_cmp(x[pl * hw + i]);
    s = warp_sum(s);
    if (lane == 0) y[pl] = from_cmp<T>(s / static_cast<cmp_t<T>>(hw));
  }
}

// dx[nc, i] = [dx +] dy[nc] / HW (the share rounded to T first, as the CPU backend).
template <typename T>
struct GlobalAvgBackwardOp {
  const T* dy;
  FastDiv hw;
  bool acc;
  RESNET_HD T operator()(int64_t i, T, T, T dx) const {
    const T g = from_cmp<T>(to_cmp(dy[hw.div(static_cast<uint32_t>(i))]) / static_cast<cmp_t<T>>(hw.d));
    return acc ? from_cmp<T>(to_cmp(dx) + to_cmp(g)) : g;
  }
};

// ---------------------------------------------------------------- launchers

template <typename T>
void maxpool_forward(const T* x, T* y, int32_t* idx, const PoolGeom& g, const LaunchEnv& env) {
  RESNET_LAUNCH((maxpool_forward_kernel<T>), grid_for(g.NC * g.OH * g.OW, kBlock, env.sm_count), kBlock, env,
                x, y, idx, g);
}
// dx [planes, in_plane] gets dy [planes, out_plane] at the argmax positions idx (added to when acc).
template <typename T>
void maxpool_backward(const T* dy, const int32_t* idx, T* dx, int64_t planes, int64_t in_plane,
                      int64_t out_plane, bool acc, const LaunchEnv& env) {
  if (!acc) fill(dx, planes * in_plane, 0.0, env);
  const int64_t outputs = planes * out_plane;
  if (outputs == 0) return;
  RESNET_LAUNCH((maxpool_backward_kernel<T>), grid_for(outputs, kBlock, env.sm_count), kBlock, env, dy, idx,
                dx, outputs, FastDiv(static_cast<uint32_t>(out_plane)), in_plane);
}
template <typename T>
void avgpool_forward(const T* x, T* y, const PoolGeom& g, const LaunchEnv& env) {
  RESNET_LAUNCH((avgpool_forward_kernel<T>), grid_for(g.NC * g.OH * g.OW, kBlock, env.sm_count), kBlock, env,
                x, y, g);
}
template <typename T>
void avgpool_backward(const T* dy, T* dx, const PoolGeom& g, bool acc, const LaunchEnv& env) {
  RESNET_LAUNCH((avgpool_backward_kernel<T>), grid_for(g.NC * g.H * g.W, kBlock, env.sm_count), kBlock, env,
                dy, dx, g, acc);
}
template <typename T>
void global_avgpool_forward(const T* x, T* y, int64_t planes, int64_t hw, const LaunchEnv& env) {
  RESNET_LAUNCH((global_avgpool_kernel<T>), grid_for(planes * 32, kBlock, env.sm_count), kBlock, env, x, y,
                planes, hw);
}
template <typename T>
void global_avgpool_backward(const T* dy, T* dx, int64_t planes, int64_t hw, bool acc, const LaunchEnv& env) {
  launch_map<T, T>(nullptr, nullptr, dx, planes * hw, acc,
                   GlobalAvgBackwardOp<T>{dy, FastDiv(static_cast<uint32_t>(hw)), acc}, env);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
