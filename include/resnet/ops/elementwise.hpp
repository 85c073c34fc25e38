// Elementwise and shape ops with autograd: add (the residual add), mul, scale, relu, sum, mean,
// reshape/flatten, and dtype casts.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/autograd/engine.hpp"
#include "resnet/backend/dispatch.hpp"

namespace resnet {
inline namespace RESNET_ABI {

namespace detail {
// Whether the backend of `device` computes in channels-last: the CPU always; CUDA devices only with
// cuda::set_channels_last(true) (or RESNET_CUDA_NHWC=1): their NHWC kernels have never run on a GPU, so
// they are off by default and channels-last device tensors are converted to row-major at entry.
inline bool takes_channels_last(Device device) {
#if RESNET_WITH_CUDA
  return device.is_cpu() || cuda::channels_last_enabled();
#else
  return device.is_cpu();
#endif
}
// The memory format an op computes in, given whether its device takes channels-last: the input's when it
// does (and the input is dense), else row-major. Host-only logic, tested without a GPU.
inline MemoryFormat op_format_for(const TensorBase& x, bool device_takes_channels_last) {
  return device_takes_channels_last && x.is_dense() ? x.suggest_memory_format() : MemoryFormat::Contiguous;
}
inline MemoryFormat op_format(const TensorBase& x) {
  return op_format_for(x, takes_channels_last(x.device()));
}
// x in the given format (a no-op handle copy when it already is).
template <typename T>
Tensor<T> prepare_as(const char* op, const Tensor<T>& x, MemoryFormat format, const char* what = "input") {
  RESNET_CHECK(x.defined(), op, ": ", what, " is an undefined tensor");
  return x.contiguous(format);
}
template <typename T>
Tensor<T> prepare(const char* op, const Tensor<T>& x, const char* what = "input") {
  RESNET_CHECK(x.defined(), op, ": ", what, " is an undefined tensor");
  return x.contiguous(op_format(x));
}

// The output's gradient in the op's format (it usually already is: consumers write gradients in the
// format of the tensor they got).
template <typename T>
Tensor<T> grad_in(autograd::BackwardContext& ctx, MemoryFormat format) {
  return ctx.grad_output_as<T>().contiguous(format);
}
// Where a backward writes input i's gradient, in the op's format: the slot itself when it is new (laid out
// in that format: it holds nothing yet) or already in the format; else a temporary that finish() adds into
// the slot. `acc` is the backend's accumulate flag.
template <typename T>
struct GradOut {
  Tensor<T> t;
  bool acc = false;
  Tensor<T> slot;  // defined when t is a temporary
  Tensor<T>* ptr() { return t.defined() ? &t : nullptr; }
  void finish() {
    if (slot.defined()) backend::add_inplace_any(slot, t);
  }
};
template <typename T>
GradOut<T> grad_out(autograd::BackwardContext& ctx, size_t i, MemoryFormat format) {
  GradOut<T> g;
  if (!ctx.needs(i)) return g;
  g.t = ctx.grad_slot<T>(i, &g.acc);
  if (!g.acc) {
    if (!g.t.is_contiguous(format)) g.t.restride_unwritten_(format);
  } else if (!g.t.is_contiguous(format)) {
    g.slot = g.t;
    g.t = Tensor<T>::empty(g.slot.shape(), g.slot.device(), format);
    g.acc = false;
  }
  return g;
}
}  // namespace detail

// y = a + b (same shapes). Its backward hands dy to both inputs.
template <typename T>
Tensor<T> add(const Tensor<T>& a_in, const Tensor<T>& b_in) {
  check_same_shape("add", a_in, b_in);
  check_same_device("add", a_in, b_in);
  Tensor<T> a = detail::prepare("add", a_in);
  const MemoryFormat f = detail::op_format(a);
  Tensor<T> b = detail::prepare_as("add", b_in, f, "second input");
  Tensor<T> y = Tensor<T>::empty(a.shape(), a.device(), f);
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
  Tensor<T> a = detail::prepare("mul", a_in);
  const MemoryFormat f = detail::op_format(a);
  Tensor<T> b = detail::prepare_as("mul", b_in, f, "second input");
  Tensor<T> y = Tensor<T>::empty(a.shape(), a.device(), f);
  RESNET_DISPATCH(a.device(), mul, a, b, y, false);
  Tensor<T> sa = autograd::needs_grad(b_in) ? a.detach() : Tensor<T>();
  Tensor<T> sb = autograd::needs_grad(a_in) ? b.detach() : Tensor<T>();
  autograd::record("mul", {a_in, b_in}, y, [sa, sb, f](autograd::BackwardContext& ctx) {
    Tensor<T> dy = detail::grad_in<T>(ctx, f);
    for (size_t i = 0; i < 2; ++i) {
      auto g = detail::grad_out<T>(ctx, i, f);
      if (!g.t.defined()) continue;
      RESNET_DISPATCH(dy.device(), mul, dy, i == 0 ? sb : sa, g.t, g.acc);
      g.finish();
    }
  });
  return y;
}

// y = alpha * x.
template <typename T>
Tensor<T> scale(const Tensor<T>& x_in, double alpha) {
  Tensor<T> x = detail::prepare("scale", x_in);
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device(), detail::op_format(x));
  RESNET_DISPATCH(x.device(), scale, x, alpha, y);
  autograd::record("scale", {x_in}, y, [alpha](autograd::BackwardContext& ctx) {
    Tensor<T> dy = ctx.grad_output_as<T>().contiguous(detail::op_format(ctx.grad_output()));
    Tensor<T> g = Tensor<T>::empty(dy.shape(), dy.device(), detail::op_format(dy));
    RESNET_DISPATCH(dy.device(), scale, dy, alpha, g);
    ctx.accumulate(0, g, true);
  });
  return y;
}

template <typename T>
Tensor<T> relu(const Tensor<T>& x_in) {
  Tensor<T> x = detail::prepare("relu", x_in);
  const MemoryFormat f = detail::op_format(x);
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device(), f);
  RESNET_DISPATCH(x.device(), relu_forward, x, y);
  Tensor<T> saved_y = y.detach();
  autograd::record("relu", {x_in}, y, [saved_y, f](autograd::BackwardContext& ctx) {
    Tensor<T> dy = detail::grad_in<T>(ctx, f);
    auto dx = detail::grad_out<T>(ctx, 0, f);
    RESNET_DISPATCH(dy.device(), relu_backward, saved_y, dy, dx.t, dx.acc);
    dx.finish();
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
  Tensor<T> x = detail::prepare_as("reshape", x_in, MemoryFormat::Contiguous);  // a view needs row-major
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
    const MemoryFormat f = detail::op_format(x);
    Tensor<D> y = Tensor<D>::empty(x.shape(), x.device(), f);
    RESNET_DISPATCH(x.device(), cast, x, y);
    autograd::record("cast", {x_in}, y, [f](autograd::BackwardContext& ctx) {
      Tensor<D> dy = detail::grad_in<D>(ctx, f);
      Tensor<S> g = Tensor<S>::empty(dy.shape(), dy.device(), f);
      RESNET_DISPATCH(dy.device(), cast, dy, g);
      ctx.accumulate(0, g, true);
    });
    return y;
  }
}

// The same values in another memory format (a copy unless x already is in it); the gradient goes back in
// x's format. Models convert their input once with it (Module::to(MemoryFormat)).
template <typename T>
Tensor<T> to_memory_format(const Tensor<T>& x_in, MemoryFormat format) {
  RESNET_CHECK(x_in.defined(), "to_memory_format: undefined tensor");
  RESNET_CHECK(format == MemoryFormat::Contiguous || x_in.rank() == 4,
               "to_memory_format: ", memory_format_name(format),
               " needs a tensor of rank 4 [N, C, H, W], got shape ", x_in.shape());
  if (x_in.is_contiguous(format)) return x_in;
  Tensor<T> y = x_in.contiguous(format);
  const MemoryFormat back = detail::op_format(x_in);
  autograd::record("to_memory_format", {x_in}, y, [back](autograd::BackwardContext& ctx) {
    Tensor<T> g = ctx.grad_output_as<T>().contiguous(back);
    ctx.accumulate(0, g, !g.same_storage(ctx.grad_output()) || ctx.grad_output_disposable());
  });
  return y;
}

}  // namespace RESNET_ABI
}  // namespace resnet
