// The CPU backend as user code sees it: the declarations of every function RESNET_DISPATCH calls, with the
// same signatures as the CUDA backend's (backend/cuda/ops.hpp). In the compiled mode
// (RESNET_SEPARATE_COMPILATION, the resnet::resnet CMake target) this is all a user's file parses of the
// CPU backend: the definitions (the other headers of this directory, with oneDNN, BLAS and the SIMD loops)
// are compiled once into the library (src/cpu), explicitly instantiated for T = float, double, bf16_t with
// P = acc_t<T>. In header-only mode backend/cpu/cpu.hpp includes the definitions after this file.
//
// Default arguments live here only, so a definition header can follow this one in the same unit.
#pragma once

#include "resnet/core/abi.hpp"

#include <string>
#include "resnet/backend/contract/loss.hpp"
#include "resnet/backend/contract/optim.hpp"
#include "resnet/backend/contract/step_state.hpp"
#include "resnet/backend/optim_math.hpp"
#include "resnet/backend/params.hpp"
#include "resnet/backend/step_math.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

// ---- elementwise (elementwise.hpp)
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

// ---- convolution (conv.hpp)
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

// ---- BatchNorm2d with the fused residual add and ReLU (batchnorm.hpp)
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

// ---- pooling (pool.hpp)
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

// ---- linear (linear.hpp)
template <typename T>
void linear_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* bias, Tensor<T>& y);
template <typename T>
void linear_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, Tensor<T>* dx,
                     bool dx_accumulate, Tensor<T>* dw, Tensor<T>* db, bool param_accumulate);

// ---- softmax and cross-entropy (loss.hpp). Labels live on the device; a label outside
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

// ---- optimizer updates (optim.hpp), P = float or double; lr, step and skip flag are read
// from `state` in device memory (backend/optim_math.hpp)
inline void optim_begin_step(Tensor<double>& state) {
  contract::optim_begin_step("optim_begin_step", state);
  optim_state::begin_step(state.data());
}
template <typename P>
void sgd_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& momentum_buf, const Tensor<double>& state,
              const SgdHyper& h);
template <typename P>
void adamw_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& m, Tensor<P>& v,
                const Tensor<double>& state, const AdamHyper& h);

// ---- per-step bookkeeping on the device (step_state.hpp)
inline void count_up(Tensor<int64_t>& counter) {
  contract::count_up("count_up", counter);
  for (int64_t i = 0; i < counter.numel(); ++i) counter.data()[i] += 1;
}
template <typename T>
void record_step_loss(const Tensor<T>& loss, Tensor<double>& stats, Tensor<double>* optim_state, double n,
                      double N);
template <typename P>
void bn_running_invstd(const Tensor<P>& running_var, double eps, Tensor<P>& invstd);

// ---- cross-replica BatchNorm statistics (batchnorm_sync.hpp)

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

// Which bfloat16 convolution path this CPU takes, in words with the measured reason (conv.hpp).
template <typename = void>
std::string describe_bf16_conv();

// Host labels: one per row, each in [0, K) (the message is the contract's, the GPU reports the same one).
inline void check_labels(const char* op, const Tensor<int32_t>& labels, int64_t N, int64_t K) {
  check_rank(op, labels, 1, "labels [N]");
  RESNET_CHECK(labels.dim(0) == N, op, ": ", labels.dim(0), " labels for logits of shape ", Shape({N, K}));
  if (labels.device().is_cpu()) contract::label_values(op, labels.data(), N, K);
}

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
