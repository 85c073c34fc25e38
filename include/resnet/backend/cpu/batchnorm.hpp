// BatchNorm2d on the CPU (NCHW or channels-last, with the optional fused residual add and ReLU): the
// functions the dispatcher calls. float32 takes the vectorised fast paths (batchnorm_fast.hpp for NCHW,
// batchnorm_nhwc.hpp for channels-last); bfloat16 the NHWC path natively, NCHW through float copies; every
// other type the double-precision reference (batchnorm_reference.hpp). All check the same contract and
// share their formulas with the CUDA kernels (batchnorm_math.hpp).
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/api.hpp"

#include <type_traits>

#include "resnet/backend/cpu/batchnorm_fast.hpp"
#include "resnet/backend/cpu/batchnorm_nhwc.hpp"
#include "resnet/backend/cpu/batchnorm_reference.hpp"
#include "resnet/backend/cpu/layout.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

namespace bn_detail {
template <typename T, typename P>
constexpr bool is_float = std::is_same<T, float>::value&& std::is_same<P, float>::value;
template <typename T, typename P>
constexpr bool is_bf16 = std::is_same<T, bf16_t>::value&& std::is_same<P, float>::value;
// float copies of optional bfloat16 tensors (NCHW bfloat16 runs the float kernels on them).
inline Tensor<float> f32(const Tensor<bf16_t>* t) { return t ? bf16::to_float(*t) : Tensor<float>(); }
inline Tensor<float>* ptr(Tensor<float>& t) { return t.defined() ? &t : nullptr; }
}  // namespace bn_detail

template <typename T, typename P>
void batchnorm_forward_training(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                const Tensor<P>& beta, Tensor<P>& running_mean, Tensor<P>& running_var,
                                Tensor<P>& save_mean, Tensor<P>& save_invstd, Tensor<T>& y,
                                const BatchNormParams& bp, Activation act) {
  if constexpr (bn_detail::is_float<T, P> || bn_detail::is_bf16<T, P>) {
    if (channels_last(x))
      return batchnorm_forward_training_nhwc(x, residual, gamma, beta, running_mean, running_var, save_mean,
                                             save_invstd, y, bp, act);
  }
  if constexpr (bn_detail::is_float<T, P>) {
    batchnorm_forward_training_fast(x, residual, gamma, beta, running_mean, running_var, save_mean,
                                    save_invstd, y, bp, act);
  } else if constexpr (bn_detail::is_bf16<T, P>) {
    contract::batchnorm_forward("batch_norm", x, residual, gamma, beta, running_mean, running_var, &save_mean,
                                &save_invstd, y, true);
    Tensor<float> xf = bf16::to_float(x), rf = bn_detail::f32(residual), yf = bf16::float_like(y);
    batchnorm_forward_training_fast(xf, bn_detail::ptr(rf), gamma, beta, running_mean, running_var, save_mean,
                                    save_invstd, yf, bp, act);
    bf16::round_into(yf, y);
  } else {
    batchnorm_forward_training_reference(x, residual, gamma, beta, running_mean, running_var, save_mean,
                                         save_invstd, y, bp, act);
  }
}

template <typename T, typename P>
void batchnorm_forward_inference(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                 const Tensor<P>& beta, const Tensor<P>& running_mean,
                                 const Tensor<P>& running_var, Tensor<T>& y, const BatchNormParams& bp,
                                 Activation act) {
  if constexpr (bn_detail::is_float<T, P> || bn_detail::is_bf16<T, P>) {
    if (channels_last(x))
      return batchnorm_forward_inference_nhwc(x, residual, gamma, beta, running_mean, running_var, y, bp,
                                              act);
  }
  if constexpr (bn_detail::is_float<T, P>) {
    batchnorm_forward_inference_fast(x, residual, gamma, beta, running_mean, running_var, y, bp, act);
  } else if constexpr (bn_detail::is_bf16<T, P>) {
    contract::batchnorm_forward("batch_norm", x, residual, gamma, beta, running_mean, running_var,
                                static_cast<const Tensor<P>*>(nullptr),
                                static_cast<const Tensor<P>*>(nullptr), y, false);
    Tensor<float> xf = bf16::to_float(x), rf = bn_detail::f32(residual), yf = bf16::float_like(y);
    batchnorm_forward_inference_fast(xf, bn_detail::ptr(rf), gamma, beta, running_mean, running_var, yf, bp,
                                     act);
    bf16::round_into(yf, y);
  } else {
    batchnorm_forward_inference_reference(x, residual, gamma, beta, running_mean, running_var, y, bp, act);
  }
}

template <typename T, typename P>
void batchnorm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<P>& gamma,
                        const Tensor<P>& mean, const Tensor<P>& invstd, bool training, Activation act,
                        Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual, bool dresidual_accumulate,
                        Tensor<P>* dgamma, Tensor<P>* dbeta, bool param_accumulate) {
  if constexpr (bn_detail::is_float<T, P> || bn_detail::is_bf16<T, P>) {
    if (channels_last(x))
      return batchnorm_backward_nhwc(x, y, dy, gamma, mean, invstd, training, act, dx, dx_accumulate,
                                     dresidual, dresidual_accumulate, dgamma, dbeta, param_accumulate);
  }
  if constexpr (bn_detail::is_float<T, P>) {
    batchnorm_backward_fast(x, y, dy, gamma, mean, invstd, training, act, dx, dx_accumulate, dresidual,
                            dresidual_accumulate, dgamma, dbeta, param_accumulate);
  } else if constexpr (bn_detail::is_bf16<T, P>) {
    const bool relu = act == Activation::ReLU;
    contract::batchnorm_backward("batch_norm_backward", x, y, dy, gamma, mean, invstd, relu, dx, dresidual,
                                 dgamma, dbeta);
    Tensor<float> xf = bf16::to_float(x), yf = relu ? bf16::to_float(y) : xf, dyf = bf16::to_float(dy);
    Tensor<float> dxf = dx ? bf16::float_like(*dx) : Tensor<float>();
    Tensor<float> drf = dresidual ? bf16::float_like(*dresidual) : Tensor<float>();
    batchnorm_backward_fast(xf, yf, dyf, gamma, mean, invstd, training, act, bn_detail::ptr(dxf), false,
                            bn_detail::ptr(drf), false, dgamma, dbeta, param_accumulate);
    if (dx) bf16::round_into(dxf, *dx, dx_accumulate);
    if (dresidual) bf16::round_into(drf, *dresidual, dresidual_accumulate);
  } else {
    batchnorm_backward_reference(x, y, dy, gamma, mean, invstd, training, act, dx, dx_accumulate, dresidual,
                                 dresidual_accumulate, dgamma, dbeta, param_accumulate);
  }
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
