// BatchNorm2d on the CPU (NCHW, with the optional fused residual add and ReLU): the functions the
// dispatcher calls. float32 takes the vectorised fast path (batchnorm_fast.hpp), every other type the
// double-precision reference (batchnorm_reference.hpp); both check the same contract and share their
// formulas with the CUDA kernels (batchnorm_math.hpp).
#pragma once

#include "resnet/core/abi.hpp"

#include <type_traits>

#include "resnet/backend/cpu/batchnorm_fast.hpp"
#include "resnet/backend/cpu/batchnorm_reference.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

template <typename T, typename P>
void batchnorm_forward_training(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                const Tensor<P>& beta, Tensor<P>& running_mean, Tensor<P>& running_var,
                                Tensor<P>& save_mean, Tensor<P>& save_invstd, Tensor<T>& y,
                                const BatchNormParams& bp, Activation act) {
  if constexpr (std::is_same<T, float>::value && std::is_same<P, float>::value)
    batchnorm_forward_training_fast(x, residual, gamma, beta, running_mean, running_var, save_mean,
                                    save_invstd, y, bp, act);
  else
    batchnorm_forward_training_reference(x, residual, gamma, beta, running_mean, running_var, save_mean,
                                         save_invstd, y, bp, act);
}

template <typename T, typename P>
void batchnorm_forward_inference(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                 const Tensor<P>& beta, const Tensor<P>& running_mean,
                                 const Tensor<P>& running_var, Tensor<T>& y, const BatchNormParams& bp,
                                 Activation act) {
  if constexpr (std::is_same<T, float>::value && std::is_same<P, float>::value)
    batchnorm_forward_inference_fast(x, residual, gamma, beta, running_mean, running_var, y, bp, act);
  else
    batchnorm_forward_inference_reference(x, residual, gamma, beta, running_mean, running_var, y, bp, act);
}

template <typename T, typename P>
void batchnorm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<P>& gamma,
                        const Tensor<P>& mean, const Tensor<P>& invstd, bool training, Activation act,
                        Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual, bool dresidual_accumulate,
                        Tensor<P>* dgamma, Tensor<P>* dbeta, bool param_accumulate) {
  if constexpr (std::is_same<T, float>::value && std::is_same<P, float>::value)
    batchnorm_backward_fast(x, y, dy, gamma, mean, invstd, training, act, dx, dx_accumulate, dresidual,
                            dresidual_accumulate, dgamma, dbeta, param_accumulate);
  else
    batchnorm_backward_reference(x, y, dy, gamma, mean, invstd, training, act, dx, dx_accumulate, dresidual,
                                 dresidual_accumulate, dgamma, dbeta, param_accumulate);
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
