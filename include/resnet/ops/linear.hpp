// linear with autograd: y[N, O] = x[N, I] * W[O, I]^T + b[O].
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/ops/elementwise.hpp"

namespace resnet {
inline namespace RESNET_ABI {

template <typename T>
Tensor<T> linear(const Tensor<T>& x_in, const Tensor<T>& w_in, const Tensor<T>& b_in) {
  const char* op = "linear";
  check_rank(op, x_in, 2, "input [N, in_features]");
  check_rank(op, w_in, 2, "weight [out_features, in_features]");
  check_not_empty(op, x_in, "input");
  RESNET_CHECK(x_in.dim(1) == w_in.dim(1), op, ": input ", x_in.shape(), " has ", x_in.dim(1),
               " features but weight ", w_in.shape(), " expects ", w_in.dim(1));
  check_same_device(op, x_in, w_in);
  if (b_in.defined())
    RESNET_CHECK(b_in.rank() == 1 && b_in.dim(0) == w_in.dim(0), op, ": bias shape ", b_in.shape(),
                 " does not match ", w_in.dim(0), " output features");
  Tensor<T> x = detail::prepare(op, x_in), w = detail::prepare(op, w_in, "weight");
  Tensor<T> b = b_in.defined() ? detail::prepare(op, b_in, "bias") : Tensor<T>();
  Tensor<T> y = Tensor<T>::empty({x.dim(0), w.dim(0)}, x.device());
  RESNET_DISPATCH(x.device(), linear_forward, x, w, b.defined() ? &b : nullptr, y);
  Tensor<T> sx = x.detach(), sw = w.detach();
  autograd::record(op, {x_in, w_in, b_in}, y, [sx, sw](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>();
    Tensor<T> dx, dw, db;
    bool dx_acc = false, dw_acc = false, db_acc = false;
    if (ctx.needs(0)) dx = ctx.grad_slot<T>(0, &dx_acc);
    if (ctx.needs(1)) dw = ctx.grad_slot<T>(1, &dw_acc);
    if (ctx.needs(2)) db = ctx.grad_slot<T>(2, &db_acc);
    Tensor<T>* none = nullptr;
    if (dx.defined())
      RESNET_DISPATCH(dy.device(), linear_backward, sx, sw, dy, &dx, dx_acc, none, none, false);
    if (dw.defined() && db.defined() && dw_acc == db_acc) {
      RESNET_DISPATCH(dy.device(), linear_backward, sx, sw, dy, none, false, &dw, &db, dw_acc);
      return;
    }
    if (dw.defined())
      RESNET_DISPATCH(dy.device(), linear_backward, sx, sw, dy, none, false, &dw, none, dw_acc);
    if (db.defined())
      RESNET_DISPATCH(dy.device(), linear_backward, sx, sw, dy, none, false, none, &db, db_acc);
  });
  return y;
}

}  // namespace RESNET_ABI
}  // namespace resnet
