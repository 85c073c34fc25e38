// BatchNorm2d's contract, checked once, in one place, by every backend (the CPU reference, the CPU fast
// path and resnet::cuda) before it touches data, so bad input gets the same message everywhere:
//   x, y, residual, dy, dx, dresidual: [N, C, H, W], one shape; gamma, beta, the running and the saved
//   statistics and their gradients: C values each; every tensor defined, contiguous and on x's device;
//   training needs more than one value per channel (the unbiased variance divides by N * H * W - 1).
// Element types are the template arguments (T for activations, P for parameters and statistics).
// Limits of one backend (the CUDA kernels' 32-bit indices) are that backend's own checks. Placement
// (defined, contiguous, on the input's device) is contract/common.hpp's, as for every op.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>

#include "resnet/backend/contract/common.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

struct BatchNormDims {
  int64_t N = 0, C = 0, HW = 0;
  int64_t count() const { return N * HW; }  // values per channel
};

namespace bn_detail {

inline void like_input(const char* op, const TensorBase& x, const TensorBase& t, const char* what) {
  placed(op, x, t, what);
  RESNET_CHECK(t.shape() == x.shape(), op, ": ", what, " shape ", t.shape(), " does not match input shape ",
               x.shape());
  same_format(op, x, t, what);
}
inline void per_channel(const char* op, const TensorBase& x, const TensorBase& t, const char* what) {
  placed(op, x, t, what);
  RESNET_CHECK(t.numel() == x.dim(1), op, ": input ", x.shape(), " has ", x.dim(1), " channels but ", what,
               " has ", t.numel(), " elements");
}
inline BatchNormDims dims(const char* op, const TensorBase& x) {
  contract::input(op, x, 4, "input [N, C, H, W]");
  return BatchNormDims{x.dim(0), x.dim(1), x.dim(2) * x.dim(3)};
}

}  // namespace bn_detail

// The forward, training or eval. save_mean / save_invstd: the training forward's outputs (null in eval).
template <typename T, typename P>
BatchNormDims batchnorm_forward(const char* op, const Tensor<T>& x, const Tensor<T>* residual,
                                const Tensor<P>& gamma, const Tensor<P>& beta, const Tensor<P>& running_mean,
                                const Tensor<P>& running_var, const Tensor<P>* save_mean,
                                const Tensor<P>* save_invstd, const Tensor<T>& y, bool training) {
  using namespace bn_detail;
  const BatchNormDims d = dims(op, x);
  like_input(op, x, y, "output");
  if (residual) like_input(op, x, *residual, "residual");
  per_channel(op, x, gamma, "weight");
  per_channel(op, x, beta, "bias");
  per_channel(op, x, running_mean, "running_mean");
  per_channel(op, x, running_var, "running_var");
  if (training) {
    RESNET_CHECK(d.count() > 1, op, ": training needs more than one value per channel, got input ",
                 x.shape());
    RESNET_CHECK(save_mean && save_invstd, op,
                 ": a training forward needs the saved mean and invstd outputs");
    per_channel(op, x, *save_mean, "saved mean");
    per_channel(op, x, *save_invstd, "saved invstd");
  }
  return d;
}

// The backward. y (the saved output, the ReLU's mask) is read only when relu; any gradient may be null.
template <typename T, typename P>
BatchNormDims batchnorm_backward(const char* op, const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy,
                                 const Tensor<P>& gamma, const Tensor<P>& mean, const Tensor<P>& invstd,
                                 bool relu, const Tensor<T>* dx, const Tensor<T>* dresidual,
                                 const Tensor<P>* dgamma, const Tensor<P>* dbeta) {
  using namespace bn_detail;
  const BatchNormDims d = dims(op, x);
  like_input(op, x, dy, "output gradient");
  if (relu) like_input(op, x, y, "saved output");
  per_channel(op, x, gamma, "weight");
  per_channel(op, x, mean, "mean");
  per_channel(op, x, invstd, "invstd");
  if (dx) like_input(op, x, *dx, "input gradient");
  if (dresidual) like_input(op, x, *dresidual, "residual gradient");
  if (dgamma) per_channel(op, x, *dgamma, "weight gradient");
  if (dbeta) per_channel(op, x, *dbeta, "bias gradient");
  return d;
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
