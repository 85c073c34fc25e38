// The CUDA backend's ops: the same functions with the same signatures as the CPU backend (resnet::cpu), so
// RESNET_DISPATCH picks one by a tensor's device and a test compares them with one line. Plain C++: the
// definitions live in the resnet::cuda library (src/cuda, compiled by nvcc), explicitly instantiated for
// T = float, double, half_t, bf16_t with BatchNorm parameters and optimizer state in P = acc_t<T>.
//
// All tensors of a call must be contiguous and on the same CUDA device. Work is queued on the thread's
// current stream of that device (runtime.hpp) and the call returns without waiting, except all_finite,
// which returns a host bool. Gradient outputs follow backend/params.hpp: overwritten, or added to when
// their accumulate flag is set.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/params.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

// ---- elementwise (backend/cpu/elementwise.hpp)
template <typename T>
void fill(Tensor<T>& y, double value);
template <typename T>
void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y);
template <typename T>
void add_inplace(Tensor<T>& y, const Tensor<T>& x, double alpha = 1.0);
template <typename T>
void scale(const Tensor<T>& x, double alpha, Tensor<T>& y);
template <typename T>
void mul(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y, bool accumulate = false);
template <typename T>
void relu_forward(const Tensor<T>& x, Tensor<T>& y);
template <typename T>
void relu_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool accumulate);
template <typename T>
void sum_all(const Tensor<T>& x, Tensor<T>& y);
template <typename T>
void broadcast_scalar(const Tensor<T>& dy, double alpha, Tensor<T>& dx, bool accumulate);
template <typename S, typename D>
void cast(const Tensor<S>& x, Tensor<D>& y);
// Waits for the stream: the answer is needed on the host.
template <typename T>
bool all_finite(const Tensor<T>& x);

// ---- convolution through cuDNN (backend/cpu/conv.hpp)
template <typename T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y,
                    const ConvParams& p);
template <typename T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, Tensor<T>& dx, const ConvParams& p,
                          bool accumulate);
template <typename T>
void conv2d_backward_weight(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dw, const ConvParams& p,
                            bool accumulate);
template <typename T>
void conv2d_backward_bias(const Tensor<T>& dy, Tensor<T>& db, bool accumulate);

// ---- BatchNorm2d with the fused residual add and ReLU (backend/cpu/batchnorm.hpp)
template <typename T, typename P>
void batchnorm_forward_training(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                const Tensor<P>& beta, Tensor<P>& running_mean, Tensor<P>& running_var,
                                Tensor<P>& save_mean, Tensor<P>& save_invstd, Tensor<T>& y,
                                const BatchNormParams& bp, Activation act);
template <typename T, typename P>
void batchnorm_forward_inference(const Tensor<T>& x, const Tensor<T>* residual, const Tensor<P>& gamma,
                                 const Tensor<P>& beta, const Tensor<P>& running_mean,
                                 const Tensor<P>& running_var, Tensor<T>& y, const BatchNormParams& bp,
                                 Activation act);
template <typename T, typename P>
void batchnorm_backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, const Tensor<P>& gamma,
                        const Tensor<P>& mean, const Tensor<P>& invstd, bool training, Activation act,
                        Tensor<T>* dx, bool dx_accumulate, Tensor<T>* dresidual, bool dresidual_accumulate,
                        Tensor<P>* dgamma, Tensor<P>* dbeta, bool param_accumulate);

// ---- pooling (backend/cpu/pool.hpp)
template <typename T>
void maxpool2d_forward(const Tensor<T>& x, Tensor<T>& y, Tensor<int32_t>& indices, const PoolParams& p);
template <typename T>
void maxpool2d_backward(const Tensor<T>& dy, const Tensor<int32_t>& indices, Tensor<T>& dx, bool accumulate);
template <typename T>
void avgpool2d_forward(const Tensor<T>& x, Tensor<T>& y, const PoolParams& p);
template <typename T>
void avgpool2d_backward(const Tensor<T>& dy, Tensor<T>& dx, const PoolParams& p, bool accumulate);
template <typename T>
void global_avgpool_forward(const Tensor<T>& x, Tensor<T>& y);
template <typename T>
void global_avgpool_backward(const Tensor<T>& dy, Tensor<T>& dx, bool accumulate);

// ---- linear through cuBLAS (backend/cpu/linear.hpp)
template <typename T>
void linear_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y);
template <typename T>
void linear_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, Tensor<T>* dx,
                     bool dx_accumulate, Tensor<T>* dw, Tensor<T>* db, bool param_accumulate);

// ---- softmax and cross-entropy (backend/cpu/loss.hpp). Labels live on the device; a label outside
// [0, K) makes the loss NaN and is reported as an exception at the next synchronisation (a copy to the
// host, cuda::synchronize()).
template <typename T>
void softmax_forward(const Tensor<T>& x, Tensor<T>& y);
template <typename T>
void softmax_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool accumulate);
template <typename T>
void cross_entropy_forward(const Tensor<T>& logits, const Tensor<int32_t>& labels, double label_smoothing,
                           Tensor<T>& loss, Tensor<T>& probs);
template <typename T>
void cross_entropy_backward(const Tensor<T>& probs, const Tensor<int32_t>& labels, double label_smoothing,
                            const Tensor<T>& dloss, Tensor<T>& dlogits, bool accumulate);

// ---- optimizer updates (backend/cpu/optim.hpp), P = float or double; lr, step and skip flag are read
// from `state` in device memory (backend/optim_math.hpp)
void optim_begin_step(Tensor<double>& state);
template <typename P>
void sgd_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& momentum_buf, const Tensor<double>& state,
              const SgdHyper& h);
template <typename P>
void adamw_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& m, Tensor<P>& v,
                const Tensor<double>& state, const AdamHyper& h);

// ---- per-step bookkeeping on the device (backend/cpu/step_state.hpp)
void count_up(Tensor<int64_t>& counter);
template <typename T>
void record_step_loss(const Tensor<T>& loss, Tensor<double>& stats, Tensor<double>* optim_state, double n,
                      double N);
template <typename P>
void bn_running_invstd(const Tensor<P>& running_var, double eps, Tensor<P>& invstd);

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
