// 2-D convolution on the CPU, NCHW or channels-last activations, weights [Cout, Cin, KH, KW], no dilation or
// groups.
//
// Three paths with one signature: a direct loop through strides (any T, either format; the reference for
// double and for tests), oneDNN (float and bfloat16, NCHW or NHWC memory directly) and, for float without
// oneDNN, im2col + BLAS GEMM (NCHW only: channels-last tensors go through row-major copies).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"

#include "resnet/backend/contract/conv.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "resnet/backend/cpu/blas.hpp"
#include "resnet/backend/cpu/bf16.hpp"
#include "resnet/backend/cpu/cpu_peak.hpp"
#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/cpu/layout.hpp"
#include "resnet/backend/cpu/onednn_conv.hpp"
#include "resnet/backend/params.hpp"
#include "resnet/core/config.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

// The convolution's contract (backend/contract/conv.hpp), shared with the CUDA backend.
inline void check_conv_shapes(const char* op, const TensorBase& x, const TensorBase& w, const TensorBase& y,
                              const ConvParams& p, const TensorBase* bias = nullptr) {
  contract::conv2d(op, x, w, y, p, bias);
}

// ---------------------------------------------------------------- reference (direct loops)

template <typename T>
void conv2d_forward_reference(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y,
                              const ConvParams& p) {
  check_conv_shapes("conv2d", x, w, y, p, bias);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t K = w.dim(0), KH = w.dim(2), KW = w.dim(3), OH = y.dim(2), OW = y.dim(3);
  const T* px = x.data();
  const T* pw = w.data();
  T* py = y.data();
  const Strides4 sx(x), sy(y);
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
                acc += px[sx.at(n, c, ih, iw)] * pw[((k * C + c) * KH + i) * KW + j];
              }
            }
          py[sy.at(n, k, oh, ow)] = acc;
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
  const Strides4 sdy(dy), sdx(dx);
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
                acc += pdy[sdy.at(n, k, oh, ow)] * pw[((k * C + c) * KH + i) * KW + j];
            }
          }
          T& out = pdx[sdx.at(n, c, ih, iw)];
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
  const Strides4 sx(x), sdy(dy);
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
                acc += pdy[sdy.at(n, k, oh, ow)] * px[sx.at(n, c, ih, iw)];
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
  contract::conv2d_bias_grad("conv2d_backward_bias", dy, db);
  const int64_t N = dy.dim(0), K = dy.dim(1), HW = dy.dim(2) * dy.dim(3);
  const T* pdy = dy.data();
  T* pdb = db.data();
  if (channels_last(dy)) {
    // N * H * W rows of K channels: one pass, a running sum per channel.
    std::vector<double> acc(static_cast<size_t>(K), 0.0);
    for (int64_t r = 0; r < N * HW; ++r)
      for (int64_t k = 0; k < K; ++k) acc[static_cast<size_t>(k)] += static_cast<double>(pdy[r * K + k]);
    for (int64_t k = 0; k < K; ++k) {
      const double a = acc[static_cast<size_t>(k)];
      pdb[k] = static_cast<T>(accumulate ? static_cast<double>(pdb[k]) + a : a);
    }
    return;
  }
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

namespace detail {

// How many images one GEMM covers: enough that its pixel dimension (G * OH * OW) keeps the BLAS kernels busy
// at late stages (7x7 or 4x4 outputs), while the im2col buffer stays within a few tens of MB.
inline int64_t conv_group(int64_t N, int64_t R, int64_t P) {
  constexpr int64_t kTargetColumns = 2048, kMaxColBytes = int64_t(48) << 20;
  int64_t g = (kTargetColumns + P - 1) / P;
  g = std::min<int64_t>(g, std::max<int64_t>(1, kMaxColBytes / (R * P * int64_t(sizeof(float)))));
  return std::max<int64_t>(1, std::min(g, N));
}

// [G][K][P] (images of NCHW) <-> [K][G * P] (one matrix whose columns run over the group's pixels).
inline void gather_images(const float* src, int64_t G, int64_t K, int64_t P, float* dst) {
  parallel_for(G * K, 16, [&](int64_t b, int64_t e) {
    for (int64_t gk = b; gk < e; ++gk) {
      const int64_t g = gk / K, k = gk % K;
      std::memcpy(dst + (k * G + g) * P, src + gk * P, sizeof(float) * static_cast<size_t>(P));
    }
  });
}
inline void scatter_images(const float* src, int64_t G, int64_t K, int64_t P, float* dst, bool accumulate) {
  parallel_for(G * K, 16, [&](int64_t b, int64_t e) {
    for (int64_t gk = b; gk < e; ++gk) {
      const int64_t g = gk / K, k = gk % K;
      const float* s = src + (k * G + g) * P;
      float* d = dst + gk * P;
      if (accumulate) {
#pragma omp simd
        for (int64_t i = 0; i < P; ++i) d[i] += s[i];
      } else {
        std::memcpy(d, s, sizeof(float) * static_cast<size_t>(P));
      }
    }
  });
}

// The B operand of a group's GEMM, [R][G * P]: im2col of each image side by side, or the input itself for a
// pointwise convolution of one image.
inline const float* conv_columns(const float* x, int64_t G, int64_t C, int64_t H, int64_t W, int64_t KH,
                                 int64_t KW, const ConvParams& p, int64_t OH, int64_t OW, bool pointwise,
                                 float* col, float* one_image) {
  const int64_t R = C * KH * KW, P = OH * OW;
  if (pointwise) {
    if (G == 1) return x;
    gather_images(x, G, C, P, col);
    return col;
  }
  if (G == 1) {
    im2col(x, C, H, W, KH, KW, p, OH, OW, col);
    return col;
  }
  for (int64_t g = 0; g < G; ++g) {
    im2col(x + g * C * H * W, C, H, W, KH, KW, p, OH, OW, one_image);
    // Row r of this image's columns goes to row r, columns [g * P, (g + 1) * P) of the group's matrix.
    parallel_for(R, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        std::memcpy(col + (r * G + g) * P, one_image + r * P, sizeof(float) * static_cast<size_t>(P));
    });
  }
  return col;
}

}  // namespace detail

// im2col + GEMM, several images per GEMM (detail::conv_group): one BLAS call per group and layer, so late
// stages with few pixels per image still make GEMMs large enough to run near the BLAS's speed.
inline void conv2d_forward_fast(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* bias,
                                Tensor<float>& y, const ConvParams& p) {
  check_conv_shapes("conv2d", x, w, y, p, bias);
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t K = w.dim(0), KH = w.dim(2), KW = w.dim(3), OH = y.dim(2), OW = y.dim(3);
  const int64_t R = C * KH * KW, P = OH * OW;
  const bool pointwise = detail::is_pointwise(KH, KW, p);
  const int64_t G = detail::conv_group(N, R, P);
  const bool need_col = !(pointwise && G == 1);
  Tensor<float> col = need_col ? Tensor<float>::empty({R, G * P}) : Tensor<float>();
  Tensor<float> one = (!pointwise && G > 1) ? Tensor<float>::empty({R, P}) : Tensor<float>();
  Tensor<float> out = G > 1 ? Tensor<float>::empty({K, G * P}) : Tensor<float>();
  for (int64_t n0 = 0; n0 < N; n0 += G) {
    const int64_t g = std::min(G, N - n0);
    const float* b =
        detail::conv_columns(x.data() + n0 * C * H * W, g, C, H, W, KH, KW, p, OH, OW, pointwise,
                             need_col ? col.data() : nullptr, one.defined() ? one.data() : nullptr);
    float* yn = y.data() + n0 * K * P;
    // Columns are packed with stride g * P for a short last group; with G == 1 the output is y itself.
    gemm(false, false, K, g * P, R, 1.f, w.data(), R, b, g * P, 0.f, G > 1 ? out.data() : yn, g * P);
    if (G > 1) detail::scatter_images(out.data(), g, K, P, yn, false);
    if (bias) {
      const float* pb = bias->data();
      parallel_for(g * K, 16, [&](int64_t s, int64_t e) {
        for (int64_t gk = s; gk < e; ++gk)
          for (int64_t i = 0; i < P; ++i) yn[gk * P + i] += pb[gk % K];
      });
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
  const int64_t G = detail::conv_group(N, R, P);
  if (!accumulate && !pointwise) dx.zero_();
  Tensor<float> col = (pointwise && G == 1) ? Tensor<float>() : Tensor<float>::empty({R, G * P});
  Tensor<float> dyg = G > 1 ? Tensor<float>::empty({K, G * P}) : Tensor<float>();
  Tensor<float> one = (!pointwise && G > 1) ? Tensor<float>::empty({R, P}) : Tensor<float>();
  for (int64_t n0 = 0; n0 < N; n0 += G) {
    const int64_t g = std::min(G, N - n0);
    const float* dyn = dy.data() + n0 * K * P;
    float* dxn = dx.data() + n0 * C * H * W;
    if (G > 1) {
      detail::gather_images(dyn, g, K, P, dyg.data());
      dyn = dyg.data();
    }
    if (pointwise && G == 1) {
      gemm(true, false, C, P, K, 1.f, w.data(), C, dyn, P, accumulate ? 1.f : 0.f, dxn, P);
      continue;
    }
    gemm(true, false, R, g * P, K, 1.f, w.data(), R, dyn, g * P, 0.f, col.data(), g * P);
    if (pointwise) {
      detail::scatter_images(col.data(), g, C, P, dxn, accumulate);
      continue;
    }
    for (int64_t i = 0; i < g; ++i) {
      const float* src = col.data();
      if (g > 1) {
        parallel_for(R, 16, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r)
            std::memcpy(one.data() + r * P, col.data() + (r * g + i) * P,
                        sizeof(float) * static_cast<size_t>(P));
        });
        src = one.data();
      }
      detail::col2im_add(src, C, H, W, KH, KW, p, OH, OW, dxn + i * C * H * W);
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
  const int64_t G = detail::conv_group(N, R, P);
  const bool need_col = !(pointwise && G == 1);
  Tensor<float> col = need_col ? Tensor<float>::empty({R, G * P}) : Tensor<float>();
  Tensor<float> one = (!pointwise && G > 1) ? Tensor<float>::empty({R, P}) : Tensor<float>();
  Tensor<float> dyg = G > 1 ? Tensor<float>::empty({K, G * P}) : Tensor<float>();
  for (int64_t n0 = 0; n0 < N; n0 += G) {
    const int64_t g = std::min(G, N - n0);
    const float* b =
        detail::conv_columns(x.data() + n0 * C * H * W, g, C, H, W, KH, KW, p, OH, OW, pointwise,
                             need_col ? col.data() : nullptr, one.defined() ? one.data() : nullptr);
    const float* dyn = dy.data() + n0 * K * P;
    if (G > 1) {
      detail::gather_images(dyn, g, K, P, dyg.data());
      dyn = dyg.data();
    }
    const float beta = (accumulate || n0 > 0) ? 1.f : 0.f;
    gemm(false, true, K, R, g * P, 1.f, dyn, g * P, b, g * P, beta, dw.data(), R);
  }
}

// ---------------------------------------------------------------- dispatch: float and bfloat16 fast, others
// reference

// Which float32 implementation conv2d_* use: oneDNN when the build has it, else im2col + BLAS.
enum class ConvImpl { Gemm, OneDnn };
inline bool onednn_available() {
#if defined(RESNET_HAVE_DNNL)
  return true;
#else
  return false;
#endif
}
// The setting cpu_conv (RESNET_CPU_CONV=gemm, resnet::config().set_cpu_conv) forces im2col + BLAS, to compare
// the two in benchmarks; 'onednn' without oneDNN in the build is an error naming the variable.
inline ConvImpl float_conv_impl() {
  const Config& c = config();
  switch (c.cpu_conv()) {
    case CpuConv::Gemm:
      return ConvImpl::Gemm;
    case CpuConv::OneDnn:
      RESNET_CHECK(onednn_available(),
                   c.source(SettingId::CpuConv) == SettingSource::Environment ? "RESNET_CPU_CONV=onednn"
                                                                              : "cpu_conv=onednn",
                   ": oneDNN was not found at build time (install libdnnl-dev and reconfigure)");
      return ConvImpl::OneDnn;
    default:
      return onednn_available() ? ConvImpl::OneDnn : ConvImpl::Gemm;
  }
}
// Tests switch implementations to check each against the reference; RESNET_CHECKs a missing oneDNN. The
// choice is the setting cpu_conv, so config() reads it back.
inline void set_float_conv_impl(ConvImpl impl) {
  RESNET_CHECK(impl != ConvImpl::OneDnn || onednn_available(),
               "conv: oneDNN was not found at build time (install libdnnl-dev and reconfigure)");
  config().set_cpu_conv(impl == ConvImpl::OneDnn ? CpuConv::OneDnn : CpuConv::Gemm);
}

// How bfloat16 convolutions run: oneDNN's bfloat16 kernels (Native), or float32 convolutions on float
// copies, each output rounded back once (ViaFloat). Chosen by measurement (benchmarks/RESULTS.md, the two
// AVX-512-BF16 CPUs): where the CPU's bfloat16 dot product multiplies at half float32's rate (a Xeon without
// AMX: 0.47-0.49x), oneDNN 2.6's avx512_core_bf16 kernels made a ResNet-18 step 1.3x slower than ViaFloat;
// where it multiplies at twice the rate (an AMD EPYC Zen 4: 1.98x), they made it faster than ViaFloat. So
// Native is the default where oneDNN dispatches to AMX, or where cpu::peak::bf16_over_fp32() (measured once,
// about 10 ms) is at least kBf16NativeMinSpeedup. The setting cpu_conv_bf16 (RESNET_CPU_CONV_BF16=native or
// =float, resnet::config().set_cpu_conv_bf16) overrides (native needs oneDNN bfloat16 kernels on the CPU).
enum class Bf16Conv { Native, ViaFloat };
// At equal multiply rates Native still moves half the bytes and skips the float copies, so the bar is 1x.
constexpr double kBf16NativeMinSpeedup = 1.0;
inline bool bf16_native_available() {
#if defined(RESNET_HAVE_DNNL)
  return onednn_available() && onednn::bf16_native();
#else
  return false;
#endif
}
// The path and, for the note said when it is ViaFloat, why it was chosen.
struct Bf16ConvChoice {
  Bf16Conv impl = Bf16Conv::ViaFloat;
  std::string why;
};
inline Bf16ConvChoice choose_bf16_conv() {
  const Config& cfg = config();
  const CpuConvBf16 v = cfg.cpu_conv_bf16();
  // The reason names where the override came from: the variable, or code.
  const std::string who = cfg.source(SettingId::CpuConvBf16) == SettingSource::Environment
                              ? "RESNET_CPU_CONV_BF16"
                              : "cpu_conv_bf16";
  if (v == CpuConvBf16::Float) return {Bf16Conv::ViaFloat, who + "=float"};
  if (v == CpuConvBf16::Native) {
    RESNET_CHECK(bf16_native_available(), who,
                 "=native: this CPU has no oneDNN bfloat16 convolutions (they need avx512_core)");
    return {Bf16Conv::Native, who + "=native"};
  }
  if (!bf16_native_available())
    return {Bf16Conv::ViaFloat, "no oneDNN bfloat16 convolutions on this CPU (they need avx512_core)"};
#if defined(RESNET_HAVE_DNNL)
  if (float_conv_impl() != ConvImpl::OneDnn)
    return {Bf16Conv::ViaFloat, "float32 convolutions are set to the GEMM path (RESNET_CPU_CONV)"};
  if (onednn::has_amx()) return {Bf16Conv::Native, "oneDNN runs bfloat16 convolutions on AMX"};
#endif
  const double ratio = peak::bf16_over_fp32();
  char rate[160];
  std::snprintf(rate, sizeof rate,
                "this CPU's bfloat16 dot product multiplies %.2fx as fast as its float32 FMAs", ratio);
  if (ratio >= kBf16NativeMinSpeedup) return {Bf16Conv::Native, rate};
  return {Bf16Conv::ViaFloat,
          std::string(rate) +
              " and it has no AMX, so oneDNN's bfloat16 convolutions would be slower than float32 ones "
              "(benchmarks/RESULTS.md; RESNET_CPU_CONV_BF16=native uses them)"};
}
// The choice in effect, made again whenever a setting has changed since (config().version()): it follows
// cpu_conv_bf16 and, in 'auto', cpu_conv. Assigning to it (tests) holds until the next settings change.
inline Bf16ConvChoice& bf16_conv_choice() {
  static Bf16ConvChoice choice;
  static uint64_t made_at = ~uint64_t(0);
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const uint64_t now = config().version();
  if (now != made_at) {
    choice = choose_bf16_conv();
    made_at = now;
  }
  return choice;
}
inline Bf16Conv& bf16_conv_impl() { return bf16_conv_choice().impl; }
// The choice is the setting cpu_conv_bf16, so config() reads it back.
inline void set_bf16_conv_impl(Bf16Conv impl) {
  RESNET_CHECK(impl == Bf16Conv::ViaFloat || bf16_native_available(),
               "conv: this CPU has no oneDNN bfloat16 convolutions (they need avx512_core)");
  config().set_cpu_conv_bf16(impl == Bf16Conv::Native ? CpuConvBf16::Native : CpuConvBf16::Float);
}
// The path in words, with its reason: the first bfloat16 convolution says it once on stderr, and
// train_catsdogs puts it in its first log line. (A template only so that the compiled library can hold its
// one instantiation: api.hpp declares it.)
template <typename>
std::string describe_bf16_conv() {
  const Bf16ConvChoice& c = bf16_conv_choice();
  return std::string(c.impl == Bf16Conv::Native ? "oneDNN's bfloat16 kernels"
                                                : "float32 kernels, rounded to bfloat16") +
         " (" + c.why + ")";
}
inline void note_bf16_conv_choice() {
  static const bool once = [] {
    std::fprintf(stderr, "resnet: bfloat16 convolutions run on %s\n", describe_bf16_conv().c_str());
    return true;
  }();
  (void)once;
}
namespace detail {
// The GEMM path is NCHW only: channels-last tensors go through row-major copies (explicitly, never by
// reading NHWC memory as NCHW).
inline Tensor<float> row_major(const Tensor<float>& t) { return t.contiguous(); }
inline void write_back(Tensor<float>& dst, const Tensor<float>& rm) {
  if (!dst.same_layout(rm)) copy_into(dst, rm);
}
}  // namespace detail

inline void conv2d_forward_float(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* bias,
                                 Tensor<float>& y, const ConvParams& p) {
  check_conv_shapes("conv2d", x, w, y, p, bias);
#if defined(RESNET_HAVE_DNNL)
  if (float_conv_impl() == ConvImpl::OneDnn) return onednn::conv2d_forward(x, w, bias, y, p);
#endif
  Tensor<float> yr = y.is_contiguous() ? y : Tensor<float>::empty(y.shape());
  conv2d_forward_fast(detail::row_major(x), w, bias, yr, p);
  detail::write_back(y, yr);
}
inline void conv2d_backward_data_float(const Tensor<float>& dy, const Tensor<float>& w, Tensor<float>& dx,
                                       const ConvParams& p, bool accumulate) {
  check_conv_shapes("conv2d_backward_data", dx, w, dy, p);
#if defined(RESNET_HAVE_DNNL)
  if (float_conv_impl() == ConvImpl::OneDnn) return onednn::conv2d_backward_data(dy, w, dx, p, accumulate);
#endif
  Tensor<float> dxr =
      dx.is_contiguous() ? dx : (accumulate ? dx.contiguous() : Tensor<float>::empty(dx.shape()));
  conv2d_backward_data_fast(detail::row_major(dy), w, dxr, p, accumulate);
  detail::write_back(dx, dxr);
}
inline void conv2d_backward_weight_float(const Tensor<float>& x, const Tensor<float>& dy, Tensor<float>& dw,
                                         const ConvParams& p, bool accumulate) {
  check_conv_shapes("conv2d_backward_weight", x, dw, dy, p);
#if defined(RESNET_HAVE_DNNL)
  if (float_conv_impl() == ConvImpl::OneDnn) return onednn::conv2d_backward_weight(x, dy, dw, p, accumulate);
#endif
  conv2d_backward_weight_fast(detail::row_major(x), detail::row_major(dy), dw, p, accumulate);
}

// bfloat16: oneDNN's kernels, or the float path on float copies (one rounding per output, as oneDNN's
// bfloat16 kernels, which also accumulate in float).
inline void conv2d_forward_bf16(const Tensor<bf16_t>& x, const Tensor<bf16_t>& w, const Tensor<bf16_t>* bias,
                                Tensor<bf16_t>& y, const ConvParams& p) {
  check_conv_shapes("conv2d", x, w, y, p, bias);
  note_bf16_conv_choice();
#if defined(RESNET_HAVE_DNNL)
  if (bf16_conv_impl() == Bf16Conv::Native) return onednn::conv2d_forward(x, w, bias, y, p);
#endif
  Tensor<float> bf = bias ? bf16::to_float(*bias) : Tensor<float>();
  Tensor<float> yf = bf16::float_like(y);
  conv2d_forward_float(bf16::to_float(x), bf16::to_float(w), bias ? &bf : nullptr, yf, p);
  bf16::round_into(yf, y);
}
inline void conv2d_backward_data_bf16(const Tensor<bf16_t>& dy, const Tensor<bf16_t>& w, Tensor<bf16_t>& dx,
                                      const ConvParams& p, bool accumulate) {
  check_conv_shapes("conv2d_backward_data", dx, w, dy, p);
  note_bf16_conv_choice();
#if defined(RESNET_HAVE_DNNL)
  if (bf16_conv_impl() == Bf16Conv::Native) return onednn::conv2d_backward_data(dy, w, dx, p, accumulate);
#endif
  Tensor<float> dxf = bf16::float_like(dx);
  conv2d_backward_data_float(bf16::to_float(dy), bf16::to_float(w), dxf, p, false);
  bf16::round_into(dxf, dx, accumulate);
}
inline void conv2d_backward_weight_bf16(const Tensor<bf16_t>& x, const Tensor<bf16_t>& dy, Tensor<bf16_t>& dw,
                                        const ConvParams& p, bool accumulate) {
  check_conv_shapes("conv2d_backward_weight", x, dw, dy, p);
  note_bf16_conv_choice();
#if defined(RESNET_HAVE_DNNL)
  if (bf16_conv_impl() == Bf16Conv::Native) return onednn::conv2d_backward_weight(x, dy, dw, p, accumulate);
#endif
  Tensor<float> dwf = bf16::float_like(dw);
  conv2d_backward_weight_float(bf16::to_float(x), bf16::to_float(dy), dwf, p, false);
  bf16::round_into(dwf, dw, accumulate);
}

// Every path takes row-major OIHW weights; a weight (or weight gradient) in another layout goes through a
// row-major copy here, explicitly.
template <typename T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y,
                    const ConvParams& p) {
  if (w.defined() && !w.is_contiguous()) return conv2d_forward(x, w.contiguous(), bias, y, p);
  if constexpr (std::is_same<T, float>::value)
    conv2d_forward_float(x, w, bias, y, p);
  else if constexpr (std::is_same<T, bf16_t>::value)
    conv2d_forward_bf16(x, w, bias, y, p);
  else
    conv2d_forward_reference(x, w, bias, y, p);
}
template <typename T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, Tensor<T>& dx, const ConvParams& p,
                          bool accumulate) {
  if (w.defined() && !w.is_contiguous()) return conv2d_backward_data(dy, w.contiguous(), dx, p, accumulate);
  if constexpr (std::is_same<T, float>::value)
    conv2d_backward_data_float(dy, w, dx, p, accumulate);
  else if constexpr (std::is_same<T, bf16_t>::value)
    conv2d_backward_data_bf16(dy, w, dx, p, accumulate);
  else
    conv2d_backward_data_reference(dy, w, dx, p, accumulate);
}
template <typename T>
void conv2d_backward_weight(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dw, const ConvParams& p,
                            bool accumulate) {
  if (dw.defined() && !dw.is_contiguous() && dw.is_dense()) {
    Tensor<T> rm = accumulate ? dw.contiguous() : Tensor<T>::empty(dw.shape());
    conv2d_backward_weight(x, dy, rm, p, accumulate);
    copy_into(dw, rm);
    return;
  }
  if constexpr (std::is_same<T, float>::value)
    conv2d_backward_weight_float(x, dy, dw, p, accumulate);
  else if constexpr (std::is_same<T, bf16_t>::value)
    conv2d_backward_weight_bf16(x, dy, dw, p, accumulate);
  else
    conv2d_backward_weight_reference(x, dy, dw, p, accumulate);
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
