// Elementwise and shape ops with autograd: add (the residual add), mul, scale, relu, sum, mean,
// reshape/flatten, and dtype casts.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/autograd/engine.hpp"
#include "resnet/backend/dispatch.hpp"

namespace resnet {
inline namespace RESNET_ABI {

namespace detail {
template <typename T>
Tensor<T> prepare(const char* op, const Tensor<T>& x, const char* what = "input") {
  RESNET_CHECK(x.defined(), op, ": ", what, " is an undefined tensor");
  return x.is_contiguous() ? x : x.contiguous();
}
}  // namespace detail

// y = a + b (same shapes). Its backward hands dy to both inputs.
template <typename T>
Tensor<T> add(const Tensor<T>& a_in, const Tensor<T>& b_in) {
  check_same_shape("add", a_in, b_in);
  check_same_device("add", a_in, b_in);
  Tensor<T> a = detail::prepare("add", a_in), b = detail::prepare("add", b_in);
  Tensor<T> y = Tensor<T>::empty(a.shape(), a.device());
  RESNET_DISPATCH(a.device(), add, a, b, y);
  autograd::record("add", {a_in, b_in}, y, [](autograd::BackwardContext& ctx) {
    const TensorBase& g = ctx.grad_output();
    bool first_takes = ctx.needs(0) && ctx.grad_output_disposable();
    ctx.accumulate(0, g, first_takes);
    ctx.accumulate(1, g, false);
  });
  return y;
}

// y = a * b elementwise.
template <typename T>
Tensor<T> mul(const Tensor<T>& a_in, const Tensor<T>& b_in) {
  check_same_shape("mul", a_in, b_in);
  check_same_device("mul", a_in, b_in);
  Tensor<T> a = detail::prepare("mul", a_in), b = detail::prepare("mul", b_in);
  Tensor<T> y = Tensor<T>::empty(a.shape(), a.device());
  RESNET_DISPATCH(a.device(), mul, a, b, y, false);
  Tensor<T> sa = autograd::needs_grad(b_in) ? a.detach() : Tensor<T>();
  Tensor<T> sb = autograd::needs_grad(a_in) ? b.detach() : Tensor<T>();
  autograd::record("mul", {a_in, b_in}, y, [sa, sb](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>();
    bool acc;
    if (ctx.needs(0)) {
      Tensor<T> da = ctx.grad_slot<T>(0, &acc);
      RESNET_DISPATCH(dy.device(), mul, dy, sb, da, acc);
    }
    if (ctx.needs(1)) {
      Tensor<T> db = ctx.grad_slot<T>(1, &acc);
      RESNET_DISPATCH(dy.device(), mul, dy, sa, db, acc);
    }
  });
  return y;
}

// y = alpha * x.
template <typename T>
Tensor<T> scale(const Tensor<T>& x_in, double alpha) {
  Tensor<T> x = detail::prepare("scale", x_in);
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  RESNET_DISPATCH(x.device(), scale, x, alpha, y);
  autograd::record("scale", {x_in}, y, [alpha](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>();
    Tensor<T> g = Tensor<T>::empty(dy.shape(), dy.device());
    RESNET_DISPATCH(dy.device(), scale, dy, alpha, g);
    ctx.accumulate(0, g, true);
  });
  return y;
}

template <typename T>
Tensor<T> relu(const Tensor<T>& x_in) {
  Tensor<T> x = detail::prepare("relu", x_in);
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device());
  RESNET_DISPATCH(x.device(), relu_forward, x, y);
  Tensor<T> saved_y = y.detach();
  autograd::record("relu", {x_in}, y, [saved_y](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>();
    bool acc;
    Tensor<T> dx = ctx.grad_slot<T>(0, &acc);
    RESNET_DISPATCH(dy.device(), relu_backward, saved_y, dy, dx, acc);
  });
  return y;
}

// Sum of all elements, as a rank-0 tensor.
template <typename T>
Tensor<T> sum(const Tensor<T>& x_in) {
  check_not_empty("sum", x_in, "input");
  Tensor<T> x = detail::prepare("sum", x_in);
  Tensor<T> y = Tensor<T>::empty(Shape{}, x.device());
  RESNET_DISPATCH(x.device(), sum_all, x, y);
  autograd::record("sum", {x_in}, y, [](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>();
    bool acc;
    Tensor<T> dx = ctx.grad_slot<T>(0, &acc);
    RESNET_DISPATCH(dy.device(), broadcast_scalar, dy, 1.0, dx, acc);
  });
  return y;
}

template <typename T>
Tensor<T> mean(const Tensor<T>& x) {
  check_not_empty("mean", x, "input");
  return scale(sum(x), 1.0 / static_cast<double>(x.numel()));
}

// A tensor with the same elements and a new shape (a view when x is contiguous).
template <typename T>
Tensor<T> reshape(const Tensor<T>& x_in, const Shape& shape) {
  RESNET_CHECK(x_in.defined(), "reshape: undefined tensor");
  RESNET_CHECK(shape.numel() == x_in.numel(), "reshape: cannot reshape ", x_in.shape(), " (", x_in.numel(),
               " elements) to ", shape, " (", shape.numel(), " elements)");
  Tensor<T> x = detail::prepare("reshape", x_in);
  Tensor<T> y = x.view(shape);
  Shape in_shape = x_in.shape();
  autograd::record("reshape", {x_in}, y, [in_shape](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>();
    Tensor<T> g = dy.is_contiguous() ? dy.view(in_shape) : dy.contiguous().view(in_shape);
    ctx.accumulate(0, g, ctx.grad_output_disposable());
  });
  return y;
}

// [N, d1, d2, ...] -> [N, d1 * d2 * ...]
template <typename T>
Tensor<T> flatten(const Tensor<T>& x) {
  RESNET_CHECK(x.defined() && x.rank() >= 1, "flatten: needs a tensor of rank >= 1");
  return reshape(x, Shape{x.dim(0), x.dim(0) == 0 ? 0 : x.numel() / x.dim(0)});
}

// Elementwise dtype conversion; the gradient is converted back.
template <typename D, typename S>
Tensor<D> cast(const Tensor<S>& x_in) {
  if constexpr (std::is_same<D, S>::value) {
    return x_in;
  } else {
    Tensor<S> x = detail::prepare("cast", x_in);
    Tensor<D> y = Tensor<D>::empty(x.shape(), x.device());
    RESNET_DISPATCH(x.device(), cast, x, y);
    autograd::record("cast", {x_in}, y, [](autograd::BackwardContext& ctx) {
      Tensor<D> dy = ctx.grad_output_as<D>();
      Tensor<S> g = Tensor<S>::empty(dy.shape(), dy.device());
      RESNET_DISPATCH(dy.device(), cast, dy, g);
      ctx.accumulate(0, g, true);
    });
    return y;
  }
}

}  // namespace RESNET_ABI
}  // namespace resnet
