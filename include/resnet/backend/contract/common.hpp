// What every op's contract checks: a tensor is defined, contiguous (row-major or channels-last, one format
// per op) and on the device of the op's first input, and has the shape the op needs. The messages name the op
// and the argument, and are the same on every backend because both backends call these functions before
// touching data. Which device a backend accepts (the CPU, a CUDA device) is the backend's own check, made
// after the contract.
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {

// Defined, contiguous, and on the device of `first` (the op's first input).
inline void placed(const char* op, const TensorBase& first, const TensorBase& t, const char* what) {
  RESNET_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
  RESNET_CHECK(t.device() == first.device(), op, ": ", what, " ", t.describe(), " is not on ",
               first.device().to_string(), " with the input; move it with .to(device) first");
  // Both backends take channels-last tensors (the CUDA one since its NHWC kernels; the ops hand
  // it channels-last only with cuda::set_channels_last on). Ops without an NHWC form (SyncBatchNorm's
  // pieces) require row-major in their own contracts.
  RESNET_CHECK(t.is_dense(), op, ": ", what, " ", t.describe(),
               " must be contiguous (row-major or channels-last)");
}
// t is laid out as `like` (one memory format for every activation of an op), or it must be row-major.
inline void same_format(const char* op, const TensorBase& like, const TensorBase& t, const char* what) {
  // (Tensors of other shapes, e.g. a convolution's output: dense in like's format. A [N, C, 1, 1] tensor is
  // dense in both.)
  const bool ok =
      t.shape() == like.shape() ? t.same_layout(like) : t.is_contiguous(like.suggest_memory_format());
  RESNET_CHECK(ok, op, ": ", what, " ", t.describe(), " is ", memory_format_name(t.suggest_memory_format()),
               " but the input is ", memory_format_name(like.suggest_memory_format()),
               "; convert it with contiguous(MemoryFormat) first");
}
// placed(), and the shape and memory format of `like`.
inline void like(const char* op, const TensorBase& first, const TensorBase& like, const TensorBase& t,
                 const char* what) {
  placed(op, first, t, what);
  RESNET_CHECK(t.shape() == like.shape(), op, ": ", what, " shape ", t.shape(), " does not match ",
               like.shape());
  same_format(op, like, t, what);
}
// The op's first input: defined, contiguous, of the given rank (0: any).
inline void input(const char* op, const TensorBase& x, int64_t rank, const char* what) {
  if (rank > 0) check_rank(op, x, rank, what);
  placed(op, x, x, what);
}

}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
