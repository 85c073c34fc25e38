// Elementwise CPU ops on contiguous tensors (row-major or channels-last: the contract makes every tensor of
// an op share one layout, so flat loops pair the right elements): add, accumulate, scale, ReLU, casts,
// reductions. bfloat16 is loaded into float and rounded back (bf16::load / bf16::store).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"

#include <cmath>

#include "resnet/backend/contract/elementwise.hpp"
#include "resnet/backend/cpu/bf16.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

constexpr int64_t kElementwiseGrain = 1 << 15;
using bf16::load;
using bf16::store;

template <typename T>
void fill(Tensor<T>& y, double value) {
  contract::fill("fill", y);
  T* p = y.data();
  T v = static_cast<T>(value);
  parallel_for(y.numel(), kElementwiseGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p[i] = v;
  });
}

// y = a + b
template <typename T>
void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y) {
  contract::elementwise("add", a, &b, y);
  const T* pa = a.data();
  const T* pb = b.data();
  T* py = y.data();
  parallel_for(y.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) py[i] = store<T>(load(pa[i]) + load(pb[i]));
  });
}

// y += alpha * x (gradient accumulation)
template <typename T>
void add_inplace(Tensor<T>& y, const Tensor<T>& x, double alpha) {
  contract::elementwise("add_inplace", x, nullptr, y);
  const T* px = x.data();
  T* py = y.data();
  const acc_t<T> a = static_cast<acc_t<T>>(alpha);
  parallel_for(y.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    if (alpha == 1.0) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) py[i] = store<T>(load(py[i]) + load(px[i]));
    } else {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) py[i] = store<T>(load(py[i]) + a * load(px[i]));
    }
  });
}

// y = alpha * x (y may alias x)
template <typename T>
void scale(const Tensor<T>& x, double alpha, Tensor<T>& y) {
  contract::elementwise("scale", x, nullptr, y);
  const T* px = x.data();
  T* py = y.data();
  const acc_t<T> a = static_cast<acc_t<T>>(alpha);
  parallel_for(y.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) py[i] = store<T>(a * load(px[i]));
  });
}

// y = a * b elementwise; with accumulate, y += a * b.
template <typename T>
void mul(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y, bool accumulate) {
  contract::elementwise("mul", a, &b, y);
  const T* pa = a.data();
  const T* pb = b.data();
  T* py = y.data();
  parallel_for(y.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i)
      py[i] = store<T>((accumulate ? load(py[i]) : acc_t<T>(0)) + load(pa[i]) * load(pb[i]));
  });
}

template <typename T>
void relu_forward(const Tensor<T>& x, Tensor<T>& y) {
  contract::elementwise("relu", x, nullptr, y);
  const T* px = x.data();
  T* py = y.data();
  parallel_for(y.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) py[i] = load(px[i]) > 0 ? px[i] : T(0);
  });
}

// dx = dy where y > 0 (the mask comes from the saved output: ReLU's output is positive exactly where its
// input was).
template <typename T>
void relu_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  contract::elementwise("relu_backward", y, &dy, dx);
  const T* py = y.data();
  const T* pdy = dy.data();
  T* pdx = dx.data();
  parallel_for(y.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const acc_t<T> g = load(py[i]) > 0 ? load(pdy[i]) : acc_t<T>(0);
      pdx[i] = store<T>(accumulate ? load(pdx[i]) + g : g);
    }
  });
}

// y[0] = sum of x (accumulated in double for accuracy).
template <typename T>
void sum_all(const Tensor<T>& x, Tensor<T>& y) {
  contract::sum_all("sum_all", x, y);
  const T* px = x.data();
  double acc = 0.0;
  for (int64_t i = 0; i < x.numel(); ++i) acc += static_cast<double>(load(px[i]));
  y.data()[0] = store<T>(acc);
}

// dx = broadcast(dy[0]) * alpha
template <typename T>
void broadcast_scalar(const Tensor<T>& dy, double alpha, Tensor<T>& dx, bool accumulate) {
  contract::broadcast_scalar("broadcast_scalar", dy, dx);
  const acc_t<T> g = static_cast<acc_t<T>>(static_cast<double>(load(dy.data()[0])) * alpha);
  T* p = dx.data();
  parallel_for(dx.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) p[i] = store<T>(accumulate ? load(p[i]) + g : g);
  });
}

template <typename S, typename D>
void cast(const Tensor<S>& x, Tensor<D>& y) {
  contract::elementwise("cast", x, nullptr, y);
  if constexpr (std::is_same<S, double>::value && std::is_same<D, double>::value) {
    std::copy(x.data(), x.data() + x.numel(), y.data());
    return;
  }
  const S* px = x.data();
  D* py = y.data();
  parallel_for(y.numel(), kElementwiseGrain, [&](int64_t s, int64_t e) {
    if constexpr (std::is_same<S, bf16_t>::value && std::is_same<D, float>::value) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) py[i] = load(px[i]);
    } else if constexpr (std::is_same<S, float>::value && std::is_same<D, bf16_t>::value) {
#pragma omp simd
      for (int64_t i = s; i < e; ++i) py[i] = bf16::round(px[i]);
    } else {
      for (int64_t i = s; i < e; ++i) py[i] = static_cast<D>(static_cast<float>(px[i]));
    }
  });
}

// True if every element is finite (used to stop training on a NaN/inf loss or gradient).
template <typename T>
bool all_finite(const Tensor<T>& x) {
  const T* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i)
    if (!std::isfinite(static_cast<double>(static_cast<float>(p[i])))) return false;
  return true;
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
