// What the compiled library instantiates once, declared `extern template` for a user's unit in the compiled
// mode (RESNET_SEPARATE_COMPILATION=1, the resnet::resnet CMake target): the tensor, the ops with their
// backward closures, the layers, the networks and the optimizers for the dtypes we ship. A unit then emits
// calls instead of compiling these again; src/instantiate/*.cpp holds the matching definitions. In
// header-only mode this file declares nothing and every unit instantiates what it uses, as before.
//
// A member function defined inside its class template is inline, and GCC instantiates the inline members of
// an extern template for inlining anyway; so these classes define every member of more than one line out of
// the class (not inline), and a user's unit compiles only the one-liners. The class layouts and declarations
// are the same in both modes, so a header-only unit and a compiled-mode unit can be linked into one program.
#pragma once

#include "resnet/backend/cpu/cpu.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/nn/nn.hpp"
#include "resnet/ops/ops.hpp"
#include "resnet/optim/optim.hpp"

// The one list of what the library instantiates, as X-macros over a dtype: RESNET_COMPILED_TENSOR_OPS(T)
// for T = float, double, bf16_t; RESNET_COMPILED_OPTIM(P) for the parameter types P = float, double.
// `RESNET_EXTERN` is `extern` for a declaration and empty for the library's definitions.
#define RESNET_COMPILED_TENSOR_OPS(RESNET_EXTERN, T)                                                        \
  RESNET_EXTERN template class Tensor<T>;                                                                   \
  RESNET_EXTERN template Tensor<T> conv2d<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&,          \
                                             const ConvParams&);                                            \
  RESNET_EXTERN template Tensor<T> conv2d<T>(const Tensor<T>&, const Tensor<T>&, const ConvParams&);        \
  RESNET_EXTERN template Tensor<T> batch_norm<T, acc_t<T>>(                                                 \
      const Tensor<T>&, const Tensor<T>&, const Tensor<acc_t<T>>&, const Tensor<acc_t<T>>&,                 \
      Tensor<acc_t<T>>&, Tensor<acc_t<T>>&, bool, const BatchNormParams&, Activation);                      \
  RESNET_EXTERN template Tensor<T> linear<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&);         \
  RESNET_EXTERN template Tensor<T> softmax<T>(const Tensor<T>&);                                            \
  RESNET_EXTERN template Tensor<T> cross_entropy<T>(const Tensor<T>&, const Tensor<int32_t>&, double);      \
  RESNET_EXTERN template Tensor<T> cross_entropy<T>(const Tensor<T>&, const std::vector<int32_t>&, double); \
  RESNET_EXTERN template Tensor<T> max_pool2d<T>(const Tensor<T>&, const PoolParams&);                      \
  RESNET_EXTERN template Tensor<T> avg_pool2d<T>(const Tensor<T>&, const PoolParams&);                      \
  RESNET_EXTERN template Tensor<T> global_avg_pool<T>(const Tensor<T>&);                                    \
  RESNET_EXTERN template Tensor<T> add<T>(const Tensor<T>&, const Tensor<T>&);                              \
  RESNET_EXTERN template Tensor<T> mul<T>(const Tensor<T>&, const Tensor<T>&);                              \
  RESNET_EXTERN template Tensor<T> scale<T>(const Tensor<T>&, double);                                      \
  RESNET_EXTERN template Tensor<T> relu<T>(const Tensor<T>&);                                               \
  RESNET_EXTERN template Tensor<T> sum<T>(const Tensor<T>&);                                                \
  RESNET_EXTERN template Tensor<T> mean<T>(const Tensor<T>&);                                               \
  RESNET_EXTERN template Tensor<T> reshape<T>(const Tensor<T>&, const Shape&);                              \
  RESNET_EXTERN template Tensor<T> flatten<T>(const Tensor<T>&);                                            \
  RESNET_EXTERN template Tensor<T> to_memory_format<T>(const Tensor<T>&, MemoryFormat);                     \
  namespace nn {                                                                                            \
  RESNET_EXTERN template class Module<T>;                                                                   \
  RESNET_EXTERN template class ReLU<T>;                                                                     \
  RESNET_EXTERN template class Softmax<T>;                                                                  \
  RESNET_EXTERN template class Conv2d<T>;                                                                   \
  RESNET_EXTERN template class BatchNorm2d<T>;                                                              \
  RESNET_EXTERN template class Linear<T>;                                                                   \
  RESNET_EXTERN template class MaxPool2d<T>;                                                                \
  RESNET_EXTERN template class AvgPool2d<T>;                                                                \
  RESNET_EXTERN template class GlobalAvgPool2d<T>;                                                          \
  RESNET_EXTERN template class Sequential<T>;                                                               \
  }                                                                                                         \
  namespace models {                                                                                        \
  RESNET_EXTERN template class ResidualBlock<T>;                                                            \
  RESNET_EXTERN template class ResNet<T>;                                                                   \
  }

#define RESNET_COMPILED_OPTIM(RESNET_EXTERN, P) \
  namespace optim {                             \
  RESNET_EXTERN template class Optimizer<P>;    \
  RESNET_EXTERN template class SGD<P>;          \
  RESNET_EXTERN template class AdamW<P>;        \
  }

#if RESNET_SEPARATE_COMPILATION && !defined(RESNET_IMPLEMENTATION)
namespace resnet {
inline namespace RESNET_ABI {
RESNET_COMPILED_TENSOR_OPS(extern, float)
RESNET_COMPILED_TENSOR_OPS(extern, double)
RESNET_COMPILED_TENSOR_OPS(extern, bf16_t)
RESNET_COMPILED_OPTIM(extern, float)
RESNET_COMPILED_OPTIM(extern, double)
}  // namespace RESNET_ABI
}  // namespace resnet
#endif
