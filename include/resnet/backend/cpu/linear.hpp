// Fully connected layer on the CPU: y[N, O] = x[N, I] * W[O, I]^T + b[O], through GEMM.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/contract/linear.hpp"
#include "resnet/backend/cpu/blas.hpp"
#include "resnet/backend/cpu/elementwise.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

// The linear layer's contract (backend/contract/linear.hpp), shared with the CUDA backend.
inline void check_linear_shapes(const char* op, const TensorBase& x, const TensorBase& w, const TensorBase& y,
                                const TensorBase* bias = nullptr) {
  contract::linear(op, x, w, y, bias);
}

template <typename T>
void linear_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y) {
  check_linear_shapes("linear", x, w, y, bias);
  const int64_t N = x.dim(0), I = x.dim(1), O = w.dim(0);
  gemm(false, true, N, O, I, T(1), x.data(), I, w.data(), I, T(0), y.data(), O);
  if (bias) {
    const T* pb = bias->data();
    T* py = y.data();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) py[n * O + o] += pb[o];
  }
}

template <typename T>
void linear_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, Tensor<T>* dx,
                     bool dx_accumulate, Tensor<T>* dw, Tensor<T>* db, bool param_accumulate) {
  contract::linear_backward("linear_backward", x, w, dy, dx, dw, db);
  const int64_t N = x.dim(0), I = x.dim(1), O = w.dim(0);
  if (dx)
    gemm(false, false, N, I, O, T(1), dy.data(), O, w.data(), I, T(dx_accumulate ? 1 : 0), dx->data(), I);
  if (dw)
    gemm(true, false, O, I, N, T(1), dy.data(), O, x.data(), I, T(param_accumulate ? 1 : 0), dw->data(), I);
  if (db) {
    const T* pdy = dy.data();
    T* pdb = db->data();
    for (int64_t o = 0; o < O; ++o) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; ++n) acc += static_cast<double>(pdy[n * O + o]);
      pdb[o] = static_cast<T>(param_accumulate ? static_cast<double>(pdb[o]) + acc : acc);
    }
  }
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
