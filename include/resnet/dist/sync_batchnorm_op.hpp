// sync_batch_norm: batch_norm in training mode with the statistics of the whole global batch, over the
// ranks of a ProcessGroup, the residual add and ReLU fused as in batch_norm:
//   y = act(gamma * (x - mean) * invstd + beta [+ residual]),  mean, var over every rank's x.
// Forward: this rank's per-channel (count, mean, M2) are all-gathered and merged pairwise in rank order
// (backend/batchnorm_sync_math.hpp), so every rank normalises with the same statistics and updates its
// running statistics identically (unbiased variance of the global batch). Backward: sum(dz) and
// sum(dz * (x - mean)) are all-reduced before dx is formed; dgamma and dbeta are this rank's (the
// data-parallel wrapper averages them like every other parameter gradient). Every rank must call it in
// the same order, with the same channel count; batch sizes may differ.
// The pieces compute on row-major NCHW; channels-last input is converted first (y is row-major).
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>

#include "resnet/backend/batchnorm_sync_math.hpp"
#include "resnet/backend/cpu/api.hpp"
#include "resnet/dist/process_group.hpp"
#include "resnet/ops/elementwise.hpp"

#if RESNET_WITH_CUDA
#include "resnet/backend/cuda/batchnorm_sync.hpp"
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

namespace detail {
template <typename T>
Tensor<T> row_major(const char* op, const Tensor<T>& x, const char* what) {
  RESNET_CHECK(x.defined(), op, ": ", what, " is an undefined tensor");
  return x.is_contiguous() ? x : x.contiguous();
}
}  // namespace detail

template <typename T, typename P>
Tensor<T> sync_batch_norm(const Tensor<T>& x_in, const Tensor<T>& residual_in, const Tensor<P>& gamma,
                          const Tensor<P>& beta, Tensor<P>& running_mean, Tensor<P>& running_var,
                          const BatchNormParams& bp, Activation act,
                          const std::shared_ptr<ProcessGroup>& group) {
  const char* op = "sync_batch_norm";
  RESNET_CHECK(group != nullptr, op, ": null process group");
  check_rank(op, x_in, 4, "input [N, C, H, W]");
  check_not_empty(op, x_in, "input");
  const int64_t C = x_in.dim(1);
  RESNET_CHECK(
      gamma.numel() == C && beta.numel() == C && running_mean.numel() == C && running_var.numel() == C, op,
      ": input ", x_in.shape(), " has ", C, " channels but the layer has ", gamma.numel());
  check_same_device(op, x_in, gamma);
  RESNET_CHECK(x_in.device() == group->device(), op, ": input ", x_in.describe(), " is not on the ",
               group->backend_name(), " group's device ", group->device().to_string(), " (rank ",
               group->rank(), ")");
  if (residual_in.defined()) {
    RESNET_CHECK(residual_in.shape() == x_in.shape(), op, ": residual shape ", residual_in.shape(),
                 " does not match input shape ", x_in.shape());
    check_same_device(op, x_in, residual_in);
  }
  RESNET_CHECK(x_in.dim(0) * x_in.dim(2) * x_in.dim(3) > 1, op,
               ": training needs more than one value per channel on every rank, got input ", x_in.shape(),
               " on rank ", group->rank());

  const Tensor<T> x = detail::row_major(op, x_in, "input");
  const Tensor<T> r = residual_in.defined() ? detail::row_major(op, residual_in, "residual") : Tensor<T>();
  const Device dev = x.device();
  const int64_t world = group->size();

  // Statistics: this rank's, everyone's, merged.
  Tensor<double> stats = Tensor<double>::empty({bn::kStatRows, C}, dev);
  RESNET_DISPATCH(dev, batchnorm_sync_stats, x, stats);
  Tensor<double> gathered = Tensor<double>::empty({world, bn::kStatRows, C}, dev);
  group->all_gather(stats, gathered);
  Tensor<P> mean = Tensor<P>::empty({C}, dev), invstd = Tensor<P>::empty({C}, dev),
            var = Tensor<P>::empty({C}, dev);
  Tensor<double> count = Tensor<double>::empty({1}, dev);
  RESNET_DISPATCH(dev, batchnorm_sync_combine, gathered, mean, invstd, var, running_mean, running_var, count,
                  bp);

  // Normalise with the global statistics: the inference path with them in place of the running ones.
  Tensor<T> y = Tensor<T>::empty(x.shape(), dev);
  const Tensor<T>* rp = r.defined() ? &r : nullptr;
  RESNET_DISPATCH(dev, batchnorm_forward_inference, x, rp, gamma, beta, mean, var, y, bp, act);

  const bool recording =
      autograd::grad_enabled() && (autograd::needs_grad(x_in) || autograd::needs_grad(residual_in) ||
                                   autograd::needs_grad(gamma) || autograd::needs_grad(beta));
  if (!recording) return y;
  Tensor<T> sx = x.detach();
  Tensor<T> sy = act == Activation::ReLU ? y.detach() : Tensor<T>();
  Tensor<P> sg = gamma.detach();
  std::shared_ptr<ProcessGroup> g = group;
  autograd::record(
      act == Activation::ReLU ? (r.defined() ? "sync_batch_norm_add_relu" : "sync_batch_norm_relu")
                              : (r.defined() ? "sync_batch_norm_add" : "sync_batch_norm"),
      {x_in, residual_in, gamma, beta}, y,
      [sx, sy, sg, mean, invstd, count, act, g](autograd::BackwardContext& ctx) {
        Tensor<T> dy = ctx.grad_output_as<T>();
        const Device d = dy.device();
        Tensor<T> dx, dr;
        Tensor<P> dg, db;
        bool dx_acc = false, dr_acc = false, dg_acc = false, db_acc = false;
        if (ctx.needs(0)) dx = ctx.grad_slot<T>(0, &dx_acc);
        if (ctx.needs(1)) dr = ctx.grad_slot<T>(1, &dr_acc);
        if (ctx.needs(2)) dg = ctx.grad_slot<P>(2, &dg_acc);
        if (ctx.needs(3)) db = ctx.grad_slot<P>(3, &db_acc);
        // gamma and beta share one accumulate flag (as in batch_norm): a temporary when not.
        Tensor<P> db_tmp;
        const bool param_acc = dg.defined() ? dg_acc : db_acc;
        Tensor<P>* db_ptr = db.defined() ? &db : nullptr;
        if (dg.defined() && db.defined() && dg_acc != db_acc) {
          db_tmp = Tensor<P>::empty(db.shape(), d);
          db_ptr = &db_tmp;
        }
        Tensor<double> sums = Tensor<double>::empty({bn::kSumRows, sx.dim(1)}, d);
        RESNET_DISPATCH(d, batchnorm_sync_backward_reduce, sx, sy, dy, mean, invstd, act, sums,
                        dg.defined() ? &dg : nullptr, db_ptr, param_acc);
        if (db_tmp.defined()) {
          if (db_acc)
            backend::add_inplace_any(db, db_tmp);
          else
            copy_into(db, db_tmp);
        }
        // Every rank reduces, needed or not: the peers wait for it.
        TensorBase sums_base = sums;
        g->all_reduce(sums_base, ReduceOp::Sum);
        if (dx.defined() || dr.defined())
          RESNET_DISPATCH(d, batchnorm_sync_backward_apply, sx, sy, dy, sg, mean, invstd, sums, count, act,
                          dx.defined() ? &dx : nullptr, dx_acc, dr.defined() ? &dr : nullptr, dr_acc);
      });
  return y;
}

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
