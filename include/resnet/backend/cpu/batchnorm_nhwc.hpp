// BatchNorm2d (+ residual add + ReLU) on channels-last tensors, float32 or bfloat16 storage, float
// arithmetic: the fast path behind cpu::batchnorm_* for NHWC.
//
// In NHWC a channel is strided, so the work is arranged by rows instead: the tensor is N * H * W rows of C
// contiguous values, and every pass is a loop over rows whose inner loop runs over the channels
// (vectorised, per-channel running sums in float vectors). The per-channel reductions split the rows into
// a fixed number of blocks (fixed by the shape, not the thread count, so results do not depend on the
// number of threads); each block sums in float over runs of kRun rows and adds the runs up in double, and
// the blocks are added in double. Same contract (contract/batchnorm.hpp) and formulas (batchnorm_math.hpp)
// as the NCHW paths.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <vector>

#include "resnet/backend/batchnorm_math.hpp"
#include "resnet/backend/contract/batchnorm.hpp"
#include "resnet/backend/cpu/bf16.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {
namespace bn_nhwc {

constexpr int64_t kRun = 32;  // rows summed in float before a double add

// Row blocks of a reduction over R rows.
inline int64_t blocks_for(int64_t R) { return std::max<int64_t>(1, std::min<int64_t>(64, R / 256)); }

// out[j][c] = sum over rows r of block j of f(r, c) (in double), and the total over blocks in total[c].
// `row` adds one row into a float accumulator of C values.
template <typename RowFn>
void channel_sums(int64_t R, int64_t C, int k, RowFn&& row, std::vector<double>* totals) {
  const int64_t B = blocks_for(R);
  std::vector<double> part(static_cast<size_t>(B * C * k), 0.0);
  parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> f(static_cast<size_t>(C * k));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = R * b / B, r1 = R * (b + 1) / B;
      double* out = part.data() + b * C * k;
      for (int64_t s = r0; s < r1; s += kRun) {
        std::fill(f.begin(), f.end(), 0.f);
        for (int64_t r = s; r < std::min(r1, s + kRun); ++r) row(r, f.data());
        for (int64_t j = 0; j < C * k; ++j) out[j] += static_cast<double>(f[static_cast<size_t>(j)]);
      }
    }
  });
  for (int q = 0; q < k; ++q) totals[q].assign(static_cast<size_t>(C), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int q = 0; q < k; ++q)
      for (int64_t c = 0; c < C; ++c)
        totals[q][static_cast<size_t>(c)] += part[static_cast<size_t>((b * k + q) * C + c)];
}

// y = act(x * scale + shift [+ r]) over every row; RELU and RES fixed per loop.
template <typename S, bool RELU, bool RES>
void apply_rows(const S* x, const S* r, S* y, int64_t R, int64_t C, const float* scale, const float* shift) {
  parallel_for(R, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t a, int64_t b) {
    for (int64_t row = a; row < b; ++row) {
      const S* xr = x + row * C;
      const S* rr = RES ? r + row * C : nullptr;
      S* yr = y + row * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float v =
            bn::apply(bf16::load(xr[c]), 0.f, scale[c], shift[c], RES ? bf16::load(rr[c]) : 0.f, RELU);
        yr[c] = bf16::store<S>(v);
      }
    }
  });
}
template <typename S>
void apply_any(const S* x, const S* r, S* y, int64_t R, int64_t C, const float* scale, const float* shift,
               bool relu) {
  if (relu && r)
    apply_rows<S, true, true>(x, r, y, R, C, scale, shift);
  else if (relu)
    apply_rows<S, true, false>(x, r, y, R, C, scale, shift);
  else if (r)
    apply_rows<S, false, true>(x, r, y, R, C, scale, shift);
  else
    apply_rows<S, false, false>(x, r, y, R, C, scale, shift);
}

}  // namespace bn_nhwc

template <typename S>
void batchnorm_forward_training_nhwc(const Tensor<S>& x, const Tensor<S>* residual,
                                     const Tensor<float>& gamma, const Tensor<float>& beta,
                                     Tensor<float>& running_mean, Tensor<float>& running_var,
                                     Tensor<float>& save_mean, Tensor<float>& save_invstd, Tensor<S>& y,
                                     const BatchNormParams& bp, Activation act) {
  const contract::BatchNormDims d = contract::batchnorm_forward(
      "batch_norm", x, residual, gamma, beta, running_mean, running_var, &save_mean, &save_invstd, y, true);
  const int64_t C = d.C, R = d.N * d.HW;
  const double M = static_cast<double>(d.count());
  const S* px = x.data();
  std::vector<double> sums[1], sqs[1];
  bn_nhwc::channel_sums(
      R, C, 1,
      [&](int64_t r, float* f) {
        const S* xr = px + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) f[c] += bf16::load(xr[c]);
      },
      sums);
  std::vector<float> mean(static_cast<size_t>(C)), scale(static_cast<size_t>(C)),
      shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c)
    mean[static_cast<size_t>(c)] = static_cast<float>(sums[0][static_cast<size_t>(c)] / M);
  const float* pm = mean.data();
  bn_nhwc::channel_sums(
      R, C, 1,
      [&](int64_t r, float* f) {
        const S* xr = px + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float v = bf16::load(xr[c]) - pm[c];
          f[c] += v * v;
        }
      },
      sqs);
  for (int64_t c = 0; c < C; ++c) {
    const size_t u = static_cast<size_t>(c);
    const double mu = sums[0][u] / M, var = sqs[0][u] / M, inv = bn::invstd(var, bp.eps);
    bn::store_statistics(mu, var, inv, M, bp.momentum, save_mean.data() + c, save_invstd.data() + c,
                         running_mean.data() + c, running_var.data() + c);
    const auto k = bn::scale_shift<float>(static_cast<double>(gamma.data()[c]),
                                          static_cast<double>(beta.data()[c]), inv, mu);
    scale[u] = k.scale;
    shift[u] = k.shift;
  }
  bn_nhwc::apply_any(px, residual ? residual->data() : nullptr, y.data(), R, C, scale.data(), shift.data(),
                     act == Activation::ReLU);
}

template <typename S>
void batchnorm_forward_inference_nhwc(const Tensor<S>& x, const Tensor<S>* residual,
                                      const Tensor<float>& gamma, const Tensor<float>& beta,
                                      const Tensor<float>& running_mean, const Tensor<float>& running_var,
                                      Tensor<S>& y, const BatchNormParams& bp, Activation act) {
  const contract::BatchNormDims d = contract::batchnorm_forward(
      "batch_norm", x, residual, gamma, beta, running_mean, running_var,
      static_cast<const Tensor<float>*>(nullptr), static_cast<const Tensor<float>*>(nullptr), y, false);
  const int64_t C = d.C;
  std::vector<float> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double inv = bn::invstd(static_cast<double>(running_var.data()[c]), bp.eps);
    const auto k =
        bn::scale_shift<float>(static_cast<double>(gamma.data()[c]), static_cast<double>(beta.data()[c]), inv,
                               static_cast<double>(running_mean.data()[c]));
    scale[static_cast<size_t>(c)] = k.scale;
    shift[static_cast<size_t>(c)] = k.shift;
  }
  bn_nhwc::apply_any(x.data(), residual ? residual->data() : nullptr, y.data(), d.N * d.HW, C, scale.data(),
                     shift.data(), act == Activation::ReLU);
}

namespace bn_nhwc {

// One row of the backward's second pass (see batchnorm_fast.hpp's backward_row), over C channels.
template <typename S, bool RELU, bool DR, bool DR_ACC, bool DX, bool DX_ACC>
void backward_rows(const S* x, const S* y, const S* dy, S* dr, S* dx, int64_t R, int64_t C,
                   const bn::Coefficients<float>* k) {
  parallel_for(R, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)), [&](int64_t a, int64_t b) {
    for (int64_t row = a; row < b; ++row) {
      const int64_t o = row * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float g = bn::dz(bf16::load(dy[o + c]), RELU ? bf16::load(y[o + c]) : 0.f, RELU);
        if (DR) dr[o + c] = bf16::store<S>(DR_ACC ? bf16::load(dr[o + c]) + g : g);
        if (DX) {
          const float v = bn::dx(g, bf16::load(x[o + c]) - k[c].mean, k[c]);
          dx[o + c] = bf16::store<S>(DX_ACC ? bf16::load(dx[o + c]) + v : v);
        }
      }
    }
  });
}
template <typename S, bool RELU, bool DR, bool DR_ACC>
void backward_dx(bool dx_on, bool dx_acc, const S* x, const S* y, const S* dy, S* dr, S* dx, int64_t R,
                 int64_t C, const bn::Coefficients<float>* k) {
  if (!dx_on)
    backward_rows<S, RELU, DR, DR_ACC, false, false>(x, y, dy, dr, dx, R, C, k);
  else if (dx_acc)
    backward_rows<S, RELU, DR, DR_ACC, true, true>(x, y, dy, dr, dx, R, C, k);
  else
    backward_rows<S, RELU, DR, DR_ACC, true, false>(x, y, dy, dr, dx, R, C, k);
}
template <typename S, bool RELU>
void backward_any(bool dr_on, bool dr_acc, bool dx_on, bool dx_acc, const S* x, const S* y, const S* dy,
                  S* dr, S* dx, int64_t R, int64_t C, const bn::Coefficients<float>* k) {
  if (!dr_on)
    backward_dx<S, RELU, false, false>(dx_on, dx_acc, x, y, dy, dr, dx, R, C, k);
  else if (dr_acc)
    backward_dx<S, RELU, true, true>(dx_on, dx_acc, x, y, dy, dr, dx, R, C, k);
  else
    backward_dx<S, RELU, true, false>(dx_on, dx_acc, x, y, dy, dr, dx, R, C, k);
}

}  // namespace bn_nhwc

template <typename S>
void batchnorm_backward_nhwc(const Tensor<S>& x, const Tensor<S>& y, const Tensor<S>& dy,
                             const Tensor<float>& gamma, const Tensor<float>& mean,
                             const Tensor<float>& invstd, bool training, Activation act, Tensor<S>* dx,
                             bool dx_accumulate, Tensor<S>* dresidual, bool dresidual_accumulate,
                             Tensor<float>* dgamma, Tensor<float>* dbeta, bool param_accumulate) {
  const bool relu = act == Activation::ReLU;
  const contract::BatchNormDims d = contract::batchnorm_backward("batch_norm_backward", x, y, dy, gamma, mean,
                                                                 invstd, relu, dx, dresidual, dgamma, dbeta);
  const int64_t C = d.C, R = d.N * d.HW;
  const S* px = x.data();
  const S* py = relu ? y.data() : nullptr;
  const S* pdy = dy.data();
  const float* pm = mean.data();
  std::vector<double> sums[2];
  bn_nhwc::channel_sums(
      R, C, 2,
      [&](int64_t r, float* f) {
        const int64_t o = r * C;
        float* fa = f;
        float* fb = f + C;
        if (py) {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) {
            const float g = bn::dz(bf16::load(pdy[o + c]), bf16::load(py[o + c]), true);
            fa[c] += g;
            fb[c] += g * (bf16::load(px[o + c]) - pm[c]);
          }
        } else {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) {
            const float g = bf16::load(pdy[o + c]);
            fa[c] += g;
            fb[c] += g * (bf16::load(px[o + c]) - pm[c]);
          }
        }
      },
      sums);
  std::vector<bn::Coefficients<float>> k(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const size_t u = static_cast<size_t>(c);
    const double is = static_cast<double>(invstd.data()[c]);
    bn::store_param_grads(sums[0][u], sums[1][u], is, param_accumulate, dgamma ? dgamma->data() + c : nullptr,
                          dbeta ? dbeta->data() + c : nullptr);
    k[u] = bn::dx_coefficients<float>(static_cast<double>(gamma.data()[c]), static_cast<double>(pm[c]), is,
                                      sums[0][u], sums[1][u], static_cast<double>(d.count()), training);
  }
  S* pdx = dx ? dx->data() : nullptr;
  S* pdr = dresidual ? dresidual->data() : nullptr;
  if (!pdx && !pdr) return;
  if (py)
    bn_nhwc::backward_any<S, true>(pdr != nullptr, dresidual_accumulate, pdx != nullptr, dx_accumulate, px,
                                   py, pdy, pdr, pdx, R, C, k.data());
  else
    bn_nhwc::backward_any<S, false>(pdr != nullptr, dresidual_accumulate, pdx != nullptr, dx_accumulate, px,
                                    py, pdy, pdr, pdx, R, C, k.data());
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
