// Pooling over channels-last (NHWC) tensors: max (argmax saved as ih * W + iw, laid out like y, the first
// maximum on ties), average (PyTorch's divisor rules) and global average, forward and backward. The same
// rules as pool.cuh (its PoolGeom, covering_outputs and avg_divisor); only the indexing differs: channel c
// is the fastest index, so neighbouring threads take neighbouring channels of one pixel and every load of
// a warp is coalesced. Opt-in (cuda::set_channels_last): never run on a GPU yet.
#pragma once

#include "resnet/core/abi.hpp"
#include "pool.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

// Geometry of an NHWC pool: PoolGeom (whose NC is N * C) with the channel count split out.
struct PoolGeomNhwc {
  PoolGeom g;
  int64_t N = 0, C = 0;
};

template <typename T>
__global__ void __launch_bounds__(kBlock)
    maxpool_nhwc_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int32_t* __restrict__ idx,
                                PoolGeomNhwc q) {
  const PoolGeom& g = q.g;
  const int64_t total = q.N * g.OH * g.OW * q.C;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t c = o % q.C, pix = o / q.C;
    const int64_t ow = pix % g.OW, oh = (pix / g.OW) % g.OH, n = pix / (g.OW * g.OH);
    const T* xn = x + n * g.H * g.W * q.C + c;
    T best{};
    cmp_t<T> best_v = cmp_t<T>(0);
    int64_t arg = -1;
    for (int i = 0; i < g.kh; ++i) {
      const int64_t ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.H) continue;
      for (int j = 0; j < g.kw; ++j) {
        const int64_t iw = ow * g.sw - g.pw + j;
        if (iw < 0 || iw >= g.W) continue;
        const T v = xn[(ih * g.W + iw) * q.C];
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

// Scatters each output's gradient to the input that won (atomics: overlapping windows share inputs).
template <typename T>
__global__ void __launch_bounds__(kBlock)
    maxpool_nhwc_backward_kernel(const T* __restrict__ dy, const int32_t* __restrict__ idx, T* dx,
                                 int64_t outputs, FastDiv channels, FastDiv out_image, int64_t in_plane) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < outputs; o += stride) {
    const uint32_t c = channels.mod(static_cast<uint32_t>(o));
    const int64_t n = out_image.div(static_cast<uint32_t>(o));  // out_image: OH * OW * C
    atomic_add(dx + (n * in_plane + idx[o]) * channels.d + c, to_cmp(dy[o]));
  }
}

template <typename T>
__global__ void __launch_bounds__(kBlock)
    avgpool_nhwc_forward_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeomNhwc q) {
  const PoolGeom& g = q.g;
  const int64_t total = q.N * g.OH * g.OW * q.C;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t c = o % q.C, pix = o / q.C;
    const int64_t ow = pix % g.OW, oh = (pix / g.OW) % g.OH, n = pix / (g.OW * g.OH);
    const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    const int64_t hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;
    const int64_t he = h0 + g.kh < g.H ? h0 + g.kh : g.H, we = w0 + g.kw < g.W ? w0 + g.kw : g.W;
    cmp_t<T> s = cmp_t<T>(0);
    for (int64_t ih = hs; ih < he; ++ih)
      for (int64_t iw = ws; iw < we; ++iw) s += to_cmp(x[((n * g.H + ih) * g.W + iw) * q.C + c]);
    y[o] = from_cmp<T>(s / static_cast<cmp_t<T>>(avg_divisor(g, oh, ow)));
  }
}

// Gathers: each input element sums the outputs whose window covers it (no atomics, deterministic).
template <typename T>
__global__ void __launch_bounds__(kBlock)
    avgpool_nhwc_backward_kernel(const T* __restrict__ dy, T* dx, PoolGeomNhwc q, bool acc) {
  const PoolGeom& g = q.g;
  const int64_t total = q.N * g.H * g.W * q.C;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t c = e % q.C, pix = e / q.C;
    const int64_t iw = pix % g.W, ih = (pix / g.W) % g.H, n = pix / (g.W * g.H);
    int64_t oh0, oh1, ow0, ow1;
    covering_outputs(ih, g.kh, g.sh, g.ph, g.OH, &oh0, &oh1);
    covering_outputs(iw, g.kw, g.sw, g.pw, g.OW, &ow0, &ow1);
    cmp_t<T> s = cmp_t<T>(0);
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow)
        s += to_cmp(dy[((n * g.OH + oh) * g.OW + ow) * q.C + c]) /
             static_cast<cmp_t<T>>(avg_divisor(g, oh, ow));
    dx[e] = from_cmp<T>(acc ? to_cmp(dx[e]) + s : s);
  }
}

// y[n, c] = mean of the image's H * W rows: one thread a (n, c), walking the rows in order (the threads of a
// warp read one row's neighbouring channels).
template <typename T>
__global__ void __launch_bounds__(kBlock)
    global_avgpool_nhwc_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t N, int64_t C, int64_t hw) {
  const int64_t total = N * C;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += stride) {
    const int64_t n = o / C, c = o % C;
    const T* xn = x + n * hw * C + c;
    cmp_t<T> s = cmp_t<T>(0);
    for (int64_t i = 0; i < hw; ++i) s += to_cmp(xn[i * C]);
    y[o] = from_cmp<T>(s / static_cast<cmp_t<T>>(hw));
  }
}

// dx[n, i, c] = [dx +] dy[n, c] / HW (the share rounded to T first, as the NCHW kernel and the CPU).
template <typename T>
struct GlobalAvgBackwardNhwcOp {
  const T* dy;
  FastDiv channels, image;  // C and HW * C
  int64_t hw;
  bool acc;
  RESNET_HD T operator()(int64_t i, T, T, T dx) const {
    const uint32_t u = static_cast<uint32_t>(i);
    const int64_t n = image.div(u), c = channels.mod(u);
    const T g = from_cmp<T>(to_cmp(dy[n * channels.d + c]) / static_cast<cmp_t<T>>(hw));
    return acc ? from_cmp<T>(to_cmp(dx) + to_cmp(g)) : g;
  }
};

// ---------------------------------------------------------------- launchers

template <typename T>
void maxpool_nhwc_forward(const T* x, T* y, int32_t* idx, const PoolGeomNhwc& q, const LaunchEnv& env) {
  RESNET_LAUNCH((maxpool_nhwc_forward_kernel<T>), grid_for(q.N * q.g.OH * q.g.OW * q.C, kBlock, env.sm_count),
                kBlock, env, x, y, idx, q);
}
// dx [N, H, W, C] gets dy [N, OH, OW, C] at the argmax pixels idx (added to when acc).
template <typename T>
void maxpool_nhwc_backward(const T* dy, const int32_t* idx, T* dx, int64_t N, int64_t C, int64_t in_plane,
                           int64_t out_plane, bool acc, const LaunchEnv& env) {
  if (!acc) fill(dx, N * in_plane * C, 0.0, env);
  const int64_t outputs = N * out_plane * C;
  if (outputs == 0) return;
  RESNET_LAUNCH((maxpool_nhwc_backward_kernel<T>), grid_for(outputs, kBlock, env.sm_count), kBlock, env, dy,
                idx, dx, outputs, FastDiv(static_cast<uint32_t>(C)),
                FastDiv(static_cast<uint32_t>(out_plane * C)), in_plane);
}
template <typename T>
void avgpool_nhwc_forward(const T* x, T* y, const PoolGeomNhwc& q, const LaunchEnv& env) {
  RESNET_LAUNCH((avgpool_nhwc_forward_kernel<T>), grid_for(q.N * q.g.OH * q.g.OW * q.C, kBlock, env.sm_count),
                kBlock, env, x, y, q);
}
template <typename T>
void avgpool_nhwc_backward(const T* dy, T* dx, const PoolGeomNhwc& q, bool acc, const LaunchEnv& env) {
  RESNET_LAUNCH((avgpool_nhwc_backward_kernel<T>), grid_for(q.N * q.g.H * q.g.W * q.C, kBlock, env.sm_count),
                kBlock, env, dy, dx, q, acc);
}
template <typename T>
void global_avgpool_nhwc_forward(const T* x, T* y, int64_t N, int64_t C, int64_t hw, const LaunchEnv& env) {
  RESNET_LAUNCH((global_avgpool_nhwc_kernel<T>), grid_for(N * C, kBlock, env.sm_count), kBlock, env, x, y, N,
                C, hw);
}
template <typename T>
void global_avgpool_nhwc_backward(const T* dy, T* dx, int64_t N, int64_t C, int64_t hw, bool acc,
                                  const LaunchEnv& env) {
  launch_map<T, T>(nullptr, nullptr, dx, N * hw * C, acc,
                   GlobalAvgBackwardNhwcOp<T>{dy, FastDiv(static_cast<uint32_t>(C)),
                                              FastDiv(static_cast<uint32_t>(hw * C)), hw, acc},
                   env);
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
