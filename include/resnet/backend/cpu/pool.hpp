// Pooling on the CPU, NCHW or channels-last: max pooling (with the argmax saved for the backward), average
// pooling and global average pooling ([N, C, H, W] -> [N, C]). The reference loops index through strides
// (either format); float has vectorised paths for both formats; bfloat16 runs the float paths on float
// copies (max pooling's result is exact, the sums of average pooling are formed in float).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "resnet/backend/contract/pool.hpp"
#include "resnet/backend/cpu/bf16.hpp"
#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/cpu/layout.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

// The pooling contract (backend/contract/pool.hpp), shared with the CUDA backend.
inline void check_pool_shapes(const char* op, const TensorBase& x, const TensorBase& y, const PoolParams& p) {
  contract::pool2d(op, x, y, p, x);
}

// indices[n, c, oh, ow] = ih * W + iw of the maximum (the first one on ties, as PyTorch). `indices` may be
// undefined when no backward will run (inference): then only y is written.
template <typename T>
void maxpool2d_forward_reference(const Tensor<T>& x, Tensor<T>& y, Tensor<int32_t>& indices,
                                 const PoolParams& p) {
  check_pool_shapes("max_pool2d", x, y, p);
  if (indices.defined()) contract::maxpool_indices("max_pool2d", y, indices);
  const int64_t C = x.dim(1), NC = x.dim(0) * C, H = x.dim(2), W = x.dim(3), OH = y.dim(2), OW = y.dim(3);
  const T* px = x.data();
  T* py = y.data();
  int32_t* pi = indices.defined() ? indices.data() : nullptr;
  const Strides4 sx(x), sy(y);
  parallel_for(NC, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          T best = -std::numeric_limits<T>::infinity();
          int64_t arg = -1;
          for (int64_t i = 0; i < p.kernel_h; ++i) {
            int64_t ih = oh * p.stride_h - p.pad_h + i;
            if (ih < 0 || ih >= H) continue;
            for (int64_t j = 0; j < p.kernel_w; ++j) {
              int64_t iw = ow * p.stride_w - p.pad_w + j;
              if (iw < 0 || iw >= W) continue;
              T v = px[sx.at(n, c, ih, iw)];
              if (v > best || arg < 0) {
                best = v;
                arg = ih * W + iw;
              }
            }
          }
          const int64_t o = sy.at(n, c, oh, ow);
          py[o] = best;
          if (pi) pi[o] = static_cast<int32_t>(arg);
        }
    }
  });
}

// The float path: the same scan (taps in row-major order; a tap wins when it is the window's first valid
// one or strictly greater, so ties keep the first), but across 16 outputs of a row at once with AVX-512
// (masked gathers for any stride and padding). One window at a time is a serial chain of compares, half
// of them mispredicted on real data: that cost 6% of a ResNet-18 training step.
// Channels-last: the taps of one output pixel in row-major order, each a vector over the C channels.
inline void maxpool2d_forward_nhwc(const Tensor<float>& x, Tensor<float>& y, Tensor<int32_t>& indices,
                                   const PoolParams& p) {
  check_pool_shapes("max_pool2d", x, y, p);
  if (indices.defined()) contract::maxpool_indices("max_pool2d", y, indices);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), OH = y.dim(2), OW = y.dim(3);
  const float* px = x.data();
  float* py = y.data();
  int32_t* pi = indices.defined() ? indices.data() : nullptr;
  parallel_for(N * OH, 1, [&](int64_t b, int64_t e) {
    std::vector<int32_t> arg(static_cast<size_t>(C));
    for (int64_t row = b; row < e; ++row) {
      const int64_t n = row / OH, oh = row % OH;
      for (int64_t ow = 0; ow < OW; ++ow) {
        float* best = py + ((n * OH + oh) * OW + ow) * C;
        int32_t* a = arg.data();
        for (int64_t c = 0; c < C; ++c) {
          best[c] = -std::numeric_limits<float>::infinity();
          a[c] = -1;
        }
        for (int64_t i = 0; i < p.kernel_h; ++i) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i;
          if (ih < 0 || ih >= H) continue;
          for (int64_t j = 0; j < p.kernel_w; ++j) {
            const int64_t iw = ow * p.stride_w - p.pad_w + j;
            if (iw < 0 || iw >= W) continue;
            const float* v = px + ((n * H + ih) * W + iw) * C;
            const int32_t tap = static_cast<int32_t>(ih * W + iw);
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const bool take = v[c] > best[c] || a[c] < 0;
              best[c] = take ? v[c] : best[c];
              a[c] = take ? tap : a[c];
            }
          }
        }
        if (pi) std::copy(a, a + C, pi + ((n * OH + oh) * OW + ow) * C);
      }
    }
  });
}

inline void maxpool2d_forward_fast(const Tensor<float>& x, Tensor<float>& y, Tensor<int32_t>& indices,
                                   const PoolParams& p) {
  if (channels_last(x)) return maxpool2d_forward_nhwc(x, y, indices, p);
#if defined(__AVX512F__)
  check_pool_shapes("max_pool2d", x, y, p);
  if (indices.defined()) contract::maxpool_indices("max_pool2d", y, indices);
  const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3), OH = y.dim(2), OW = y.dim(3);
  const float* px = x.data();
  float* py = y.data();
  int32_t* pi = indices.defined() ? indices.data() : nullptr;
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i stride = _mm512_set1_epi32(static_cast<int32_t>(p.stride_w));
  const __m512i width = _mm512_set1_epi32(static_cast<int32_t>(W)), zero = _mm512_setzero_si512();
  const __m512i none = _mm512_set1_epi32(-1);
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  parallel_for(NC * OH, 8, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t nc = row / OH, oh = row % OH;
      const float* xc = px + nc * H * W;
      for (int64_t ow0 = 0; ow0 < OW; ow0 += 16) {
        const __mmask16 live = static_cast<__mmask16>(OW - ow0 >= 16 ? 0xFFFF : (1u << (OW - ow0)) - 1u);
        const __m512i iw0 = _mm512_sub_epi32(
            _mm512_mullo_epi32(_mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(ow0)), lane), stride),
            _mm512_set1_epi32(static_cast<int32_t>(p.pad_w)));
        __m512 best = neg_inf;
        __m512i arg = none;
        for (int64_t i = 0; i < p.kernel_h; ++i) {
          const int64_t ih = oh * p.stride_h - p.pad_h + i;
          if (ih < 0 || ih >= H) continue;
          const float* xr = xc + ih * W;
          const __m512i base = _mm512_set1_epi32(static_cast<int32_t>(ih * W));
          for (int64_t j = 0; j < p.kernel_w; ++j) {
            const __m512i iw = _mm512_add_epi32(iw0, _mm512_set1_epi32(static_cast<int32_t>(j)));
            const __mmask16 valid =
                _mm512_mask_cmpge_epi32_mask(live, iw, zero) & _mm512_cmplt_epi32_mask(iw, width);
            const __m512 v = _mm512_mask_i32gather_ps(neg_inf, valid, iw, xr, 4);
            const __mmask16 take =
                valid & (_mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmplt_epi32_mask(arg, zero));
            best = _mm512_mask_mov_ps(best, take, v);
            arg = _mm512_mask_mov_epi32(arg, take, _mm512_add_epi32(base, iw));
          }
        }
        _mm512_mask_storeu_ps(py + row * OW + ow0, live, best);
        if (pi) _mm512_mask_storeu_epi32(pi + row * OW + ow0, live, arg);
      }
    }
  });
#else
  maxpool2d_forward_reference(x, y, indices, p);
#endif
}

template <typename T>
void maxpool2d_forward(const Tensor<T>& x, Tensor<T>& y, Tensor<int32_t>& indices, const PoolParams& p) {
  if constexpr (std::is_same<T, float>::value) {
    maxpool2d_forward_fast(x, y, indices, p);
  } else if constexpr (std::is_same<T, bf16_t>::value) {
    check_pool_shapes("max_pool2d", x, y, p);
    Tensor<float> yf = bf16::float_like(y);
    maxpool2d_forward_fast(bf16::to_float(x), yf, indices, p);
    bf16::round_into(yf, y);  // exact: the maximum of bfloat16 values is one of them
  } else {
    maxpool2d_forward_reference(x, y, indices, p);
  }
}

template <typename T>
void maxpool2d_backward(const Tensor<T>& dy, const Tensor<int32_t>& indices, Tensor<T>& dx, bool accumulate) {
  contract::maxpool_backward("max_pool2d_backward", dy, indices, dx);
  if constexpr (std::is_same<T, bf16_t>::value) {
    // Overlapping windows add several gradients into one input: summed in float, rounded once.
    Tensor<float> dxf = accumulate ? bf16::to_float(dx) : bf16::float_like(dx);
    maxpool2d_backward(bf16::to_float(dy), indices, dxf, accumulate);
    bf16::round_into(dxf, dx);
  } else {
    const int64_t C = dx.dim(1), NC = dx.dim(0) * C, W = dx.dim(3), OH = dy.dim(2), OW = dy.dim(3);
    if (!accumulate) dx.zero_();
    const T* pdy = dy.data();
    const int32_t* pi = indices.data();
    T* pdx = dx.data();
    const Strides4 sdy(dy), sdx(dx);
    // Each (n, c) writes only its own plane's elements, in either format: no races.
    parallel_for(NC, 1, [&](int64_t b, int64_t e) {
      for (int64_t nc = b; nc < e; ++nc) {
        const int64_t n = nc / C, c = nc % C;
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t o = sdy.at(n, c, oh, ow), idx = pi[o];
            pdx[sdx.at(n, c, idx / W, idx % W)] += pdy[o];
          }
      }
    });
  }
}

// The input window of output (oh, ow) clipped to the image, and the divisor PyTorch uses: the window
// clipped to the padded image when padding counts, else the clipped window.
struct AvgWindow {
  int64_t hs, he, ws, we, divisor;
  AvgWindow(int64_t oh, int64_t ow, int64_t H, int64_t W, const PoolParams& p) {
    const int64_t h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    const int64_t h1 = std::min(h0 + p.kernel_h, H + p.pad_h), w1 = std::min(w0 + p.kernel_w, W + p.pad_w);
    hs = std::max<int64_t>(h0, 0);
    ws = std::max<int64_t>(w0, 0);
    he = std::min(h1, H);
    we = std::min(w1, W);
    divisor = p.count_include_pad ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);
  }
};

template <typename T>
void avgpool2d_forward(const Tensor<T>& x, Tensor<T>& y, const PoolParams& p) {
  check_pool_shapes("avg_pool2d", x, y, p);
  if constexpr (std::is_same<T, bf16_t>::value) {
    Tensor<float> yf = bf16::float_like(y);
    avgpool2d_forward(bf16::to_float(x), yf, p);
    bf16::round_into(yf, y);
    return;
  }
  const int64_t C = x.dim(1), NC = x.dim(0) * C, H = x.dim(2), W = x.dim(3), OH = y.dim(2), OW = y.dim(3);
  const T* px = x.data();
  T* py = y.data();
  const Strides4 sx(x), sy(y);
  parallel_for(NC, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const AvgWindow win(oh, ow, H, W, p);
          const int64_t hs = win.hs, he = win.he, ws = win.ws, we = win.we, divisor = win.divisor;
          double acc = 0.0;
          for (int64_t ih = hs; ih < he; ++ih)
            for (int64_t iw = ws; iw < we; ++iw)
              acc += static_cast<double>(px[sx.at(nc / C, nc % C, ih, iw)]);
          py[sy.at(nc / C, nc % C, oh, ow)] = static_cast<T>(acc / static_cast<double>(divisor));
        }
  });
}

template <typename T>
void avgpool2d_backward(const Tensor<T>& dy, Tensor<T>& dx, const PoolParams& p, bool accumulate) {
  check_pool_shapes("avg_pool2d_backward", dx, dy, p);
  if constexpr (std::is_same<T, bf16_t>::value) {
    Tensor<float> dxf = accumulate ? bf16::to_float(dx) : bf16::float_like(dx);
    avgpool2d_backward(bf16::to_float(dy), dxf, p, accumulate);
    bf16::round_into(dxf, dx);
    return;
  }
  const int64_t C = dx.dim(1), NC = dx.dim(0) * C, H = dx.dim(2), W = dx.dim(3), OH = dy.dim(2),
                OW = dy.dim(3);
  if (!accumulate) dx.zero_();
  const T* pdy = dy.data();
  T* pdx = dx.data();
  const Strides4 sdx(dx), sdy(dy);
  parallel_for(NC, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const AvgWindow win(oh, ow, H, W, p);
          const int64_t hs = win.hs, he = win.he, ws = win.ws, we = win.we, divisor = win.divisor;
          const T g = static_cast<T>(static_cast<double>(pdy[sdy.at(nc / C, nc % C, oh, ow)]) /
                                     static_cast<double>(divisor));
          for (int64_t ih = hs; ih < he; ++ih)
            for (int64_t iw = ws; iw < we; ++iw) {
              T& o = pdx[sdx.at(nc / C, nc % C, ih, iw)];
              o = static_cast<T>(static_cast<double>(o) + static_cast<double>(g));
            }
        }
  });
}

template <typename T>
void global_avgpool_forward(const Tensor<T>& x, Tensor<T>& y) {
  contract::global_pool("global_avg_pool", x, y, x);
  const int64_t NC = x.dim(0) * x.dim(1), HW = x.dim(2) * x.dim(3);
  const T* px = x.data();
  T* py = y.data();
  if (channels_last(x)) {
    // Per image, H * W rows of C channels: a running sum per channel (float for float and bfloat16,
    // double otherwise), vectorised over the channels.
    using A = std::conditional_t<std::is_same<T, double>::value, double, float>;
    const int64_t C = x.dim(1);
    parallel_for(x.dim(0), 1, [&](int64_t b, int64_t e) {
      std::vector<A> acc(static_cast<size_t>(C));
      for (int64_t n = b; n < e; ++n) {
        std::fill(acc.begin(), acc.end(), A(0));
        A* a = acc.data();
        for (int64_t i = 0; i < HW; ++i) {
          const T* row = px + (n * HW + i) * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) a[c] += static_cast<A>(row[c]);
        }
        for (int64_t c = 0; c < C; ++c) py[n * C + c] = static_cast<T>(a[c] / static_cast<A>(HW));
      }
    });
    return;
  }
  parallel_for(NC, 64, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      double acc = 0.0;
      for (int64_t i = 0; i < HW; ++i) acc += static_cast<double>(px[nc * HW + i]);
      py[nc] = static_cast<T>(acc / static_cast<double>(HW));
    }
  });
}

template <typename T>
void global_avgpool_backward(const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  contract::global_pool("global_avg_pool_backward", dx, dy, dy);
  const int64_t NC = dx.dim(0) * dx.dim(1), HW = dx.dim(2) * dx.dim(3);
  const T* pdy = dy.data();
  T* pdx = dx.data();
  if (channels_last(dx)) {
    const int64_t C = dx.dim(1);
    parallel_for(dx.dim(0) * HW, 64, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* g = pdy + (r / HW) * C;
        T* out = pdx + r * C;
        for (int64_t c = 0; c < C; ++c) {
          const double v = static_cast<double>(g[c]) / static_cast<double>(HW);
          out[c] = static_cast<T>(accumulate ? static_cast<double>(out[c]) + v : v);
        }
      }
    });
    return;
  }
  parallel_for(NC, 64, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const T g = static_cast<T>(static_cast<double>(pdy[nc]) / static_cast<double>(HW));
      for (int64_t i = 0; i < HW; ++i)
        pdx[nc * HW + i] =
            accumulate ? static_cast<T>(static_cast<double>(pdx[nc * HW + i]) + static_cast<double>(g)) : g;
    }
  });
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
