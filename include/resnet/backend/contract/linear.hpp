// Contract of the linear layer (backend/cpu/linear.hpp, src/cuda/conv_linear.cu): x [N, I], w [O, I],
// y (or its gradient) [N, O], an optional bias [O].
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/common.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

inline void linear(const char* op, const TensorBase& x, const TensorBase& w, const TensorBase& y,
                   const TensorBase* bias = nullptr) {
  check_rank(op, x, 2, "input [N, in_features]");
  check_rank(op, w, 2, "weight [out_features, in_features]");
  placed(op, x, x, "input");
  placed(op, x, w, "weight");
  placed(op, x, y, "output");
  RESNET_CHECK(x.dim(1) == w.dim(1), op, ": input has ", x.dim(1), " features but the weight expects ",
               w.dim(1), " (input ", x.shape(), ", weight ", w.shape(), ")");
  RESNET_CHECK(y.shape() == Shape({x.dim(0), w.dim(0)}), op, ": output shape ", y.shape(),
               " does not match input ", x.shape(), " and weight ", w.shape());
  if (bias) {
    placed(op, x, *bias, "bias");
    RESNET_CHECK(bias->numel() == w.dim(0), op, ": bias has ", bias->numel(), " elements for ", w.dim(0),
                 " output features");
  }
}

// The backward: dy [N, O]; dx, dw, db (each may be null) of the shapes of x, w and [O].
inline void linear_backward(const char* op, const TensorBase& x, const TensorBase& w, const TensorBase& dy,
                            const TensorBase* dx, const TensorBase* dw, const TensorBase* db) {
  linear(op, x, w, dy);
  if (dx) like(op, x, x, *dx, "input gradient");
  if (dw) like(op, x, w, *dw, "weight gradient");
  if (db) {
    placed(op, x, *db, "bias gradient");
    RESNET_CHECK(db->numel() == w.dim(0), op, ": bias gradient has ", db->numel(), " elements for ", w.dim(0),
                 " output features");
  }
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
