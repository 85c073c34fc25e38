// Registry entries: the fused optimizer updates. What is compared is the update (parameter after minus
// parameter before, about lr in size), not the parameter: a parameter of size 1 would hide an error of
// 1% in an update of 1e-3 below float's rounding of the parameter itself.
#include "ops/entry.hpp"

namespace opreg {
namespace {

Registrar optimizers([] {
  const Shape s{1000};
  Tolerance t;
  t.f32 = 5e-4;  // the float update is a difference of two roundings of the parameter (~6e-8 / 1e-3)
  t.f64 = 1e-9;
  for (int variant = 0; variant < 4; ++variant) {
    SgdHyper h;
    h.lr = 0.01;
    h.momentum = variant == 0 ? 0.0 : 0.9;
    h.dampening = variant == 3 ? 0.1 : 0.0;
    h.weight_decay = variant >= 2 ? 5e-4 : 0.0;
    h.nesterov = variant == 2;
    h.first_step = variant == 1;
    const char* names[] = {"plain", "momentum, first step", "nesterov + weight decay",
                           "dampening + weight decay"};
    add<kFast | kSim | kGpu>(
        op("sgd_step", names[variant], {act("param", s), act("grad", s), act("momentum", s)}).tolerance(t),
        [h](auto& be, auto& a) {
          auto p = a.x(0), buf = a.x(2);
          a.keep_delta("update", p);
          be.sgd_step(p, a.x(1), buf, h);
          if (h.momentum != 0.0) a.result("momentum", buf);
        });
  }
  for (int64_t step : {1, 3}) {
    AdamHyper h;
    h.lr = 1e-3;
    h.step = step;
    add<kFast | kSim | kGpu>(
        op("adamw_step", "step=" + std::to_string(step),
           {act("param", s), act("grad", s), act("m", s, 0.1), Input{"v", s, Input::Act, 0.01, 0.1, true}})
            .tolerance(t),
        [h](auto& be, auto& a) {
          auto p = a.x(0), m = a.x(2), v = a.x(3);
          a.keep_delta("update", p);
          be.adamw_step(p, a.x(1), m, v, h);
          a.result("m", m);
          a.result("v", v);
        });
  }
});

}  // namespace
}  // namespace opreg
