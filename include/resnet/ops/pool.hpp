// Pooling with autograd: max_pool2d, avg_pool2d and global_avg_pool ([N, C, H, W] -> [N, C]).
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/pool.hpp"
#include "resnet/ops/elementwise.hpp"

namespace resnet {
inline namespace RESNET_ABI {

inline void check_pool_args(const char* op, const TensorBase& x, const PoolParams& p) {
  check_rank(op, x, 4, "input [N, C, H, W]");
  check_not_empty(op, x, "input");
  contract::pool_params(op, p);
  RESNET_CHECK(p.out_h(x.dim(2)) > 0 && p.out_w(x.dim(3)) > 0, op, ": input ", x.shape(),
               " is smaller than the ", p.kernel_h, "x", p.kernel_w, " window");
}

template <typename T>
Tensor<T> max_pool2d(const Tensor<T>& x_in, const PoolParams& p) {
  check_pool_args("max_pool2d", x_in, p);
  Tensor<T> x = detail::prepare("max_pool2d", x_in);
  const MemoryFormat f = detail::op_format(x);
  Shape os{x.dim(0), x.dim(1), p.out_h(x.dim(2)), p.out_w(x.dim(3))};
  Tensor<T> y = Tensor<T>::empty(os, x.device(), f);
  // The argmax only serves the backward; CPU inference skips it (less memory at the stem, the peak).
  const bool backward_possible = autograd::grad_enabled() && autograd::needs_grad(x_in);
  Tensor<int32_t> idx = backward_possible || !x.device().is_cpu() ? Tensor<int32_t>::empty(os, x.device(), f)
                                                                  : Tensor<int32_t>();
  RESNET_DISPATCH(x.device(), maxpool2d_forward, x, y, idx, p);
  autograd::record("max_pool2d", {x_in}, y, [idx, f](autograd::BackwardContext& ctx) {
    Tensor<T> dy = detail::grad_in<T>(ctx, f);
    auto dx = detail::grad_out<T>(ctx, 0, f);
    RESNET_DISPATCH(dy.device(), maxpool2d_backward, dy, idx, dx.t, dx.acc);
    dx.finish();
  });
  return y;
}

template <typename T>
Tensor<T> avg_pool2d(const Tensor<T>& x_in, const PoolParams& p) {
  check_pool_args("avg_pool2d", x_in, p);
  Tensor<T> x = detail::prepare("avg_pool2d", x_in);
  const MemoryFormat f = detail::op_format(x);
  Tensor<T> y = Tensor<T>::empty({x.dim(0), x.dim(1), p.out_h(x.dim(2)), p.out_w(x.dim(3))}, x.device(), f);
  RESNET_DISPATCH(x.device(), avgpool2d_forward, x, y, p);
  autograd::record("avg_pool2d", {x_in}, y, [p, f](autograd::BackwardContext& ctx) {
    Tensor<T> dy = detail::grad_in<T>(ctx, f);
    auto dx = detail::grad_out<T>(ctx, 0, f);
    RESNET_DISPATCH(dy.device(), avgpool2d_backward, dy, dx.t, p, dx.acc);
    dx.finish();
  });
  return y;
}

template <typename T>
Tensor<T> global_avg_pool(const Tensor<T>& x_in) {
  check_rank("global_avg_pool", x_in, 4, "input [N, C, H, W]");
  check_not_empty("global_avg_pool", x_in, "input");
  Tensor<T> x = detail::prepare("global_avg_pool", x_in);
  Tensor<T> y = Tensor<T>::empty({x.dim(0), x.dim(1)}, x.device());
  RESNET_DISPATCH(x.device(), global_avgpool_forward, x, y);
  const MemoryFormat f = detail::op_format(x);
  autograd::record("global_avg_pool", {x_in}, y, [f](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>().contiguous();
    auto dx = detail::grad_out<T>(ctx, 0, f);
    RESNET_DISPATCH(dy.device(), global_avgpool_backward, dy, dx.t, dx.acc);
    dx.finish();
  });
  return y;
}

}  // namespace RESNET_ABI
}  // namespace resnet
