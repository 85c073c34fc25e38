// Pooling on the CPU, NCHW: max pooling (with the argmax saved for the backward), average pooling and
// global average pooling ([N, C, H, W] -> [N, C]).
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "resnet/backend/contract/pool.hpp"
#include "resnet/backend/cpu/elementwise.hpp"
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
  const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3), OH = y.dim(2), OW = y.dim(3);
  const T* px = x.data();
  T* py = y.data();
  int32_t* pi = indices.defined() ? indices.data() : nullptr;
  parallel_for(NC, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const T* xc = px + nc * H * W;
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
              T v = xc[ih * W + iw];
              if (v > best || arg < 0) {
                best = v;
                arg = ih * W + iw;
              }
            }
          }
          const int64_t o = (nc * OH + oh) * OW + ow;
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
inline void maxpool2d_forward_fast(const Tensor<float>& x, Tensor<float>& y, Tensor<int32_t>& indices,
                                   const PoolParams& p) {
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
  if constexpr (std::is_same<T, float>::value)
    maxpool2d_forward_fast(x, y, indices, p);
  else
    maxpool2d_forward_reference(x, y, indices, p);
}

template <typename T>
void maxpool2d_backward(const Tensor<T>& dy, const Tensor<int32_t>& indices, Tensor<T>& dx, bool accumulate) {
  contract::maxpool_backward("max_pool2d_backward", dy, indices, dx);
  const int64_t NC = dx.dim(0) * dx.dim(1), HW = dx.dim(2) * dx.dim(3), OHW = dy.dim(2) * dy.dim(3);
  if (!accumulate) dx.zero_();
  const T* pdy = dy.data();
  const int32_t* pi = indices.data();
  T* pdx = dx.data();
  parallel_for(NC, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc)
      for (int64_t o = 0; o < OHW; ++o) pdx[nc * HW + pi[nc * OHW + o]] += pdy[nc * OHW + o];
  });
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
  const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3), OH = y.dim(2), OW = y.dim(3);
  const T* px = x.data();
  T* py = y.data();
  parallel_for(NC, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const AvgWindow win(oh, ow, H, W, p);
          const int64_t hs = win.hs, he = win.he, ws = win.ws, we = win.we, divisor = win.divisor;
          double acc = 0.0;
          for (int64_t ih = hs; ih < he; ++ih)
            for (int64_t iw = ws; iw < we; ++iw) acc += static_cast<double>(px[(nc * H + ih) * W + iw]);
          py[(nc * OH + oh) * OW + ow] = static_cast<T>(acc / static_cast<double>(divisor));
        }
  });
}

template <typename T>
void avgpool2d_backward(const Tensor<T>& dy, Tensor<T>& dx, const PoolParams& p, bool accumulate) {
  check_pool_shapes("avg_pool2d_backward", dx, dy, p);
  const int64_t NC = dx.dim(0) * dx.dim(1), H = dx.dim(2), W = dx.dim(3), OH = dy.dim(2), OW = dy.dim(3);
  if (!accumulate) dx.zero_();
  const T* pdy = dy.data();
  T* pdx = dx.data();
  parallel_for(NC, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const AvgWindow win(oh, ow, H, W, p);
          const int64_t hs = win.hs, he = win.he, ws = win.ws, we = win.we, divisor = win.divisor;
          const T g = static_cast<T>(static_cast<double>(pdy[(nc * OH + oh) * OW + ow]) /
                                     static_cast<double>(divisor));
          for (int64_t ih = hs; ih < he; ++ih)
            for (int64_t iw = ws; iw < we; ++iw) pdx[(nc * H + ih) * W + iw] += g;
        }
  });
}

template <typename T>
void global_avgpool_forward(const Tensor<T>& x, Tensor<T>& y) {
  contract::global_pool("global_avg_pool", x, y, x);
  const int64_t NC = x.dim(0) * x.dim(1), HW = x.dim(2) * x.dim(3);
  const T* px = x.data();
  T* py = y.data();
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
  parallel_for(NC, 64, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const T g = static_cast<T>(static_cast<double>(pdy[nc]) / static_cast<double>(HW));
      for (int64_t i = 0; i < HW; ++i) pdx[nc * HW + i] = accumulate ? pdx[nc * HW + i] + g : g;
    }
  });
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
