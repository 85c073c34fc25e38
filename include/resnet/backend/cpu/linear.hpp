// Fully connected layer on the CPU: y[N, O] = x[N, I] * W[O, I]^T + b[O], through GEMM.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"
#include "resnet/backend/contract/linear.hpp"
#include "resnet/backend/cpu/bf16.hpp"
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
void linear_forward_generic(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y) {
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
void linear_backward_generic(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, Tensor<T>* dx,
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

// bfloat16: the float GEMM on float copies, each output rounded once (the classifier head is small).
inline void linear_forward_bf16(const Tensor<bf16_t>& x, const Tensor<bf16_t>& w, const Tensor<bf16_t>* bias,
                                Tensor<bf16_t>& y) {
  check_linear_shapes("linear", x, w, y, bias);
  Tensor<float> bf = bias ? bf16::to_float(*bias) : Tensor<float>(), yf = bf16::float_like(y);
  linear_forward_generic<float>(bf16::to_float(x), bf16::to_float(w), bias ? &bf : nullptr, yf);
  bf16::round_into(yf, y);
}
inline void linear_backward_bf16(const Tensor<bf16_t>& x, const Tensor<bf16_t>& w, const Tensor<bf16_t>& dy,
                                 Tensor<bf16_t>* dx, bool dx_accumulate, Tensor<bf16_t>* dw,
                                 Tensor<bf16_t>* db, bool param_accumulate) {
  contract::linear_backward("linear_backward", x, w, dy, dx, dw, db);
  Tensor<float> dxf = dx ? bf16::float_like(*dx) : Tensor<float>();
  Tensor<float> dwf = dw ? bf16::float_like(*dw) : Tensor<float>();
  Tensor<float> dbf = db ? bf16::float_like(*db) : Tensor<float>();
  linear_backward_generic<float>(bf16::to_float(x), bf16::to_float(w), bf16::to_float(dy),
                                 dx ? &dxf : nullptr, false, dw ? &dwf : nullptr, db ? &dbf : nullptr, false);
  if (dx) bf16::round_into(dxf, *dx, dx_accumulate);
  if (dw) bf16::round_into(dwf, *dw, param_accumulate);
  if (db) bf16::round_into(dbf, *db, param_accumulate);
}

template <typename T>
void linear_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y) {
  if constexpr (std::is_same<T, bf16_t>::value)
    linear_forward_bf16(x, w, bias, y);
  else
    linear_forward_generic(x, w, bias, y);
}

template <typename T>
void linear_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, Tensor<T>* dx,
                     bool dx_accumulate, Tensor<T>* dw, Tensor<T>* db, bool param_accumulate) {
  if constexpr (std::is_same<T, bf16_t>::value)
    linear_backward_bf16(x, w, dy, dx, dx_accumulate, dw, db, param_accumulate);
  else
    linear_backward_generic(x, w, dy, dx, dx_accumulate, dw, db, param_accumulate);
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
