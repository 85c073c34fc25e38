// One dispatch point for every backend function: the CPU and CUDA backends share signatures, and
// RESNET_DISPATCH(device, fn, args...) calls cpu::fn or cuda::fn by the device of the tensors.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/backend/cpu/cpu.hpp"
#include "resnet/core/tensor.hpp"

#if RESNET_WITH_CUDA
#include "resnet/backend/cuda/cuda.hpp"
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace detail {
[[noreturn]] inline void no_cuda(const char* fn) {
  RESNET_FAIL(
      fn, ": tensor is on a CUDA device but this program was built without CUDA support (link resnet::cuda)");
}

// float16 tensors compute on CUDA devices only; bfloat16 runs on both (the CPU backend reads and writes
// bfloat16 and computes in float: backend/cpu/bf16.hpp). cpu_call keeps cpu::fn<half_t> from being
// instantiated (a ResNet<half_t> must compile for the GPU) and turns such a call into an error that says
// what to do. The one exception is a dtype conversion (cast: two tensors of different types), which the
// CPU does through float.
template <typename T>
struct is_16bit : std::integral_constant<bool, std::is_same<T, half_t>::value> {};
template <typename A>
struct holds_16bit : std::false_type {};
template <typename T>
struct holds_16bit<Tensor<T>> : is_16bit<T> {};
template <typename T>
struct holds_16bit<Tensor<T>*> : is_16bit<T> {};
template <typename T>
struct holds_16bit<const Tensor<T>*> : is_16bit<T> {};
template <typename... A>
struct is_conversion : std::false_type {};
template <typename S, typename D>
struct is_conversion<Tensor<S>, Tensor<D>> : std::integral_constant<bool, !std::is_same<S, D>::value> {};
template <typename R, typename F, typename... A>
R cpu_call(const char* fn, F&& f, A&&... args) {
  if constexpr ((holds_16bit<std::decay_t<A>>::value || ...) && !is_conversion<std::decay_t<A>...>::value) {
    RESNET_FAIL(fn, ": float16 tensors are supported on CUDA devices only; ",
                "move them to the GPU or use float or bfloat16");
  } else {
    return f(std::forward<A>(args)...);
  }
}
}  // namespace detail
}  // namespace RESNET_ABI
}  // namespace resnet

#if RESNET_WITH_CUDA
#define RESNET_DISPATCH(device, fn, ...)                                                       \
  ((device).is_cuda() ? ::resnet::cuda::fn(__VA_ARGS__)                                        \
                      : ::resnet::detail::cpu_call<decltype(::resnet::cuda::fn(__VA_ARGS__))>( \
                            #fn,                                                               \
                            [&](auto&&... a) -> decltype(auto) {                               \
                              return ::resnet::cpu::fn(std::forward<decltype(a)>(a)...);       \
                            },                                                                 \
                            __VA_ARGS__))
#else
#define RESNET_DISPATCH(device, fn, ...) \
  ((device).is_cuda() ? ::resnet::detail::no_cuda(#fn) : ::resnet::cpu::fn(__VA_ARGS__))
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace backend {

// dst += src for any floating dtype (the tape's gradient accumulation).
inline void add_inplace_any(TensorBase& dst, const TensorBase& src) {
  check_same_shape("gradient accumulation", dst, src);
  check_same_device("gradient accumulation", dst, src);
  if (dst.is_dense() && src.is_dense() && !dst.same_layout(src)) {
    // Gradients from consumers of two memory formats: src is reordered into dst's first.
    TensorBase t = TensorBase::empty(src.shape(), src.dtype(), src.device(), dst.suggest_memory_format());
    copy_into(t, src);
    return add_inplace_any(dst, t);
  }
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
    case DType::BF16: {
      Tensor<bf16_t> d(dst);
      RESNET_DISPATCH(dst.device(), add_inplace, d, Tensor<bf16_t>(src), 1.0);
      return;
    }
#if RESNET_WITH_CUDA
    case DType::F16: {
      Tensor<half_t> d(dst);
      cuda::add_inplace(d, Tensor<half_t>(src), 1.0);
      return;
    }
#endif
    default:
      RESNET_FAIL("gradient accumulation: unsupported dtype ", dtype_name(dst.dtype()), " on ",
                  dst.device().to_string());
  }
}

}  // namespace backend
}  // namespace RESNET_ABI
}  // namespace resnet
