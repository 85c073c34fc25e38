// Registry entries: BatchNorm2d with the fused residual add and ReLU, training and eval, forward and
// backward. On the simulator every entry runs three ways: the multi-pass kernels (the library's default),
// the single pass (one block holds a channel in registers) and thread-block clusters of up to 8 blocks of
// 32 threads on a simulated compute capability 9, so channels of more than 1024 float values spread over
// several blocks.
#include "ops/entry.hpp"

namespace opreg {
namespace {

struct BnCase {
  int64_t N, C, H, W;
  int sm;  // multiprocessors the plan assumes: more gives more splits per channel
};
// Packs of the multi-pass kernels: HW = 16 and 64 take whole vectors for every type, 12 half vectors of
// the 16-bit types, 10 pairs of float, 49 and 15 single values. Every case fits the single pass in float;
// the last one (4410 values a channel) takes its 32-values-a-thread kernel and, in clusters, 5 blocks.
const std::vector<BnCase> kCases{{2, 3, 4, 4, 1},  {3, 4, 7, 7, 1},     {4, 2, 8, 8, 64},
                                 {2, 5, 5, 3, 16}, {16, 2, 16, 16, 32}, {1, 3, 2, 2, 1},
                                 {3, 2, 3, 4, 4},  {2, 3, 2, 5, 4},     {90, 2, 7, 7, 8}};

std::vector<SimDevice> bn_devices(int sm) {
  return {{"multi-pass, " + std::to_string(sm) + " SMs", sm, 0, kBnDefault},
          {"single pass, " + std::to_string(sm) + " SMs", sm, 0, kBnSinglePass},
          {"clusters of 32-thread blocks, cc 9, " + std::to_string(sm) + " SMs", sm, 9, kBnClusters}};
}

std::string shape_text(const BnCase& c) {
  return "x=[" + std::to_string(c.N) + ", " + std::to_string(c.C) + ", " + std::to_string(c.H) + ", " +
         std::to_string(c.W) + "]";
}

// The tolerances of a fused BatchNorm: the statistics sum N * H * W values, the backward's coefficients
// subtract sums of similar size (20x the elementwise bounds, as the kernels' own tests always allowed).
Tolerance bn_tolerance(double mean_offset) {
  Tolerance t;
  t.f64 = 1e-10;
  t.f32 = 4e-5 * (1.0 + mean_offset / 100.0);
  t.f16 = 4e-2;
  t.bf16 = 3e-1;
  return t;
}

const BatchNormParams kBp{1e-5, 0.1};

Registrar batchnorm([] {
  // Training: forward (statistics, running statistics, y) then backward (dx, dresidual, dgamma, dbeta).
  for (size_t ci = 0; ci < kCases.size(); ++ci) {
    const BnCase& c = kCases[ci];
    const Shape s{c.N, c.C, c.H, c.W}, cs{c.C};
    for (int variant = 0; variant < 3; ++variant) {
      const bool residual = variant != 1, relu = variant != 2;
      // A large mean with a small spread on some cases: a sum of squares minus a squared sum would lose it.
      const double offset = (variant == 2 && ci % 3 == 0) ? 300.0 : 0.0;
      std::vector<Input> in{act("x", s, 2.0, offset),     grad_in("dy", s),
                            param("gamma", cs, 0.3, 1.0), param("beta", cs),
                            param("running_mean", cs),    positive_param("running_var", cs, 1.0)};
      if (residual) in.push_back(act("residual", s));
      in[4].differentiable = in[5].differentiable = false;  // buffers, not inputs of the gradient
      const std::string ps = shape_text(c) + (residual ? " +residual" : "") + (relu ? " +relu" : "") +
                             (offset > 0 ? " mean=300" : "");
      const Activation a_fn = relu ? Activation::ReLU : Activation::None;
      add<kAll>(op("batch_norm (training)", ps, in)
                    .accumulating()
                    .tolerance(bn_tolerance(offset))
                    .devices(bn_devices(c.sm))
                    .grad([residual, a_fn](auto& x, auto& p, auto&) {
                      Tensor<double> rm = p[2].clone(), rv = p[3].clone();  // the check re-runs the forward
                      return resnet::batch_norm(x[0], residual ? x[2] : Tensor<double>(), p[0], p[1], rm, rv,
                                                true, kBp, a_fn);
                    }),
                [residual, a_fn, cs](auto& be, auto& a) {
                  auto y = a.out("y", a.x(0).shape());
                  auto mean = a.out_p("saved mean", cs), invstd = a.out_p("saved invstd", cs);
                  be.batchnorm_forward_training(a.x(0), opt(residual, a.x(residual ? 2 : 0)), a.p(0), a.p(1),
                                                a.p(2), a.p(3), mean, invstd, y, kBp, a_fn);
                  a.keep_p("running_mean", 2);
                  a.keep_p("running_var", 3);
                  auto dx = a.out("dx", a.x(0).shape());
                  decltype(dx) dres;  // only asked for (and only compared) with a residual
                  if (residual) dres = a.out("dresidual", a.x(0).shape());
                  auto dgamma = a.out_p("dgamma", cs), dbeta = a.out_p("dbeta", cs);
                  be.batchnorm_backward(a.x(0), y, a.x(1), a.p(0), mean, invstd, true, a_fn, &dx, a.acc,
                                        residual ? &dres : nullptr, a.acc, &dgamma, &dbeta, a.acc);
                });
    }
  }
  // Eval: the running statistics normalise; the backward's coefficients are constants.
  for (size_t ci : {0, 2, 3, 6}) {
    const BnCase& c = kCases[ci];
    const Shape s{c.N, c.C, c.H, c.W}, cs{c.C};
    for (bool residual : {false, true}) {
      std::vector<Input> in{
          act("x", s),       grad_in("dy", s),          param("gamma", cs, 0.3, 1.0),
          param("beta", cs), param("running_mean", cs), positive_param("running_var", cs, 0.1)};
      if (residual) in.push_back(act("residual", s));
      in[4].differentiable = in[5].differentiable = false;
      add<kAll>(op("batch_norm (eval)", shape_text(c) + (residual ? " +residual" : "") + " +relu", in)
                    .accumulating()
                    .tolerance(bn_tolerance(0))
                    .devices({{"eval, " + std::to_string(c.sm) + " SMs", c.sm, 0, kBnDefault}})
                    .grad([residual](auto& x, auto& p, auto&) {
                      Tensor<double> rm = p[2], rv = p[3];
                      return resnet::batch_norm(x[0], residual ? x[2] : Tensor<double>(), p[0], p[1], rm, rv,
                                                false, kBp, Activation::ReLU);
                    }),
                [residual, cs](auto& be, auto& a) {
                  auto y = a.out("y", a.x(0).shape());
                  be.batchnorm_forward_inference(a.x(0), opt(residual, a.x(residual ? 2 : 0)), a.p(0), a.p(1),
                                                 a.p(2), a.p(3), y, kBp, Activation::ReLU);
                });
    }
  }
  // The backward on its own, for the flag combinations the tape asks for (which gradients, which
  // accumulate), in training and in eval, given x, y, the saved statistics and dy.
  struct Flags {
    const char* name;
    bool training, relu, dx, dres, params;
  };
  const Flags flags[] = {{"block tail: dx, dresidual, params", true, true, true, true, true},
                         {"BN + ReLU head: dx, params", true, true, true, false, true},
                         {"plain BN: dx, params", true, false, true, false, true},
                         {"dresidual only", true, true, false, true, false},
                         {"no dx", true, true, false, true, true},
                         {"eval: dx, dresidual, params", false, true, true, true, true},
                         {"eval: dx only", false, false, true, false, false}};
  for (size_t ci : {0, 1, 3, 6, 8})
    for (const Flags& f : flags) {
      const BnCase& c = kCases[ci];
      const Shape s{c.N, c.C, c.H, c.W}, cs{c.C};
      add<kSim | kGpu | kFast | k16>(
          op("batch_norm_backward", shape_text(c) + " " + f.name,
             {act("x", s, 1.5, 0.5), act("y", s), grad_in("dy", s), param("gamma", cs),
              param("mean", cs, 1.0, 0.5), positive_param("invstd", cs, 0.2)})
              .accumulating()
              .tolerance(bn_tolerance(0))
              .devices(bn_devices(c.sm)),
          [f, cs](auto& be, auto& a) {
            // Only the gradients asked for are outputs (and compared).
            decltype(a.out("", {})) dx, dres;
            decltype(a.out_p("", {})) dgamma, dbeta;
            if (f.dx) dx = a.out("dx", a.x(0).shape());
            if (f.dres) dres = a.out("dresidual", a.x(0).shape());
            if (f.params) {
              dgamma = a.out_p("dgamma", cs);
              dbeta = a.out_p("dbeta", cs);
            }
            be.batchnorm_backward(a.x(0), a.x(1), a.x(2), a.p(0), a.p(1), a.p(2), f.training,
                                  f.relu ? Activation::ReLU : Activation::None, f.dx ? &dx : nullptr, a.acc,
                                  f.dres ? &dres : nullptr, a.acc, f.params ? &dgamma : nullptr,
                                  f.params ? &dbeta : nullptr, a.acc);
          });
    }
});

}  // namespace
}  // namespace opreg
