// 2-D convolution on the CPU, NCHW, weights [Cout, Cin, KH, KW], no dilation or groups.
//
// Two paths with one signature: a direct loop (any T; the reference for double and for tests) and, for
// float, im2col + BLAS GEMM, where a 1x1 stride-1 unpadded convolution is a GEMM on the input itself.
#pragma once

#include <cstring>

#include "resnet/backend/cpu/blas.hpp"
#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/cpu/onednn_conv.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
namespace cpu {

inline void check_conv_shapes(const char* op, const TensorBase& x, const TensorBase& w, const TensorBase& y,
                              const ConvParams& p) {
  check_rank(op, x, 4, "input");
  check_rank(op, w, 4, "weight");
  check_rank(op, y, 4, "output");
  RESNET_CHECK(x.dim(1) == w.dim(1), op, ": input has ", x.dim(1), " channels but the weight expects ",
               w.dim(1), " (input ", x.shape(), ", weight ", w.shape(), ")");
  Shape expect{x.dim(0), w.dim(0), p.out_h(x.dim(2), w.dim(2)), p.out_w(x.dim(3), w.dim(3))};
  RESNET_CHECK(y.shape() == expect, op, ": output shape ", y.shape(), " does not match ", expect,
               " for input ", x.shape(), " and weight ", w.shape());
}

// ---------------------------------------------------------------- reference (direct loops)

template <typename T>
void conv2d_forward_reference(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y,
                              const ConvParams& p) {
  check_conv_shapes("conv2d", x, w, y, p);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t K = w.dim(0), KH = w.dim(2), KW = w.dim(3), OH = y.dim(2), OW = y.dim(3);
  const T* px = x.data();
  const T* pw = w.data();
  T* py = y.data();
  parallel_for(N * K, 1, [&](int64_t b, int64_t e) {
    for (int64_t nk = b; nk < e; ++nk) {
      int64_t n = nk / K, k = nk % K;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          T acc = bias ? bias->data()[k] : T(0);
          for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < KH; ++i) {
              int64_t ih = oh * p.stride_h - p.pad_h + i;
              if (ih < 0 || ih >= H) continue;
              for (int64_t j = 0; j < KW; ++j) {
                int64_t iw = ow * p.stride_w - p.pad_w + j;
                if (iw < 0 || iw >= W) continue;
                acc += px[((n * C + c) * H + ih) * W + iw] * pw[((k * C + c) * KH + i) * KW + j];
              }
            }
          py[((n * K + k) * OH + oh) * OW + ow] = acc;
        }
    }
  });
}

template <typename T>
void conv2d_backward_data_reference(const Tensor<T>& dy, const Tensor<T>& w, Tensor<T>& dx,
                                    const ConvParams& p, bool accumulate) {
  check_conv_shapes("conv2d_backward_data", dx, w, dy, p);
  const int64_t N = dx.dim(0), C = dx.dim(1), H = dx.dim(2), W = dx.dim(3);
  const int64_t K = w.dim(0), KH = w.dim(2), KW = w.dim(3), OH = dy.dim(2), OW = dy.dim(3);
  const T* pdy = dy.data();
  const T* pw = w.data();
  T* pdx = dx.data();
  // Gather form: each dx element sums the outputs whose window covers it (no write races).
  parallel_for(N * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      int64_t n = nc / C, c = nc % C;
      for (int64_t ih = 0; ih < H; ++ih)
        for (int64_t iw = 0; iw < W; ++iw) {
          T acc = T(0);
          for (int64_t i = 0; i < KH; ++i) {
            int64_t th = ih + p.pad_h - i;
            if (th < 0 || th % p.stride_h) continue;
            int64_t oh = th / p.stride_h;
            if (oh >= OH) continue;
            for (int64_t j = 0; j < KW; ++j) {
              int64_t tw = iw + p.pad_w - j;
              if (tw < 0 || tw % p.stride_w) continue;
              int64_t ow = tw / p.stride_w;
              if (ow >= OW) continue;
              for (int64_t k = 0; k < K; ++k)
                acc += pdy[((n * K + k) * OH + oh) * OW + ow] * pw[((k * C + c) * KH + i) * KW + j];
            }
          }
          T& out = pdx[((n * C + c) * H + ih) * W + iw];
          out = accumulate ? out + acc : acc;
        }
    }
  });
}

template <typename T>
void conv2d_backward_weight_reference(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dw,
                                      const ConvParams& p, bool accumulate) {
  check_conv_shapes("conv2d_backward_weight", x, dw, dy, p);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t K = dw.dim(0), KH = dw.dim(2), KW = dw.dim(3), OH = dy.dim(2), OW = dy.dim(3);
  const T* px = x.data();
  const T* pdy = dy.data();
  T* pdw = dw.data();
  parallel_for(K * C, 1, [&](int64_t b, int64_t e) {
    for (int64_t kc = b; kc < e; ++kc) {
      int64_t k = kc / C, c = kc % C;
      for (int64_t i = 0; i < KH; ++i)
        for (int64_t j = 0; j < KW; ++j) {
          T acc = T(0);
          for (int64_t n = 0; n < N; ++n)
            for (int64_t oh = 0; oh < OH; ++oh) {
              int64_t ih = oh * p.stride_h - p.pad_h + i;
              if (ih < 0 || ih >= H) continue;
              for (int64_t ow = 0; ow < OW; ++ow) {
                int64_t iw = ow * p.stride_w - p.pad_w + j;
                if (iw < 0 || iw >= W) continue;
                acc += pdy[((n * K + k) * OH + oh) * OW + ow] * px[((n * C + c) * H + ih) * W + iw];
              }
            }
          T& out = pdw[((k * C + c) * KH + i) * KW + j];
          out = accumulate ? out + acc : acc;
        }
    }
  });
}

// db[k] = sum over n, h, w of dy[n, k, h, w]
template <typename T>
void conv2d_backward_bias(const Tensor<T>& dy, Tensor<T>& db, bool accumulate) {
  check_rank("conv2d_backward_bias", dy, 4, "output gradient");
  RESNET_CHECK(db.numel() == dy.dim(1), "conv2d_backward_bias: bias has ", db.numel(),
               " elements, gradient has ", dy.dim(1), " channels");
  const int64_t N = dy.dim(0), K = dy.dim(1), HW = dy.dim(2) * dy.dim(3);
  const T* pdy = dy.data();
  T* pdb = db.data();
  for (int64_t k = 0; k < K; ++k) {
    double acc = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = pdy + (n * K + k) * HW;
      for (int64_t i = 0; i < HW; ++i) acc += static_cast<double>(row[i]);
    }
    pdb[k] = static_cast<T>(accumulate ? static_cast<double>(pdb[k]) + acc : acc);
  }
}

// ---------------------------------------------------------------- float: im2col + GEMM

namespace detail {

// col[(c*KH + i)*KW + j, oh*OW + ow] = x[c, oh*s - p + i, ow*s - p + j] (0 outside)
inline void im2col(const float* x, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                   const ConvParams& p, int64_t OH, int64_t OW, float* col) {
  parallel_for(C * KH * KW, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t c = r / (KH * KW), i = (r / KW) % KH, j = r % KW;
      const float* xc = x + c * H * W;
      float* out = col + r * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        int64_t ih = oh * p.stride_h - p.pad_h + i;
        float* o = out + oh * OW;
        if (ih < 0 || ih >= H) {
          std::memset(o, 0, sizeof(float) * static_cast<size_t>(OW));
          continue;
        }
        const float* xr = xc + ih * W;
        if (p.stride_w == 1) {
          // valid ow range: 0 <= ow - pad + j < W
          int64_t lo = std::max<int64_t>(0, p.pad_w - j), hi = std::min<int64_t>(OW, W + p.pad_w - j);
          for (int64_t ow = 0; ow < lo; ++ow) o[ow] = 0.f;
          if (hi > lo)
            std::memcpy(o + lo, xr + lo - p.pad_w + j, sizeof(float) * static_cast<size_t>(hi - lo));
          for (int64_t ow = std::max(hi, lo); ow < OW; ++ow) o[ow] = 0.f;
        } else {
          for (int64_t ow = 0; ow < OW; ++ow) {
            int64_t iw = ow * p.stride_w - p.pad_w + j;
            o[ow] = (iw >= 0 && iw < W) ? xr[iw] : 0.f;
          }
        }
      }
    }
  });
}

// x[c, ih, iw] += col[...]: the adjoint of im2col. Parallel over channels, which write disjoint planes.
inline void col2im_add(const float* col, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                       const ConvParams& p, int64_t OH, int64_t OW, float* x) {
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t i = 0; i < KH; ++i)
        for (int64_t j = 0; j < KW; ++j) {
          const float* src = col + ((c * KH + i) * KW + j) * OH * OW;
          float* xc = x + c * H * W;
          for (int64_t oh = 0; oh < OH; ++oh) {
            int64_t ih = oh * p.stride_h - p.pad_h + i;
            if (ih < 0 || ih >= H) continue;
            float* xr = xc + ih * W;
            const float* s = src + oh * OW;
            for (int64_t ow = 0; ow < OW; ++ow) {
              int64_t iw = ow * p.stride_w - p.pad_w + j;
              if (iw >= 0 && iw < W) xr[iw] += s[ow];
            }
          }
        }
  });
}

inline bool is_pointwise(int64_t KH, int64_t KW, const ConvParams& p) {
  return KH == 1 && KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

}  // namespace detail

inline void conv2d_forward_fast(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* bias,
                                Tensor<float>& y, const ConvParams& p) {
  check_conv_shapes("conv2d", x, w, y, p);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t K = w.dim(0), KH = w.dim(2), KW = w.dim(3), OH = y.dim(2), OW = y.dim(3);
  const int64_t R = C * KH * KW, P = OH * OW;
  const bool pointwise = detail::is_pointwise(KH, KW, p);
  Tensor<float> col = pointwise ? Tensor<float>() : Tensor<float>::empty({R, P});
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x.data() + n * C * H * W;
    const float* b = xn;
    if (!pointwise) {
      detail::im2col(xn, C, H, W, KH, KW, p, OH, OW, col.data());
      b = col.data();
    }
    float* yn = y.data() + n * K * P;
    gemm(false, false, K, P, R, 1.f, w.data(), R, b, P, 0.f, yn, P);
    if (bias) {
      const float* pb = bias->data();
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < P; ++i) yn[k * P + i] += pb[k];
    }
  }
}

inline void conv2d_backward_data_fast(const Tensor<float>& dy, const Tensor<float>& w, Tensor<float>& dx,
                                      const ConvParams& p, bool accumulate) {
  check_conv_shapes("conv2d_backward_data", dx, w, dy, p);
  const int64_t N = dx.dim(0), C = dx.dim(1), H = dx.dim(2), W = dx.dim(3);
  const int64_t K = w.dim(0), KH = w.dim(2), KW = w.dim(3), OH = dy.dim(2), OW = dy.dim(3);
  const int64_t R = C * KH * KW, P = OH * OW;
  const bool pointwise = detail::is_pointwise(KH, KW, p);
  if (!accumulate && !pointwise) dx.zero_();
  Tensor<float> col = pointwise ? Tensor<float>() : Tensor<float>::empty({R, P});
  for (int64_t n = 0; n < N; ++n) {
    const float* dyn = dy.data() + n * K * P;
    float* dxn = dx.data() + n * C * H * W;
    if (pointwise) {
      gemm(true, false, C, P, K, 1.f, w.data(), C, dyn, P, accumulate ? 1.f : 0.f, dxn, P);
    } else {
      gemm(true, false, R, P, K, 1.f, w.data(), R, dyn, P, 0.f, col.data(), P);
      detail::col2im_add(col.data(), C, H, W, KH, KW, p, OH, OW, dxn);
    }
  }
}

inline void conv2d_backward_weight_fast(const Tensor<float>& x, const Tensor<float>& dy, Tensor<float>& dw,
                                        const ConvParams& p, bool accumulate) {
  check_conv_shapes("conv2d_backward_weight", x, dw, dy, p);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t K = dw.dim(0), KH = dw.dim(2), KW = dw.dim(3), OH = dy.dim(2), OW = dy.dim(3);
  const int64_t R = C * KH * KW, P = OH * OW;
  const bool pointwise = detail::is_pointwise(KH, KW, p);
  Tensor<float> col = pointwise ? Tensor<float>() : Tensor<float>::empty({R, P});
  for (int64_t n = 0; n < N; ++n) {
    const float* xn = x.data() + n * C * H * W;
    const float* b = xn;
    if (!pointwise) {
      detail::im2col(xn, C, H, W, KH, KW, p, OH, OW, col.data());
      b = col.data();
    }
    const float* dyn = dy.data() + n * K * P;
    float beta = (accumulate || n > 0) ? 1.f : 0.f;
    gemm(false, true, K, R, P, 1.f, dyn, P, b, P, beta, dw.data(), R);
  }
}

// ---------------------------------------------------------------- dispatch: float fast, others reference

// Which float32 implementation conv2d_* use: oneDNN when the build has it, else im2col + BLAS.
enum class ConvImpl { Gemm, OneDnn };
inline bool onednn_available() {
#if defined(RESNET_HAVE_DNNL)
  return true;
#else
  return false;
#endif
}
inline ConvImpl& float_conv_impl() {
  static ConvImpl impl = onednn_available() ? ConvImpl::OneDnn : ConvImpl::Gemm;
  return impl;
}
// Tests switch implementations to check each against the reference; RESNET_CHECKs a missing oneDNN.
inline void set_float_conv_impl(ConvImpl impl) {
  RESNET_CHECK(impl != ConvImpl::OneDnn || onednn_available(),
               "conv: oneDNN was not found at build time (install libdnnl-dev and reconfigure)");
  float_conv_impl() = impl;
}

inline void conv2d_forward_float(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* bias,
                                 Tensor<float>& y, const ConvParams& p) {
#if defined(RESNET_HAVE_DNNL)
  if (float_conv_impl() == ConvImpl::OneDnn) {
    check_conv_shapes("conv2d", x, w, y, p);
    return onednn::conv2d_forward(x, w, bias, y, p);
  }
#endif
  conv2d_forward_fast(x, w, bias, y, p);
}
inline void conv2d_backward_data_float(const Tensor<float>& dy, const Tensor<float>& w, Tensor<float>& dx,
                                       const ConvParams& p, bool accumulate) {
#if defined(RESNET_HAVE_DNNL)
  if (float_conv_impl() == ConvImpl::OneDnn) {
    check_conv_shapes("conv2d_backward_data", dx, w, dy, p);
    return onednn::conv2d_backward_data(dy, w, dx, p, accumulate);
  }
#endif
  conv2d_backward_data_fast(dy, w, dx, p, accumulate);
}
inline void conv2d_backward_weight_float(const Tensor<float>& x, const Tensor<float>& dy, Tensor<float>& dw,
                                         const ConvParams& p, bool accumulate) {
#if defined(RESNET_HAVE_DNNL)
  if (float_conv_impl() == ConvImpl::OneDnn) {
    check_conv_shapes("conv2d_backward_weight", x, dw, dy, p);
    return onednn::conv2d_backward_weight(x, dy, dw, p, accumulate);
  }
#endif
  conv2d_backward_weight_fast(x, dy, dw, p, accumulate);
}

template <typename T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y,
                    const ConvParams& p) {
  if constexpr (std::is_same<T, float>::value)
    conv2d_forward_float(x, w, bias, y, p);
  else
    conv2d_forward_reference(x, w, bias, y, p);
}
template <typename T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, Tensor<T>& dx, const ConvParams& p,
                          bool accumulate) {
  if constexpr (std::is_same<T, float>::value)
    conv2d_backward_data_float(dy, w, dx, p, accumulate);
  else
    conv2d_backward_data_reference(dy, w, dx, p, accumulate);
}
template <typename T>
void conv2d_backward_weight(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dw, const ConvParams& p,
                            bool accumulate) {
  if constexpr (std::is_same<T, float>::value)
    conv2d_backward_weight_float(x, dy, dw, p, accumulate);
  else
    conv2d_backward_weight_reference(x, dy, dw, p, accumulate);
}

}  // namespace cpu
}  // namespace resnet
