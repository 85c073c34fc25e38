// Registry entries: softmax and the fused log-softmax + cross-entropy loss, forward and backward; the
// soft-target cross-entropy composed from them.
#include "ops/entry.hpp"

namespace opreg {
namespace {

// Drawn positive values [N, K] made rows of probabilities, in the run's type on its device.
template <typename X>
X distributions(const X& raw) {
  const std::vector<double> v = host_values(raw);
  const int64_t N = raw.dim(0), K = raw.dim(1);
  X t = X::empty(raw.shape());
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += v[n * K + k];
    for (int64_t k = 0; k < K; ++k) {
      using E = std::decay_t<decltype(*t.data())>;
      if constexpr (std::is_same<E, double>::value)
        t.data()[n * K + k] = v[n * K + k] / s;
      else
        t.data()[n * K + k] = static_cast<E>(static_cast<float>(v[n * K + k] / s));
    }
  }
  return t.to(raw.device());
}

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
  // Composed of the ops above (cross_entropy, mul, sum, scale, add), so it runs as they do on every device;
  // the entry runs the public op (forward and its autograd backward) and checks its gradient in double.
  for (Case c : {Case{4, 3, 0.0}, Case{4, 3, 0.1}, Case{5, 1000, 0.1}, Case{3, 17, 0.2}}) {
    const Shape s{c.N, c.K};
    Tolerance t;
    t.f32 = 2e-5;
    t.f16 = 1e-2;
    t.bf16 = 8e-2;
    const double sm = c.smoothing;
    Input targets{"targets", s, Input::Act, 0.1, 1.0, true, false};
    add<kNoSim>(op("soft_cross_entropy",
                   "N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) +
                       " smoothing=" + std::to_string(sm).substr(0, 3),
                   {act("logits", s, 2.0), targets, grad_in("dloss", {}, 1.0, 1.5)})
                    .tolerance(t)
                    .why_no_sim("composed of ops whose kernels have their own entries")
                    .grad([sm](auto& x, auto&, auto&) {
                      return resnet::soft_cross_entropy(x[0], distributions(x[1]), sm);
                    }),
                [sm](auto&, auto& a) {
                  using X = std::decay_t<decltype(a.x(0))>;
                  X x = a.x(0).clone();
                  x.requires_grad_(true);
                  X loss = resnet::soft_cross_entropy(x, distributions(a.x(1)), sm);
                  resnet::mul(loss, a.x(2)).backward();
                  a.result("loss", loss.detach());
                  a.result("dlogits", x.grad());
                });
  }
});

}  // namespace
}  // namespace opreg
