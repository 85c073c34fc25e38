// Contracts of the elementwise ops, reductions to a scalar and casts (backend/cpu/elementwise.hpp and
// src/cuda/elementwise.cu, cast.cu): every tensor of one op has one shape, except the scalar ends of sum_all
// and broadcast_scalar.
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/common.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

// y = f(x) or y = f(a, b) (b may be null): every tensor of x's shape.
inline void elementwise(const char* op, const TensorBase& x, const TensorBase* b, const TensorBase& y) {
  input(op, x, 0, "input");
  if (b) like(op, x, x, *b, "second input");
  like(op, x, x, y, "output");
}
inline void fill(const char* op, const TensorBase& y) { input(op, y, 0, "output"); }
inline void sum_all(const char* op, const TensorBase& x, const TensorBase& y) {
  input(op, x, 0, "input");
  placed(op, x, y, "output");
  RESNET_CHECK(y.numel() == 1, op, ": output must have one element, got ", y.shape());
}
inline void broadcast_scalar(const char* op, const TensorBase& dy, const TensorBase& dx) {
  input(op, dy, 0, "gradient");
  RESNET_CHECK(dy.numel() == 1, op, ": gradient must have one element, got ", dy.shape());
  placed(op, dy, dx, "input gradient");
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
