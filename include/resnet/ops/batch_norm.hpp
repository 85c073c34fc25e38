// batch_norm with autograd, with the residual add and ReLU fused in when asked:
//   y = act(BN(x) [+ residual])
// BN parameters and statistics have type P = acc_t<T> (float for 16-bit activations).
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>

#include "resnet/ops/elementwise.hpp"

namespace resnet {
inline namespace RESNET_ABI {

template <typename T, typename P>
Tensor<T> batch_norm(const Tensor<T>& x_in, const Tensor<T>& residual_in, const Tensor<P>& gamma,
                     const Tensor<P>& beta, Tensor<P>& running_mean, Tensor<P>& running_var, bool training,
                     const BatchNormParams& bp, Activation act = Activation::None) {
  const char* op = "batch_norm";
  check_rank(op, x_in, 4, "input [N, C, H, W]");
  check_not_empty(op, x_in, "input");
  const int64_t C = x_in.dim(1);
  RESNET_CHECK(
      gamma.numel() == C && beta.numel() == C && running_mean.numel() == C && running_var.numel() == C, op,
      ": input ", x_in.shape(), " has ", C, " channels but the layer has ", gamma.numel(), " (weight ",
      gamma.shape(), ", running_mean ", running_mean.shape(), ")");
  check_same_device(op, x_in, gamma);
  if (residual_in.defined()) {
    RESNET_CHECK(residual_in.shape() == x_in.shape(), op, ": residual shape ", residual_in.shape(),
                 " does not match input shape ", x_in.shape());
    check_same_device(op, x_in, residual_in);
  }
  if (training)
    RESNET_CHECK(x_in.dim(0) * x_in.dim(2) * x_in.dim(3) > 1, op,
                 ": training needs more than one value per channel, got input ", x_in.shape());

  Tensor<T> x = detail::prepare(op, x_in);
  const MemoryFormat f = detail::op_format(x);  // the output, residual and gradients take x's format
  Tensor<T> r = residual_in.defined() ? detail::prepare_as(op, residual_in, f, "residual") : Tensor<T>();
  Tensor<T> y = Tensor<T>::empty(x.shape(), x.device(), f);
  Tensor<P> mean, invstd;
  const Tensor<T>* rp = r.defined() ? &r : nullptr;
  if (training) {
    mean = Tensor<P>::empty({C}, x.device());
    invstd = Tensor<P>::empty({C}, x.device());
    RESNET_DISPATCH(x.device(), batchnorm_forward_training, x, rp, gamma, beta, running_mean, running_var,
                    mean, invstd, y, bp, act);
  } else {
    RESNET_DISPATCH(x.device(), batchnorm_forward_inference, x, rp, gamma, beta, running_mean, running_var, y,
                    bp, act);
  }
  bool recording =
      autograd::grad_enabled() && (autograd::needs_grad(x_in) || autograd::needs_grad(residual_in) ||
                                   autograd::needs_grad(gamma) || autograd::needs_grad(beta));
  if (!recording) return y;
  if (!training) {
    // Eval-mode backward uses the running statistics as they are now (copied: training may update them),
    // computed on their device: nothing is read on the host.
    mean = running_mean.clone();
    invstd = Tensor<P>::empty({C}, running_var.device());
    RESNET_DISPATCH(running_var.device(), bn_running_invstd, running_var, bp.eps, invstd);
  }
  Tensor<T> sx = x.detach();
  Tensor<T> sy = act == Activation::ReLU ? y.detach() : Tensor<T>();
  Tensor<P> sg = gamma.detach();
  autograd::record(act == Activation::ReLU ? (r.defined() ? "batch_norm_add_relu" : "batch_norm_relu")
                                           : (r.defined() ? "batch_norm_add" : "batch_norm"),
                   {x_in, residual_in, gamma, beta}, y,
                   [sx, sy, sg, mean, invstd, training, act, f](autograd::BackwardContext& ctx) {
                     Tensor<T> dy = detail::grad_in<T>(ctx, f);
                     auto gx = detail::grad_out<T>(ctx, 0, f), gr = detail::grad_out<T>(ctx, 1, f);
                     Tensor<T> dx = gx.t, dr = gr.t;
                     Tensor<P> dg, db;
                     bool dx_acc = gx.acc, dr_acc = gr.acc, dg_acc = false, db_acc = false;
                     if (ctx.needs(2)) dg = ctx.grad_slot<P>(2, &dg_acc);
                     if (ctx.needs(3)) db = ctx.grad_slot<P>(3, &db_acc);
                     // gamma and beta share one accumulate flag in the backend; fall back to a temporary
                     // when they differ (only if one of them was zeroed and the other not).
                     Tensor<P> db_tmp;
                     bool param_acc = dg.defined() ? dg_acc : db_acc;
                     Tensor<P>* db_ptr = db.defined() ? &db : nullptr;
                     if (dg.defined() && db.defined() && dg_acc != db_acc) {
                       db_tmp = Tensor<P>::empty(db.shape(), db.device());
                       db_ptr = &db_tmp;
                     }
                     RESNET_DISPATCH(dy.device(), batchnorm_backward, sx, sy, dy, sg, mean, invstd, training,
                                     act, dx.defined() ? &dx : nullptr, dx_acc, dr.defined() ? &dr : nullptr,
                                     dr_acc, dg.defined() ? &dg : nullptr, db_ptr, param_acc);
                     gx.finish();
                     gr.finish();
                     if (db_tmp.defined()) {
                       if (db_acc)
                         backend::add_inplace_any(db, db_tmp);
                       else
                         copy_into(db, db_tmp);
                     }
                   });
  return y;
}

}  // namespace RESNET_ABI
}  // namespace resnet
