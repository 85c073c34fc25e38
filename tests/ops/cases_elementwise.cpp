// Registry entries: elementwise ops, reductions to a scalar and their backward passes.
#include "ops/entry.hpp"

namespace opreg {
namespace {

Registrar elementwise([] {
  // Sizes: one element, a tail shorter than a vector, whole vectors, and a long odd length.
  for (int64_t n : {1, 7, 64, 4099}) {
    const Shape s{n};
    const std::string ps = "n=" + std::to_string(n);
    add<kAll>(op("add", ps, {act("a", s), act("b", s)}).grad([](auto& x, auto&, auto&) {
      return resnet::add(x[0], x[1]);
    }),
              [](auto& be, auto& a) {
                auto y = a.out("y", a.x(0).shape());
                be.add(a.x(0), a.x(1), y);
              });
    for (double alpha : {1.0, -0.5}) {
      add<kAll>(op("add_inplace", ps + " alpha=" + std::to_string(alpha), {act("x", s)}).adds_into_output(),
                [alpha](auto& be, auto& a) {
                  auto y = a.out("y", a.x(0).shape());
                  be.add_inplace(y, a.x(0), alpha);
                });
    }
    add<kAll>(
        op("scale", ps, {act("x", s)}).grad([](auto& x, auto&, auto&) { return resnet::scale(x[0], 0.25); }),
        [](auto& be, auto& a) {
          auto y = a.out("y", a.x(0).shape());
          be.scale(a.x(0), 0.25, y);
        });
    add<kAll>(op("mul", ps, {act("a", s), act("b", s)}).accumulating().grad([](auto& x, auto&, auto&) {
      return resnet::mul(x[0], x[1]);
    }),
              [](auto& be, auto& a) {
                auto y = a.out("y", a.x(0).shape());
                be.mul(a.x(0), a.x(1), y, a.acc);
              });
    add<kAll>(op("relu", ps, {act("x", s), grad_in("dy", s)}).accumulating().grad([](auto& x, auto&, auto&) {
      return resnet::relu(x[0]);
    }),
              [](auto& be, auto& a) {
                auto y = a.out("y", a.x(0).shape());
                be.relu_forward(a.x(0), y);
                auto dx = a.out("dx", a.x(0).shape());
                be.relu_backward(y, a.x(1), dx, a.acc);
              });
    add<kAll>(op("fill", ps, {act("x", s)}), [](auto& be, auto& a) {
      auto y = a.out("y", a.x(0).shape());
      be.fill(y, 0.75);
    });
    add<kAll>(op("broadcast_scalar", ps, {act("dy", {1}), act("x", s)}).accumulating(),
              [](auto& be, auto& a) {
                auto dx = a.out("dx", a.x(1).shape());
                be.broadcast_scalar(a.x(0), 3.0, dx, a.acc);
              });
  }
  // Rank-4 activations: the [nhwc] and sim nhwc modes run these on channels-last tensors, which the
  // elementwise kernels (and the CUDA contracts) take as they are.
  {
    const Shape s{2, 3, 4, 5};
    add<kAll>(op("add", "x=" + s.to_string(), {act("a", s), act("b", s)}).grad([](auto& x, auto&, auto&) {
      return resnet::add(x[0], x[1]);
    }),
              [](auto& be, auto& a) {
                auto y = a.out("y", a.x(0).shape());
                be.add(a.x(0), a.x(1), y);
              });
    add<kAll>(op("relu", "x=" + s.to_string(), {act("x", s), grad_in("dy", s)})
                  .accumulating()
                  .grad([](auto& x, auto&, auto&) { return resnet::relu(x[0]); }),
              [](auto& be, auto& a) {
                auto y = a.out("y", a.x(0).shape());
                be.relu_forward(a.x(0), y);
                auto dx = a.out("dx", a.x(0).shape());
                be.relu_backward(y, a.x(1), dx, a.acc);
                be.add_inplace(dx, a.x(0), -0.5);
              });
    add<kAll>(op("scale", "x=" + s.to_string(), {act("x", s)}), [](auto& be, auto& a) {
      auto y = a.out("y", a.x(0).shape());
      be.scale(a.x(0), 0.25, y);
      auto z = a.out("z", a.x(0).shape());
      be.fill(z, 0.5);
    });
    add<kAll>(op("cast", "x=" + s.to_string(), {act("x", s, 50.0)}), [](auto& be, auto& a) {
      using T = typename std::decay_t<decltype(a.x(0))>::value_type;
      using F = std::conditional_t<std::is_same<T, double>::value, double, float>;
      Tensor<F> wide = a.laid_out(Tensor<F>::empty(a.x(0).shape())).to(a.device());
      be.cast(a.x(0), wide);
      auto y = a.out("y", a.x(0).shape());
      be.cast(wide, y);
    });
  }
  // Sums: one block, several blocks, and more than the reduction's block limit (100000 values).
  for (int64_t n : {1, 100, 100000}) {
    const Shape s{n};
    Tolerance t;
    t.f32 = 1e-5;  // float sums of 1e5 terms
    t.f16 = 1e-2;
    t.bf16 = 3e-2;
    add<kAll>(op("sum", "n=" + std::to_string(n), {act("x", s)}).tolerance(t).grad([](auto& x, auto&, auto&) {
      return resnet::sum(x[0]);
    }),
              [](auto& be, auto& a) {
                auto y = a.out("y", Shape{1});
                be.sum_all(a.x(0), y);
              });
  }
  // Casts to float and back: every storage type round-trips through the compute type.
  for (int64_t n : {5, 333}) {
    add<kAll>(op("cast", "n=" + std::to_string(n), {act("x", {n}, 50.0)}), [](auto& be, auto& a) {
      using T = typename std::decay_t<decltype(a.x(0))>::value_type;
      using F = std::conditional_t<std::is_same<T, double>::value, double, float>;
      Tensor<F> wide = Tensor<F>::empty(a.x(0).shape(), a.device());
      be.cast(a.x(0), wide);
      auto y = a.out("y", a.x(0).shape());
      be.cast(wide, y);
    });
  }
});

}  // namespace
}  // namespace opreg
