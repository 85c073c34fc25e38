// SyncBatchNorm's split pieces on CUDA devices: the same functions and signatures as the CPU backend's
// (backend/cpu/batchnorm_sync.hpp), defined in the resnet::cuda library (src/cuda/batchnorm_sync.cu,
// kernels/batchnorm_sync.cuh) for T = float, double, half_t, bf16_t with P = acc_t<T>. Queued on the
// thread's current stream; nothing waits.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/params.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

template <typename T>
void batchnorm_sync_stats(const Tensor<T>& x, Tensor<double>& stats);
template <typename P>
void batchnorm_sync_combine(const Tensor<double>& gathered, Tensor<P>& save_mean, Tensor<P>& save_invstd,
                            Tensor<P>& var, Tensor<P>& running_mean, Tensor<P>& running_var,
                            Tensor<double>& count, const BatchNormParams& bp);
template <typename T, typename P>
void batchnorm_sync_backward_reduce(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                    const Tensor<P>& mean, const Tensor<P>& invstd, Activation act,
                                    Tensor<double>& sums, Tensor<P>* dgamma, Tensor<P>* dbeta,
                                    bool param_accumulate);
template <typename T, typename P>
void batchnorm_sync_backward_apply(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                   const Tensor<P>& gamma, const Tensor<P>& mean, const Tensor<P>& invstd,
                                   const Tensor<double>& sums, const Tensor<double>& count, Activation act,
                                   Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual,
                                   bool dresidual_accumulate);

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
