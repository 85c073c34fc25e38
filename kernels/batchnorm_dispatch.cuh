// BatchNorm2d's launchers: plan (batchnorm_plan.cuh), then run the planned path, falling back to the
// multi-pass kernels when a cluster does not fit the device. Each returns the path that ran, so tests and
// the library's counters (cuda::batchnorm_path_counts) can tell which kernels did the work.
#pragma once

#include "resnet/core/abi.hpp"
#include "batchnorm_cluster.cuh"
#include "batchnorm_multipass.cuh"
#include "batchnorm_plan.cuh"
#include "batchnorm_single_pass.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

// Workspace of a training forward or a backward, whichever path runs.
template <typename T>
size_t bn_forward_workspace_bytes(const BatchNormShape& s, int sm_count) {
  const size_t multi = bn_multipass_forward_workspace_bytes<T>(s, sm_count),
               cl = bn_cluster_workspace_bytes<T>(s);
  return multi > cl ? multi : cl;
}
template <typename T>
size_t bn_backward_workspace_bytes(const BatchNormShape& s, int sm_count) {
  const size_t multi = bn_multipass_backward_workspace_bytes<T>(s, sm_count),
               cl = bn_cluster_workspace_bytes<T>(s);
  return multi > cl ? multi : cl;
}

// Training forward. workspace: bn_forward_workspace_bytes<T>(s, env.sm_count) bytes.
template <typename T, typename P>
BnPath bn_forward_training(const T* x, const T* r, const P* gamma, const P* beta, P* running_mean,
                           P* running_var, P* save_mean, P* save_invstd, T* y, const BatchNormShape& s,
                           double eps, double momentum, bool relu_on, void* workspace, const LaunchEnv& env,
                           const BnOptions& opt = {}) {
  const BnPlan p = bn_plan<T>(s, opt, env);
  if (p.path == BnPath::SinglePass &&
      bn_forward_training_single(x, r, gamma, beta, running_mean, running_var, save_mean, save_invstd, y, s,
                                 eps, momentum, relu_on, p, env))
    return BnPath::SinglePass;
  if (p.path == BnPath::Cluster &&
      bn_forward_training_cluster(x, r, gamma, beta, running_mean, running_var, save_mean, save_invstd, y, s,
                                  eps, momentum, relu_on, p, workspace, env))
    return BnPath::Cluster;
  bn_forward_training_multipass(x, r, gamma, beta, running_mean, running_var, save_mean, save_invstd, y, s,
                                eps, momentum, relu_on, workspace, env, opt.half_packs);
  return opt.half_packs && bn_wants_half_packs<T>(s.HW) ? BnPath::HalfPacks : BnPath::MultiPass;
}

// Backward; any of dx, dres, dgamma, dbeta may be null. y is read only when relu_on. workspace:
// bn_backward_workspace_bytes<T>(s, env.sm_count) bytes. Returns the path that ran (MultiPass when there
// was nothing to do).
template <typename T, typename P>
BnPath bn_backward(const T* x, const T* y, const T* dy, const P* gamma, const P* mean, const P* invstd,
                   bool training, bool relu_on, T* dx, bool dx_acc, T* dres, bool dres_acc, P* dgamma,
                   P* dbeta, bool param_acc, const BatchNormShape& s, void* workspace, const LaunchEnv& env,
                   const BnOptions& opt = {}) {
  if (!dx && !(training || dgamma || dbeta || dres)) return BnPath::MultiPass;
  const BnPlan p = bn_plan<T>(s, opt, env);
  if (p.path == BnPath::SinglePass &&
      bn_backward_single(x, y, dy, gamma, mean, invstd, training, relu_on, dx, dx_acc, dres, dres_acc, dgamma,
                         dbeta, param_acc, s, p, env))
    return BnPath::SinglePass;
  if (p.path == BnPath::Cluster &&
      bn_backward_cluster(x, y, dy, gamma, mean, invstd, training, relu_on, dx, dx_acc, dres, dres_acc,
                          dgamma, dbeta, param_acc, s, p, workspace, env))
    return BnPath::Cluster;
  bn_backward_multipass(x, y, dy, gamma, mean, invstd, training, relu_on, dx, dx_acc, dres, dres_acc, dgamma,
                        dbeta, param_acc, s, workspace, env, opt.half_packs);
  return opt.half_packs && bn_wants_half_packs<T>(s.HW) ? BnPath::HalfPacks : BnPath::MultiPass;
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
