// resnet::cuda BatchNorm2d with the fused residual add and ReLU: the contract every backend checks
// (backend/contract/batchnorm.hpp), the CUDA kernels' own index limit, then the launchers of
// kernels/batchnorm.cuh with the process-wide kernel switches; each launch counts the path it took.
// Channels-last input (the contract makes every activation share x's format) takes the NHWC kernels of
// kernels/batchnorm_nhwc.cuh, which have one path (counted as multi-pass: statistics, finalize, apply).
#include "resnet/core/abi.hpp"

#include <atomic>

#include "context.cuh"
#include "kernels/batchnorm.cuh"
#include "kernels/batchnorm_nhwc.cuh"
#include "resnet/backend/contract/batchnorm.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_index_range;
using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

namespace {

std::atomic<uint64_t> path_counts[4];

void count(kernels::BnPath p) { path_counts[static_cast<int>(p)].fetch_add(1, std::memory_order_relaxed); }

kernels::BnOptions bn_options() {
  kernels::BnOptions o;
  o.single_pass = batchnorm_single_pass();
  o.max_cluster = batchnorm_clusters() ? kernels::kMaxCluster : 1;
  o.half_packs = half_packs_enabled();
  return o;
}

kernels::BatchNormShape shape_of(const contract::BatchNormDims& d) {
  return kernels::BatchNormShape{d.N, d.C, d.HW};
}

}  // namespace

BatchNormPathCounts batchnorm_path_counts() {
  BatchNormPathCounts c;
  c.multi_pass = path_counts[static_cast<int>(kernels::BnPath::MultiPass)].load();
  c.single_pass = path_counts[static_cast<int>(kernels::BnPath::SinglePass)].load();
  c.clusters = path_counts[static_cast<int>(kernels::BnPath::Cluster)].load();
  c.half_packs = path_counts[static_cast<int>(kernels::BnPath::HalfPacks)].load();
  return c;
}

template <typename T, typename P>
void batchnorm_forward_training(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                const Tensor<P>& beta, Tensor<P>& running_mean, Tensor<P>& running_var,
                                Tensor<P>& save_mean, Tensor<P>& save_invstd, Tensor<T>& y,
                                const BatchNormParams& bp, Activation act) {
  const char* name = "batch_norm";
  // The contract first, on every backend alike; then whether the tensors are on a CUDA device.
  const kernels::BatchNormShape s = shape_of(contract::batchnorm_forward(
      name, x, residual, gamma, beta, running_mean, running_var, &save_mean, &save_invstd, y, true));
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  check_index_range(name, x);
  const auto env = launch_env(dev);
  if (detail::is_nhwc(x)) {
    void* ws = detail::workspace(dev, kernels::bn_nhwc_forward_workspace_bytes<T>(s, env.sm_count));
    kernels::bn_nhwc_forward_training(x.data(), residual ? residual->data() : static_cast<const T*>(nullptr),
                                      gamma.data(), beta.data(), running_mean.data(), running_var.data(),
                                      save_mean.data(), save_invstd.data(), y.data(), s, bp.eps, bp.momentum,
                                      act == Activation::ReLU, ws, env);
    count(kernels::BnPath::MultiPass);
    return;
  }
  void* ws = detail::workspace(dev, kernels::bn_forward_workspace_bytes<T>(s, env.sm_count));
  count(kernels::bn_forward_training(x.data(), residual ? residual->data() : static_cast<const T*>(nullptr),
                                     gamma.data(), beta.data(), running_mean.data(), running_var.data(),
                                     save_mean.data(), save_invstd.data(), y.data(), s, bp.eps, bp.momentum,
                                     act == Activation::ReLU, ws, env, bn_options()));
}

template <typename T, typename P>
void batchnorm_forward_inference(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                 const Tensor<P>& beta, const Tensor<P>& running_mean,
                                 const Tensor<P>& running_var, Tensor<T>& y, const BatchNormParams& bp,
                                 Activation act) {
  const char* name = "batch_norm";
  const kernels::BatchNormShape s = shape_of(contract::batchnorm_forward(
      name, x, residual, gamma, beta, running_mean, running_var, static_cast<const Tensor<P>*>(nullptr),
      static_cast<const Tensor<P>*>(nullptr), y, false));
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  check_index_range(name, x);
  const auto env = launch_env(dev);
  void* ws = detail::workspace(dev, kernels::bn_inference_workspace_bytes<T>(s));
  if (detail::is_nhwc(x)) {
    kernels::bn_nhwc_forward_inference(x.data(), residual ? residual->data() : static_cast<const T*>(nullptr),
                                       gamma.data(), beta.data(), running_mean.data(), running_var.data(),
                                       y.data(), s, bp.eps, act == Activation::ReLU, ws, env);
    return;
  }
  kernels::bn_forward_inference(x.data(), residual ? residual->data() : static_cast<const T*>(nullptr),
                                gamma.data(), beta.data(), running_mean.data(), running_var.data(), y.data(),
                                s, bp.eps, act == Activation::ReLU, ws, env, half_packs_enabled());
}

template <typename T, typename P>
void batchnorm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<P>& gamma,
                        const Tensor<P>& mean, const Tensor<P>& invstd, bool training, Activation act,
                        Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual, bool dresidual_accumulate,
                        Tensor<P>* dgamma, Tensor<P>* dbeta, bool param_accumulate) {
  const char* name = "batch_norm_backward";
  const bool relu = act == Activation::ReLU;
  const kernels::BatchNormShape s = shape_of(
      contract::batchnorm_backward(name, x, y, dy, gamma, mean, invstd, relu, dx, dresidual, dgamma, dbeta));
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  check_index_range(name, x);
  const auto env = launch_env(dev);
  if (detail::is_nhwc(x)) {
    void* ws = detail::workspace(dev, kernels::bn_nhwc_backward_workspace_bytes<T>(s, env.sm_count));
    kernels::bn_nhwc_backward(x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(),
                              gamma.data(), mean.data(), invstd.data(), training, relu,
                              dx ? dx->data() : static_cast<T*>(nullptr), dx_accumulate,
                              dresidual ? dresidual->data() : static_cast<T*>(nullptr), dresidual_accumulate,
                              dgamma ? dgamma->data() : static_cast<P*>(nullptr),
                              dbeta ? dbeta->data() : static_cast<P*>(nullptr), param_accumulate, s, ws, env);
    count(kernels::BnPath::MultiPass);
    return;
  }
  void* ws = detail::workspace(dev, kernels::bn_backward_workspace_bytes<T>(s, env.sm_count));
  count(kernels::bn_backward(
      x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(), gamma.data(), mean.data(),
      invstd.data(), training, relu, dx ? dx->data() : static_cast<T*>(nullptr), dx_accumulate,
      dresidual ? dresidual->data() : static_cast<T*>(nullptr), dresidual_accumulate,
      dgamma ? dgamma->data() : static_cast<P*>(nullptr), dbeta ? dbeta->data() : static_cast<P*>(nullptr),
      param_accumulate, s, ws, env, bn_options()));
}

#define RESNET_CUDA_BATCHNORM(T, P)                                                                     \
  template void batchnorm_forward_training<T, P>(                                                       \
      const Tensor<T>&, const Tensor<T>*, const Tensor<P>&, const Tensor<P>&, Tensor<P>&, Tensor<P>&,   \
      Tensor<P>&, Tensor<P>&, Tensor<T>&, const BatchNormParams&, Activation);                          \
  template void batchnorm_forward_inference<T, P>(const Tensor<T>&, const Tensor<T>*, const Tensor<P>&, \
                                                  const Tensor<P>&, const Tensor<P>&, const Tensor<P>&, \
                                                  Tensor<T>&, const BatchNormParams&, Activation);      \
  template void batchnorm_backward<T, P>(                                                               \
      const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<P>&, const Tensor<P>&,         \
      const Tensor<P>&, bool, Activation, Tensor<T>*, bool, Tensor<T>*, bool, Tensor<P>*, Tensor<P>*, bool);

RESNET_CUDA_BATCHNORM(float, float)
RESNET_CUDA_BATCHNORM(double, double)
RESNET_CUDA_BATCHNORM(half_t, float)
RESNET_CUDA_BATCHNORM(bf16_t, float)

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
