// Registry entries: the fused optimizer updates. What is compared is the update (parameter after minus
// parameter before, about lr in size), not the parameter: a parameter of size 1 would hide an error of
// 1% in an update of 1e-3 below float's rounding of the parameter itself.
#include "ops/entry.hpp"
#include "resnet/backend/optim_math.hpp"

namespace opreg {
namespace {

Registrar optimizers([] {
  const Shape s{1000};
  Tolerance t;
  t.f32 = 5e-4;  // the float update is a difference of two roundings of the parameter (~6e-8 / 1e-3)
  t.f64 = 1e-9;
  // The learning rate and step number are read from the step state (backend/optim_math.hpp), a tensor on
  // the backend's device; "skipped" sets its skip flag, so the update and the buffers must not change.
  for (int variant = 0; variant < 5; ++variant) {
    SgdHyper h;
    const double lr = 0.01;
    h.momentum = variant == 0 ? 0.0 : 0.9;
    h.dampening = variant == 3 ? 0.1 : 0.0;
    h.weight_decay = variant >= 2 ? 5e-4 : 0.0;
    h.nesterov = variant == 2;
    const double step = variant == 1 ? 1.0 : 2.0;  // step 1 copies the gradient into the momentum buffer
    const double skip = variant == 4 ? 1.0 : 0.0;
    const char* names[] = {"plain", "momentum, first step", "nesterov + weight decay",
                           "dampening + weight decay", "skipped (non-finite loss)"};
    add<kFast | kSim | kGpu>(
        op("sgd_step", names[variant], {act("param", s), act("grad", s), act("momentum", s)}).tolerance(t),
        [h, lr, step, skip](auto& be, auto& a) {
          auto p = a.x(0), buf = a.x(2);
          auto state =
              Tensor<double>::from_vector({lr, step, skip, 0.0}, {resnet::optim_state::kSize}, a.device());
          a.keep_delta("update", p);
          be.sgd_step(p, a.x(1), buf, state, h);
          if (h.momentum != 0.0) a.result("momentum", buf);
        });
  }
  for (int64_t step : {1, 3, 0}) {
    AdamHyper h;
    const double lr = 1e-3;
    const bool skipped = step == 0;  // the skip flag set: nothing changes (the step is not read)
    add<kFast | kSim | kGpu>(
        op("adamw_step", skipped ? std::string("skipped (non-finite loss)") : "step=" + std::to_string(step),
           {act("param", s), act("grad", s), act("m", s, 0.1), Input{"v", s, Input::Act, 0.01, 0.1, true}})
            .tolerance(t),
        [h, lr, step, skipped](auto& be, auto& a) {
          auto p = a.x(0), m = a.x(2), v = a.x(3);
          auto state = Tensor<double>::from_vector({lr, static_cast<double>(step), skipped ? 1.0 : 0.0, 0.0},
                                                   {resnet::optim_state::kSize}, a.device());
          a.keep_delta("update", p);
          be.adamw_step(p, a.x(1), m, v, state, h);
          a.result("m", m);
          a.result("v", v);
        });
  }
});

}  // namespace
}  // namespace opreg
