// Registry entries: convolutions and linear layers. Their GPU forms are cuDNN and cuBLAS (no kernel of
// ours to simulate), except the bias gradient, a per-channel sum of our own.
#include "ops/entry.hpp"

namespace opreg {
namespace {

const char* kLibrary = "cuDNN/cuBLAS on the GPU: no kernel of ours to simulate";

Registrar convolutions([] {
  struct Case {
    const char* name;
    Shape x, w;
    ConvParams p;
  };
  const std::vector<Case> cases{{"3x3 s1 p1", {2, 3, 7, 7}, {4, 3, 3, 3}, {1, 1, 1, 1}},
                                {"3x3 s2 p1", {2, 3, 8, 8}, {5, 3, 3, 3}, {2, 2, 1, 1}},
                                {"1x1 s2 (downsample)", {2, 4, 6, 6}, {3, 4, 1, 1}, {2, 2, 0, 0}},
                                {"7x7 s2 p3 (stem)", {1, 3, 11, 11}, {2, 3, 7, 7}, {2, 2, 3, 3}}};
  Tolerance t;
  t.f32 = 2e-5;      // oneDNN's float sums in another order
  t.gpu_f32 = 2e-5;  // cuDNN with TF32 off
  t.f16 = 4e-3;
  t.bf16 = 2e-2;
  for (const Case& c : cases) {
    const ConvParams p = c.p;
    const Shape ys{c.x[0], c.w[0], p.out_h(c.x[2], c.w[2]), p.out_w(c.x[3], c.w[3])};
    for (bool bias : {false, true}) {
      const std::string ps = std::string(c.name) + (bias ? " +bias" : "");
      std::vector<Input> in{act("x", c.x), act("w", c.w, 0.3), grad_in("dy", ys)};
      if (bias) in.push_back(act("b", {c.w[0]}));
      add<kNoSim>(op("conv2d", ps, in)
                      .accumulating()
                      .tolerance(t)
                      .why_no_sim(kLibrary)
                      .grad([p, bias](auto& x, auto&, auto&) {
                        return bias ? resnet::conv2d(x[0], x[1], x[3], p) : resnet::conv2d(x[0], x[1], p);
                      }),
                  [p, ys, bias](auto& be, auto& a) {
                    auto y = a.out("y", ys);
                    be.conv2d_forward(a.x(0), a.x(1), opt(bias, a.x(bias ? 3 : 0)), y, p);
                    auto dx = a.out("dx", a.x(0).shape());
                    be.conv2d_backward_data(a.x(2), a.x(1), dx, p, a.acc);
                    auto dw = a.out("dw", a.x(1).shape());
                    be.conv2d_backward_weight(a.x(0), a.x(2), dw, p, a.acc);
                  });
    }
  }
  // The bias gradient: a sum over N, H and W per channel, split by the plan across blocks.
  for (const Shape& s : {Shape{2, 3, 4, 4}, Shape{3, 5, 7, 7}, Shape{8, 4, 8, 8}, Shape{4, 2, 1, 1}}) {
    Tolerance tb;
    tb.f32 = 1e-5;
    tb.f16 = 4e-3;
    tb.bf16 = 2e-2;
    add<kAll>(
        op("conv2d_backward_bias", "dy=" + s.to_string(), {grad_in("dy", s)}).accumulating().tolerance(tb),
        [](auto& be, auto& a) {
          auto db = a.out("db", Shape{a.x(0).dim(1)});
          be.conv2d_backward_bias(a.x(0), db, a.acc);
        });
  }
});

Registrar linears([] {
  Tolerance t;
  t.f32 = 1e-5;
  t.gpu_f32 = 1e-5;
  t.f16 = 4e-3;
  t.bf16 = 2e-2;
  for (const Shape& x : {Shape{3, 5}, Shape{4, 64}}) {
    for (bool bias : {false, true}) {
      const Shape w{7, x[1]}, ys{x[0], 7};
      std::vector<Input> in{act("x", x), act("w", w, 0.3), grad_in("dy", ys)};
      if (bias) in.push_back(act("b", {7}));
      add<kNoSim>(op("linear", "x=" + x.to_string() + (bias ? " +bias" : ""), in)
                      .accumulating()
                      .tolerance(t)
                      .why_no_sim(kLibrary)
                      .grad([bias](auto& v, auto&, auto&) {
                        return resnet::linear(v[0], v[1], bias ? v[3] : Tensor<double>());
                      }),
                  [ys, bias](auto& be, auto& a) {
                    auto y = a.out("y", ys);
                    be.linear_forward(a.x(0), a.x(1), opt(bias, a.x(bias ? 3 : 0)), y);
                    auto dx = a.out("dx", a.x(0).shape());
                    auto dw = a.out("dw", a.x(1).shape());
                    if (bias) {
                      auto db = a.out("db", Shape{7});
                      be.linear_backward(a.x(0), a.x(1), a.x(2), &dx, a.acc, &dw, &db, a.acc);
                    } else {
                      be.linear_backward(a.x(0), a.x(1), a.x(2), &dx, a.acc, &dw,
                                         static_cast<decltype(&dx)>(nullptr), a.acc);
                    }
                  });
    }
  }
});

}  // namespace
}  // namespace opreg
