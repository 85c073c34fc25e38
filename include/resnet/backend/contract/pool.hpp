// Contracts of max, average and global average pooling (backend/cpu/pool.hpp, src/cuda/pool.cu):
// x [N, C, H, W] and y [N, C, OH, OW] with OH, OW from the window; a window of at least 1, strides of at
// least 1, padding of at most half the window (as PyTorch), and max-pooling indices of y's shape.
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/common.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

inline void pool_params(const char* op, const PoolParams& p) {
  RESNET_CHECK(p.kernel_h > 0 && p.kernel_w > 0, op, ": window must be positive, got ", p.kernel_h, "x",
               p.kernel_w);
  RESNET_CHECK(p.stride_h > 0 && p.stride_w > 0, op, ": stride must be positive, got ", p.stride_h, "x",
               p.stride_w);
  RESNET_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h && 2 * p.pad_w <= p.kernel_w, op,
               ": padding ", p.pad_h, "x", p.pad_w, " must be between 0 and half the window ", p.kernel_h,
               "x", p.kernel_w);
}
// x: the input (or its gradient), y: the output (or its gradient); `first` is the one the pass reads.
inline void pool2d(const char* op, const TensorBase& x, const TensorBase& y, const PoolParams& p,
                   const TensorBase& first) {
  pool_params(op, p);
  check_rank(op, x, 4, "input [N, C, H, W]");
  check_rank(op, y, 4, "output [N, C, OH, OW]");
  placed(op, first, x, "input");
  placed(op, first, y, "output");
  same_format(op, x, y, "output");
  RESNET_CHECK(x.dim(2) + 2 * p.pad_h >= p.kernel_h && x.dim(3) + 2 * p.pad_w >= p.kernel_w, op, ": input ",
               x.shape(), " is smaller than the window ", p.kernel_h, "x", p.kernel_w);
  const Shape expect{x.dim(0), x.dim(1), p.out_h(x.dim(2)), p.out_w(x.dim(3))};
  RESNET_CHECK(y.shape() == expect, op, ": output shape ", y.shape(), " does not match ", expect,
               " for input ", x.shape());
}
inline void maxpool_indices(const char* op, const TensorBase& y, const TensorBase& indices) {
  like(op, y, y, indices, "indices");
}
inline void maxpool_backward(const char* op, const TensorBase& dy, const TensorBase& indices,
                             const TensorBase& dx) {
  check_rank(op, dy, 4, "output gradient [N, C, OH, OW]");
  check_rank(op, dx, 4, "input gradient [N, C, H, W]");
  placed(op, dy, dy, "output gradient");
  like(op, dy, dy, indices, "indices");
  placed(op, dy, dx, "input gradient");
  same_format(op, dy, dx, "input gradient");
  RESNET_CHECK(dx.dim(0) == dy.dim(0) && dx.dim(1) == dy.dim(1), op, ": gradient ", dy.shape(),
               " does not match input gradient ", dx.shape());
}
// x [N, C, H, W] and y [N, C] (or their gradients).
inline void global_pool(const char* op, const TensorBase& x, const TensorBase& y, const TensorBase& first) {
  check_rank(op, x, 4, "input [N, C, H, W]");
  placed(op, first, x, "input");
  placed(op, first, y, "output");
  RESNET_CHECK(y.numel() == x.dim(0) * x.dim(1), op, ": output ", y.shape(), " does not match input ",
               x.shape(), " (expected [", x.dim(0), ", ", x.dim(1), "])");
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
