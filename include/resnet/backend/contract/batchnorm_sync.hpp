// The contract of SyncBatchNorm's split pieces (backend/cpu/batchnorm_sync.hpp and resnet::cuda), checked
// by both backends first so bad input gets one message:
//   x, y, dy, dx, dresidual: [N, C, H, W] row-major (the op converts channels-last input first);
//   statistics [3, C], gathered statistics [world, 3, C], sums [2, C] and the global count [1]: double;
//   per-channel parameters and statistics: C values of P. Everything on x's device.
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/batchnorm.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

namespace bn_sync_detail {
inline BatchNormDims nchw(const char* op, const TensorBase& x) {
  const BatchNormDims d = bn_detail::dims(op, x);
  RESNET_CHECK(x.is_contiguous(), op, ": input ", x.describe(), " must be row-major NCHW");
  RESNET_CHECK(d.count() > 0, op, ": input ", x.shape(), " has no values per channel");
  return d;
}
inline void rows(const char* op, const TensorBase& x, const TensorBase& t, int64_t rows, const char* what) {
  placed(op, x, t, what);
  RESNET_CHECK(t.rank() == 2 && t.dim(0) == rows && t.dim(1) == x.dim(1), op, ": ", what, " must be [", rows,
               ", ", x.dim(1), "] for input ", x.shape(), ", got ", t.shape());
}
}  // namespace bn_sync_detail

template <typename T>
BatchNormDims batchnorm_sync_stats(const char* op, const Tensor<T>& x, const Tensor<double>& stats) {
  const BatchNormDims d = bn_sync_detail::nchw(op, x);
  bn_sync_detail::rows(op, x, stats, 3, "statistics");
  return d;
}

template <typename P>
int64_t batchnorm_sync_combine(const char* op, const Tensor<double>& gathered, const Tensor<P>& save_mean,
                               const Tensor<P>& save_invstd, const Tensor<P>& var,
                               const Tensor<P>& running_mean, const Tensor<P>& running_var,
                               const Tensor<double>& count) {
  input(op, gathered, 3, "gathered statistics [world, 3, C]");
  RESNET_CHECK(gathered.dim(1) == 3 && gathered.dim(0) > 0, op,
               ": gathered statistics must be [world, 3, C], got ", gathered.shape());
  const int64_t C = gathered.dim(2);
  for (const TensorBase* t :
       {static_cast<const TensorBase*>(&save_mean), static_cast<const TensorBase*>(&save_invstd),
        static_cast<const TensorBase*>(&var), static_cast<const TensorBase*>(&running_mean),
        static_cast<const TensorBase*>(&running_var)}) {
    placed(op, gathered, *t, "per-channel statistic");
    RESNET_CHECK(t->numel() == C, op, ": gathered statistics have ", C,
                 " channels but a per-channel tensor has ", t->numel(), " elements");
  }
  placed(op, gathered, count, "global count");
  RESNET_CHECK(count.numel() == 1, op, ": global count must hold one value, got ", count.shape());
  return C;
}

template <typename T, typename P>
BatchNormDims batchnorm_sync_backward_reduce(const char* op, const Tensor<T>& x, const Tensor<T>& y,
                                             const Tensor<T>& dy, const Tensor<P>& mean,
                                             const Tensor<P>& invstd, bool relu, const Tensor<double>& sums,
                                             const Tensor<P>* dgamma, const Tensor<P>* dbeta) {
  using namespace bn_detail;
  const BatchNormDims d = bn_sync_detail::nchw(op, x);
  like_input(op, x, dy, "output gradient");
  if (relu) like_input(op, x, y, "saved output");
  per_channel(op, x, mean, "mean");
  per_channel(op, x, invstd, "invstd");
  bn_sync_detail::rows(op, x, sums, 2, "sums");
  if (dgamma) per_channel(op, x, *dgamma, "weight gradient");
  if (dbeta) per_channel(op, x, *dbeta, "bias gradient");
  return d;
}

template <typename T, typename P>
BatchNormDims batchnorm_sync_backward_apply(const char* op, const Tensor<T>& x, const Tensor<T>& y,
                                            const Tensor<T>& dy, const Tensor<P>& gamma,
                                            const Tensor<P>& mean, const Tensor<P>& invstd,
                                            const Tensor<double>& sums, const Tensor<double>& count,
                                            bool relu, const Tensor<T>* dx, const Tensor<T>* dresidual) {
  using namespace bn_detail;
  const BatchNormDims d = bn_sync_detail::nchw(op, x);
  like_input(op, x, dy, "output gradient");
  if (relu) like_input(op, x, y, "saved output");
  per_channel(op, x, gamma, "weight");
  per_channel(op, x, mean, "mean");
  per_channel(op, x, invstd, "invstd");
  bn_sync_detail::rows(op, x, sums, 2, "sums");
  placed(op, x, count, "global count");
  RESNET_CHECK(count.numel() == 1, op, ": global count must hold one value, got ", count.shape());
  if (dx) like_input(op, x, *dx, "input gradient");
  if (dresidual) like_input(op, x, *dresidual, "residual gradient");
  return d;
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
