// Registry entries: SyncBatchNorm's split pieces (backend/cpu/batchnorm_sync.hpp, kernels/batchnorm_sync.cuh)
// in a simulated world of two ranks: the batch's first and second halves are two ranks' shares, their
// statistics are gathered and merged, the backward's sums of both halves are added (the all-reduce), and
// the outputs are those of one BatchNorm over the whole batch. Grad mode checks the autograd op
// (dist::sync_batch_norm in a world of one) against central differences.
#include "ops/entry.hpp"
#include "resnet/dist/data_parallel.hpp"

namespace opreg {
namespace {

struct SyncCase {
  int64_t N, C, H, W;
};
const std::vector<SyncCase> kSyncCases{{2, 3, 4, 4}, {3, 4, 7, 7}, {4, 2, 5, 3}, {5, 3, 2, 2}};

Tolerance sync_tolerance(double offset) {
  Tolerance t;
  t.f64 = 1e-10;
  t.f32 = 4e-5 * (1.0 + offset / 100.0);
  t.f16 = 4e-2;
  t.bf16 = 3e-1;
  return t;
}

const BatchNormParams kSyncBp{1e-5, 0.1};

// Rows [begin, end) of an NCHW tensor: a view (rows are contiguous).
template <typename T>
Tensor<T> rows(const Tensor<T>& t, int64_t begin, int64_t end) {
  const int64_t per = t.numel() / t.dim(0);
  return Tensor<T>(t.view_at(begin * per, Shape{end - begin, t.dim(1), t.dim(2), t.dim(3)}));
}

Registrar batchnorm_sync([] {
  for (size_t ci = 0; ci < kSyncCases.size(); ++ci) {
    const SyncCase& c = kSyncCases[ci];
    const Shape s{c.N, c.C, c.H, c.W}, cs{c.C};
    for (int variant = 0; variant < 3; ++variant) {
      const bool residual = variant != 1, relu = variant != 2;
      const double offset = (variant == 2 && ci % 2 == 0) ? 300.0 : 0.0;  // large mean, small spread
      std::vector<Input> in{act("x", s, 2.0, offset),     grad_in("dy", s),
                            param("gamma", cs, 0.3, 1.0), param("beta", cs),
                            param("running_mean", cs),    positive_param("running_var", cs, 1.0)};
      if (residual) in.push_back(act("residual", s));
      in[4].differentiable = in[5].differentiable = false;
      const std::string ps = "x=[" + std::to_string(c.N) + ", " + std::to_string(c.C) + ", " +
                             std::to_string(c.H) + ", " + std::to_string(c.W) + "] 2 ranks" +
                             (residual ? " +residual" : "") + (relu ? " +relu" : "") +
                             (offset > 0 ? " mean=300" : "");
      const Activation a_fn = relu ? Activation::ReLU : Activation::None;
      add<kAll>(
          op("sync_batch_norm (training)", ps, in)
              .accumulating()
              .tolerance(sync_tolerance(offset))
              .devices({{"one block a channel", 4, 0, kBnDefault}})
              .grad([residual, a_fn](auto& x, auto& p, auto&) {
                Tensor<double> rm = p[2].clone(), rv = p[3].clone();
                return resnet::dist::sync_batch_norm(x[0], residual ? x[2] : Tensor<double>(), p[0], p[1], rm,
                                                     rv, kSyncBp, a_fn, resnet::dist::single_process_group());
              }),
          [residual, a_fn, cs](auto& be, auto& a) {
            const auto& x = a.x(0);
            const auto& dy = a.x(1);
            const resnet::Device dev = x.device();
            const int64_t N = x.dim(0), C = x.dim(1), half = N / 2;
            // Rank 0 holds rows [0, half), rank 1 the rest: statistics, gathered, merged.
            Tensor<double> s0 = Tensor<double>::empty({3, C}, dev), s1 = Tensor<double>::empty({3, C}, dev);
            be.batchnorm_sync_stats(rows(x, 0, half), s0);
            be.batchnorm_sync_stats(rows(x, half, N), s1);
            Tensor<double> g = Tensor<double>::empty({2, 3, C}, dev);
            resnet::TensorBase g0 = g.view_at(0, {3, C});
            resnet::TensorBase g1 = g.view_at(3 * C, {3, C});
            copy_into(g0, s0);
            copy_into(g1, s1);
            auto mean = a.out_p("saved mean", cs), invstd = a.out_p("saved invstd", cs);
            auto var = a.out_p("variance", cs);
            Tensor<double> count = Tensor<double>::empty({1}, dev);
            be.batchnorm_sync_combine(g, mean, invstd, var, a.p(2), a.p(3), count, kSyncBp);
            a.keep_p("running_mean", 2);
            a.keep_p("running_var", 3);
            auto y = a.out("y", x.shape());
            be.batchnorm_forward_inference(x, opt(residual, a.x(residual ? 2 : 0)), a.p(0), a.p(1), mean, var,
                                           y, kSyncBp, a_fn);
            // Backward: each half's sums (dgamma, dbeta from both), added, then dx over the batch.
            auto dgamma = a.out_p("dgamma", cs), dbeta = a.out_p("dbeta", cs);
            Tensor<double> u0 = Tensor<double>::empty({2, C}, dev), u1 = Tensor<double>::empty({2, C}, dev);
            be.batchnorm_sync_backward_reduce(rows(x, 0, half), rows(y, 0, half), rows(dy, 0, half), mean,
                                              invstd, a_fn, u0, &dgamma, &dbeta, a.acc);
            be.batchnorm_sync_backward_reduce(rows(x, half, N), rows(y, half, N), rows(dy, half, N), mean,
                                              invstd, a_fn, u1, &dgamma, &dbeta, true);
            be.add_inplace(u0, u1);
            auto dx = a.out("dx", x.shape());
            decltype(dx) dres;
            if (residual) dres = a.out("dresidual", x.shape());
            be.batchnorm_sync_backward_apply(x, y, dy, a.p(0), mean, invstd, u0, count, a_fn, &dx, a.acc,
                                             residual ? &dres : nullptr, a.acc);
          });
    }
  }
});

}  // namespace
}  // namespace opreg
