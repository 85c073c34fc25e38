// conv2d with autograd: y = conv(x, w) + b, NCHW, weights [Cout, Cin, KH, KW].
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/contract/conv.hpp"
#include "resnet/ops/elementwise.hpp"

namespace resnet {
inline namespace RESNET_ABI {

inline Shape conv2d_output_shape(const Shape& x, const Shape& w, const ConvParams& p) {
  return Shape{x[0], w[0], p.out_h(x[2], w[2]), p.out_w(x[3], w[3])};
}

inline void check_conv2d_args(const TensorBase& x, const TensorBase& w, const TensorBase& b,
                              const ConvParams& p) {
  const char* op = "conv2d";
  check_rank(op, x, 4, "input [N, C, H, W]");
  check_rank(op, w, 4, "weight [Cout, Cin, KH, KW]");
  check_not_empty(op, x, "input");
  check_not_empty(op, w, "weight");
  RESNET_CHECK(x.dim(1) == w.dim(1), op, ": input ", x.shape(), " has ", x.dim(1), " channels but weight ",
               w.shape(), " expects ", w.dim(1));
  contract::conv_params(op, p);
  RESNET_CHECK(x.dim(2) + 2 * p.pad_h >= w.dim(2) && x.dim(3) + 2 * p.pad_w >= w.dim(3), op, ": input ",
               x.shape(), " with padding ", p.pad_h, "x", p.pad_w, " is smaller than the kernel ", w.dim(2),
               "x", w.dim(3));
  check_same_device(op, x, w);
  if (b.defined()) {
    RESNET_CHECK(b.rank() == 1 && b.dim(0) == w.dim(0), op, ": bias shape ", b.shape(), " does not match ",
                 w.dim(0), " output channels");
    check_same_device(op, x, b);
  }
}

template <typename T>
Tensor<T> conv2d(const Tensor<T>& x_in, const Tensor<T>& w_in, const Tensor<T>& b_in, const ConvParams& p) {
  check_conv2d_args(x_in, w_in, b_in, p);
  // The output takes the input's memory format; the weight stays row-major OIHW (oneDNN reorders it into
  // its own blocked layout from either).
  Tensor<T> x = detail::prepare("conv2d", x_in);
  const MemoryFormat f = detail::op_format(x);
  Tensor<T> w = detail::prepare_as("conv2d", w_in, MemoryFormat::Contiguous, "weight");
  Tensor<T> b = b_in.defined() ? detail::prepare("conv2d", b_in, "bias") : Tensor<T>();
  Tensor<T> y = Tensor<T>::empty(conv2d_output_shape(x.shape(), w.shape(), p), x.device(), f);
  RESNET_DISPATCH(x.device(), conv2d_forward, x, w, b.defined() ? &b : nullptr, y, p);
  // Save only what the backward will read: x for the weight gradient, w for the input gradient.
  Tensor<T> sx = autograd::needs_grad(w_in) ? x.detach() : Tensor<T>();
  Tensor<T> sw = autograd::needs_grad(x_in) ? w.detach() : Tensor<T>();
  autograd::record("conv2d", {x_in, w_in, b_in}, y, [sx, sw, p, f](autograd::BackwardContext& ctx) {
    Tensor<T> dy = detail::grad_in<T>(ctx, f);
    bool acc;
    if (ctx.needs(0)) {
      auto dx = detail::grad_out<T>(ctx, 0, f);
      RESNET_DISPATCH(dy.device(), conv2d_backward_data, dy, sw, dx.t, p, dx.acc);
      dx.finish();
    }
    if (ctx.needs(1)) {
      auto dw = detail::grad_out<T>(ctx, 1, MemoryFormat::Contiguous);
      RESNET_DISPATCH(dy.device(), conv2d_backward_weight, sx, dy, dw.t, p, dw.acc);
      dw.finish();
    }
    if (ctx.needs(2)) {
      Tensor<T> db = ctx.grad_slot<T>(2, &acc);
      RESNET_DISPATCH(dy.device(), conv2d_backward_bias, dy, db, acc);
    }
  });
  return y;
}

template <typename T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& w, const ConvParams& p) {
  return conv2d(x, w, Tensor<T>(), p);
}

}  // namespace RESNET_ABI
}  // namespace resnet
