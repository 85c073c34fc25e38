// resnet::cuda SyncBatchNorm split pieces: the contract both backends check
// (backend/contract/batchnorm_sync.hpp), then the launchers of kernels/batchnorm_sync.cuh on the thread's
// current stream of the tensors' device.
#include "resnet/core/abi.hpp"

#include "context.cuh"
#include "kernels/batchnorm_sync.cuh"
#include "resnet/backend/contract/batchnorm_sync.hpp"
#include "resnet/backend/cuda/batchnorm_sync.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

template <typename T>
void batchnorm_sync_stats(const Tensor<T>& x, Tensor<double>& stats) {
  const char* name = "sync_batch_norm (statistics)";
  const auto d = contract::batchnorm_sync_stats(name, x, stats);
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  kernels::bn_sync_stats(x.data(), stats.data(), d.N, d.C, d.HW, launch_env(dev));
}

template <typename P>
void batchnorm_sync_combine(const Tensor<double>& gathered, Tensor<P>& save_mean, Tensor<P>& save_invstd,
                            Tensor<P>& var, Tensor<P>& running_mean, Tensor<P>& running_var,
                            Tensor<double>& count, const BatchNormParams& bp) {
  const char* name = "sync_batch_norm (combine)";
  const int64_t C = contract::batchnorm_sync_combine(name, gathered, save_mean, save_invstd, var,
                                                     running_mean, running_var, count);
  const int dev = cuda_device(name, gathered, "gathered statistics");
  OpScope op(name, dev);
  kernels::bn_sync_combine(gathered.data(), gathered.dim(0), C, save_mean.data(), save_invstd.data(),
                           var.data(), running_mean.data(), running_var.data(), count.data(), bp.eps,
                           bp.momentum, launch_env(dev));
}

template <typename T, typename P>
void batchnorm_sync_backward_reduce(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                    const Tensor<P>& mean, const Tensor<P>& invstd, Activation act,
                                    Tensor<double>& sums, Tensor<P>* dgamma, Tensor<P>* dbeta,
                                    bool param_accumulate) {
  const char* name = "sync_batch_norm_backward (reduce)";
  const bool relu = act == Activation::ReLU;
  const auto d =
      contract::batchnorm_sync_backward_reduce(name, x, y, dy, mean, invstd, relu, sums, dgamma, dbeta);
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  kernels::bn_sync_backward_reduce(
      x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(), mean.data(), invstd.data(), relu,
      sums.data(), dgamma ? dgamma->data() : static_cast<P*>(nullptr),
      dbeta ? dbeta->data() : static_cast<P*>(nullptr), param_accumulate, d.N, d.C, d.HW, launch_env(dev));
}

template <typename T, typename P>
void batchnorm_sync_backward_apply(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                   const Tensor<P>& gamma, const Tensor<P>& mean, const Tensor<P>& invstd,
                                   const Tensor<double>& sums, const Tensor<double>& count, Activation act,
                                   Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual,
                                   bool dresidual_accumulate) {
  const char* name = "sync_batch_norm_backward (apply)";
  const bool relu = act == Activation::ReLU;
  const auto d = contract::batchnorm_sync_backward_apply(name, x, y, dy, gamma, mean, invstd, sums, count,
                                                         relu, dx, dresidual);
  const int dev = cuda_device(name, x, "input");
  OpScope op(name, dev);
  kernels::bn_sync_backward_apply(x.data(), relu ? y.data() : static_cast<const T*>(nullptr), dy.data(),
                                  gamma.data(), mean.data(), invstd.data(), sums.data(), count.data(), relu,
                                  dx ? dx->data() : static_cast<T*>(nullptr), dx_accumulate,
                                  dresidual ? dresidual->data() : static_cast<T*>(nullptr),
                                  dresidual_accumulate, d.N, d.C, d.HW, launch_env(dev));
}

#define RESNET_CUDA_BATCHNORM_SYNC(T, P)                                                                   \
  template void batchnorm_sync_stats<T>(const Tensor<T>&, Tensor<double>&);                                \
  template void batchnorm_sync_backward_reduce<T, P>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, \
                                                     const Tensor<P>&, const Tensor<P>&, Activation,       \
                                                     Tensor<double>&, Tensor<P>*, Tensor<P>*, bool);       \
  template void batchnorm_sync_backward_apply<T, P>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,  \
                                                    const Tensor<P>&, const Tensor<P>&, const Tensor<P>&,  \
                                                    const Tensor<double>&, const Tensor<double>&,          \
                                                    Activation, Tensor<T>*, bool, Tensor<T>*, bool);

RESNET_CUDA_BATCHNORM_SYNC(float, float)
RESNET_CUDA_BATCHNORM_SYNC(double, double)
RESNET_CUDA_BATCHNORM_SYNC(half_t, float)
RESNET_CUDA_BATCHNORM_SYNC(bf16_t, float)

template void batchnorm_sync_combine<float>(const Tensor<double>&, Tensor<float>&, Tensor<float>&,
                                            Tensor<float>&, Tensor<float>&, Tensor<float>&, Tensor<double>&,
                                            const BatchNormParams&);
template void batchnorm_sync_combine<double>(const Tensor<double>&, Tensor<double>&, Tensor<double>&,
                                             Tensor<double>&, Tensor<double>&, Tensor<double>&,
                                             Tensor<double>&, const BatchNormParams&);

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
