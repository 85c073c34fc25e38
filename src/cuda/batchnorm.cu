// resnet::cuda BatchNorm2d with the fused residual add and ReLU: checks as in the CPU backend, then the
// kernels of kernels/batchnorm.cuh (statistics, finalize, apply; backward reduce, finalize, apply).
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "kernels/batchnorm.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_tensor;
using detail::check_index_range;
using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

namespace {

template <typename T, typename P>
kernels::BatchNormShape check_bn(const char* op, const Tensor<T>& x, const Tensor<P>& gamma,
                                 const Tensor<P>& beta, const Tensor<T>& y, int dev) {
  check_rank(op, x, 4, "input");
  RESNET_CHECK(gamma.numel() == x.dim(1) && beta.numel() == x.dim(1), op, ": input ", x.shape(), " has ",
               x.dim(1), " channels but weight/bias have ", gamma.numel(), "/", beta.numel());
  check_same_shape(op, x, y);
  check_cuda_tensor(op, x, dev, "input");
  check_cuda_tensor(op, y, dev, "output");
  check_cuda_tensor(op, gamma, dev, "weight");
  check_cuda_tensor(op, beta, dev, "bias");
  check_index_range(op, x);
  return kernels::BatchNormShape{x.dim(0), x.dim(1), x.dim(2) * x.dim(3)};
}

kernels::BnOptions bn_options() {
  kernels::BnOptions o;
  o.single_pass = batchnorm_single_pass();
  o.max_cluster = batchnorm_clusters() ? kernels::kMaxCluster : 1;
  return o;
}

template <typename P>
void check_channels(const char* op, const Tensor<P>& t, int64_t C, int dev, const char* what) {
  RESNET_CHECK(t.numel() == C, op, ": ", what, " has ", t.numel(), " elements for ", C, " channels");
  check_cuda_tensor(op, t, dev, what);
}

}  // namespace

template <typename T, typename P>
void batchnorm_forward_training(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                const Tensor<P>& beta, Tensor<P>& running_mean, Tensor<P>& running_var,
                                Tensor<P>& save_mean, Tensor<P>& save_invstd, Tensor<T>& y,
                                const BatchNormParams& bp, Activation act) {
  const char* name = "batch_norm";
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  const kernels::BatchNormShape s = check_bn(name, x, gamma, beta, y, dev);
  RESNET_CHECK(s.N * s.HW > 1, name, ": training needs more than one value per channel, input ", x.shape());
  if (residual) {
    check_same_shape("batch_norm (residual)", x, *residual);
    check_cuda_tensor(name, *residual, dev, "residual");
  }
  check_channels(name, running_mean, s.C, dev, "running_mean");
  check_channels(name, running_var, s.C, dev, "running_var");
  check_channels(name, save_mean, s.C, dev, "saved mean");
  check_channels(name, save_invstd, s.C, dev, "saved invstd");
  const auto env = launch_env(dev);
  void* ws = detail::workspace(dev, kernels::bn_forward_workspace_bytes<T>(s, env.sm_count));
  kernels::bn_forward_training(x.data(), residual ? residual->data() : static_cast<const T*>(nullptr),
                               gamma.data(), beta.data(), running_mean.data(), running_var.data(),
                               save_mean.data(), save_invstd.data(), y.data(), s, bp.eps, bp.momentum,
                               act == Activation::ReLU, ws, env, bn_options());
}

template <typename T, typename P>
void batchnorm_forward_inference(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                 const Tensor<P>& beta, const Tensor<P>& running_mean,
                                 const Tensor<P>& running_var, Tensor<T>& y, const BatchNormParams& bp,
                                 Activation act) {
  const char* name = "batch_norm";
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  const kernels::BatchNormShape s = check_bn(name, x, gamma, beta, y, dev);
  if (residual) {
    check_same_shape("batch_norm (residual)", x, *residual);
    check_cuda_tensor(name, *residual, dev, "residual");
  }
  check_channels(name, running_mean, s.C, dev, "running_mean");
  check_channels(name, running_var, s.C, dev, "running_var");
  const auto env = launch_env(dev);
  void* ws = detail::workspace(dev, kernels::bn_inference_workspace_bytes<T>(s));
  kernels::bn_forward_inference(x.data(), residual ? residual->data() : static_cast<const T*>(nullptr),
                                gamma.data(), beta.data(), running_mean.data(), running_var.data(), y.data(),
                                s, bp.eps, act == Activation::ReLU, ws, env);
}

template <typename T, typename P>
void batchnorm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<P>& gamma,
                        const Tensor<P>& mean, const Tensor<P>& invstd, bool training, Activation act,
                        Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual, bool dresidual_accumulate,
                        Tensor<P>* dgamma, Tensor<P>* dbeta, bool param_accumulate) {
  const char* name = "batch_norm_backward";
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  check_rank(name, x, 4, "input");
  check_same_shape(name, x, dy);
  check_cuda_tensor(name, x, dev, "input");
  check_cuda_tensor(name, dy, dev, "output gradient");
  check_index_range(name, x);
  const bool relu = act == Activation::ReLU;
  if (relu) {
    check_same_shape(name, x, y);
    check_cuda_tensor(name, y, dev, "saved output");
  }
  const kernels::BatchNormShape s{x.dim(0), x.dim(1), x.dim(2) * x.dim(3)};
  check_channels(name, gamma, s.C, dev, "weight");
  check_channels(name, mean, s.C, dev, "mean");
  check_channels(name, invstd, s.C, dev, "invstd");
  if (dx) {
    check_same_shape(name, x, *dx);
    check_cuda_tensor(name, *dx, dev, "input gradient");
  }
  if (dresidual) {
    check_same_shape(name, x, *dresidual);
    check_cuda_tensor(name, *dresidual, dev, "residual gradient");
  }
  if (dgamma) check_channels(name, *dgamma, s.C, dev, "weight gradient");
  if (dbeta) check_channels(name, *dbeta, s.C, dev, "bias gradient");
  const auto env = launch_env(dev);
  void* ws = detail::workspace(dev, kernels::bn_backward_workspace_bytes<T>(s, env.sm_count));
  kernels::bn_backward(x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(), gamma.data(),
                       mean.data(), invstd.data(), training, relu, dx ? dx->data() : static_cast<T*>(nullptr),
                       dx_accumulate, dresidual ? dresidual->data() : static_cast<T*>(nullptr),
                       dresidual_accumulate, dgamma ? dgamma->data() : static_cast<P*>(nullptr),
                       dbeta ? dbeta->data() : static_cast<P*>(nullptr), param_accumulate, s, ws, env,
                       bn_options());
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
