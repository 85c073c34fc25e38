// Registry entries: softmax and the fused log-softmax + cross-entropy loss, forward and backward.
#include "ops/entry.hpp"

namespace opreg {
namespace {

Registrar losses([] {
  for (int64_t K : {2, 10, 1000}) {
    const Shape s{3, K};
    Tolerance t;
    t.f32 = 1e-5;
    // dx = y * (dy - sum(dy * y)) cancels where the probabilities are unequal: in 16-bit storage the
    // rounding of y (the forward's output, stored as T) is amplified several times.
    t.f16 = 1.5e-2;
    t.bf16 = 8e-2;
    add<kAll>(op("softmax", "K=" + std::to_string(K), {act("x", s), grad_in("dy", s)})
                  .accumulating()
                  .tolerance(t)
                  .grad([](auto& x, auto&, auto&) { return resnet::softmax(x[0]); }),
              [](auto& be, auto& a) {
                auto y = a.out("y", a.x(0).shape());
                be.softmax_forward(a.x(0), y);
                auto dx = a.out("dx", a.x(0).shape());
                be.softmax_backward(y, a.x(1), dx, a.acc);
              });
  }
  struct Case {
    int64_t N, K;
    double smoothing;
  };
  for (Case c :
       {Case{4, 2, 0.0}, Case{4, 2, 0.1}, Case{5, 1000, 0.0}, Case{5, 1000, 0.1}, Case{3, 17, 0.1}}) {
    const Shape s{c.N, c.K};
    Tolerance t;
    t.f32 = 1e-5;
    t.f16 = 8e-3;
    t.bf16 = 6e-2;
    const double sm = c.smoothing;
    add<kAll>(op("cross_entropy",
                 "N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) +
                     " smoothing=" + std::to_string(sm).substr(0, 3),
                 {act("logits", s, 2.0), labels("labels", c.N, static_cast<int32_t>(c.K)),
                  grad_in("dloss", {}, 1.0, 1.5)})
                  .accumulating()
                  .tolerance(t)
                  .grad([sm](auto& x, auto&, auto& l) { return resnet::cross_entropy(x[0], l[0], sm); }),
              [sm](auto& be, auto& a) {
                auto loss = a.out("loss", Shape{});
                auto probs = a.out("probs", a.x(0).shape());
                be.cross_entropy_forward(a.x(0), a.labels(0), sm, loss, probs);
                auto dx = a.out("dlogits", a.x(0).shape());
                be.cross_entropy_backward(probs, a.labels(0), sm, a.x(1), dx, a.acc);
              });
  }
});

}  // namespace
}  // namespace opreg
