// One dispatch point for every backend function: the CPU and CUDA backends share signatures, and
// RESNET_DISPATCH(device, fn, args...) calls cpu::fn or cuda::fn by the device of the tensors.
#pragma once

#include "resnet/backend/cpu/cpu.hpp"
#include "resnet/core/tensor.hpp"

#if RESNET_WITH_CUDA
#include "resnet/backend/cuda/cuda.hpp"
#endif

namespace resnet {
namespace detail {
[[noreturn]] inline void no_cuda(const char* fn) {
  RESNET_FAIL(fn, ": tensor is on a CUDA device but this program was built without CUDA support (link resnet::cuda)");
}
}  // namespace detail
}  // namespace resnet

#if RESNET_WITH_CUDA
#define RESNET_DISPATCH(device, fn, ...) \
  ((device).is_cuda() ? ::resnet::cuda::fn(__VA_ARGS__) : ::resnet::cpu::fn(__VA_ARGS__))
#else
#define RESNET_DISPATCH(device, fn, ...) \
  ((device).is_cuda() ? ::resnet::detail::no_cuda(#fn) : ::resnet::cpu::fn(__VA_ARGS__))
#endif

namespace resnet {
namespace backend {

// dst += src for any floating dtype (the tape's gradient accumulation).
inline void add_inplace_any(TensorBase& dst, const TensorBase& src) {
  check_same_shape("gradient accumulation", dst, src);
  check_same_device("gradient accumulation", dst, src);
  switch (dst.dtype()) {
    case DType::F32: {
      Tensor<float> d(dst);
      RESNET_DISPATCH(dst.device(), add_inplace, d, Tensor<float>(src), 1.0);
      return;
    }
    case DType::F64: {
      Tensor<double> d(dst);
      RESNET_DISPATCH(dst.device(), add_inplace, d, Tensor<double>(src), 1.0);
      return;
    }
#if RESNET_WITH_CUDA
    case DType::F16: {
      Tensor<half_t> d(dst);
      cuda::add_inplace(d, Tensor<half_t>(src), 1.0);
      return;
    }
    case DType::BF16: {
      Tensor<bf16_t> d(dst);
      cuda::add_inplace(d, Tensor<bf16_t>(src), 1.0);
      return;
    }
#endif
    default:
      RESNET_FAIL("gradient accumulation: unsupported dtype ", dtype_name(dst.dtype()), " on ", dst.device().to_string());
  }
}

}  // namespace backend
}  // namespace resnet
