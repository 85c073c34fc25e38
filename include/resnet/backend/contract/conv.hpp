// Contract of the 2-D convolution (backend/cpu/conv.hpp, src/cuda/conv_linear.cu): x [N, C, H, W],
// w [O, C, KH, KW], y [N, O, OH, OW] with OH, OW from the parameters, an optional bias [O]; strides of at
// least 1 and paddings of at least 0 (a stride of 0 would divide by zero in the output size).
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/common.hpp"
#include "resnet/backend/params.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

inline void conv_params(const char* op, const ConvParams& p) {
  RESNET_CHECK(p.stride_h > 0 && p.stride_w > 0, op, ": stride must be positive, got ", p.stride_h, "x",
               p.stride_w);
  RESNET_CHECK(p.pad_h >= 0 && p.pad_w >= 0, op, ": padding must be non-negative, got ", p.pad_h, "x",
               p.pad_w);
}

// Every convolution pass names the same three tensors: the input (or its gradient), the weight (or its
// gradient) and the output (or its gradient); `first` is the one the pass reads first.
inline void conv2d(const char* op, const TensorBase& x, const TensorBase& w, const TensorBase& y,
                   const ConvParams& p, const TensorBase* bias = nullptr) {
  conv_params(op, p);
  check_rank(op, x, 4, "input [N, C, H, W]");
  check_rank(op, w, 4, "weight [O, C, KH, KW]");
  check_rank(op, y, 4, "output [N, O, OH, OW]");
  placed(op, x, x, "input");
  placed(op, x, w, "weight");
  placed(op, x, y, "output");
  // Activations share one memory format. The weight is OIHW (torchvision's layout) in either, dense in
  // either layout: both backends take a channels-last (OHWI in memory) weight through a reordered copy.
  same_format(op, x, y, "output");
  RESNET_CHECK(x.dim(1) == w.dim(1), op, ": input has ", x.dim(1), " channels but the weight expects ",
               w.dim(1), " (input ", x.shape(), ", weight ", w.shape(), ")");
  RESNET_CHECK(x.dim(2) + 2 * p.pad_h >= w.dim(2) && x.dim(3) + 2 * p.pad_w >= w.dim(3), op, ": input ",
               x.shape(), " with padding ", p.pad_h, "x", p.pad_w, " is smaller than the kernel ", w.shape());
  const Shape expect{x.dim(0), w.dim(0), p.out_h(x.dim(2), w.dim(2)), p.out_w(x.dim(3), w.dim(3))};
  RESNET_CHECK(y.shape() == expect, op, ": output shape ", y.shape(), " does not match ", expect,
               " for input ", x.shape(), " and weight ", w.shape());
  if (bias) {
    placed(op, x, *bias, "bias");
    RESNET_CHECK(bias->rank() == 1 && bias->dim(0) == w.dim(0), op, ": bias shape ", bias->shape(),
                 " does not match ", w.dim(0), " output channels");
  }
}
inline void conv2d_bias_grad(const char* op, const TensorBase& dy, const TensorBase& db) {
  check_rank(op, dy, 4, "output gradient [N, O, OH, OW]");
  placed(op, dy, dy, "output gradient");
  placed(op, dy, db, "bias gradient");
  RESNET_CHECK(db.numel() == dy.dim(1), op, ": bias has ", db.numel(), " elements for ", dy.dim(1),
               " output channels");
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
