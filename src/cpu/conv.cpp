// Convolutions of the compiled CPU backend (oneDNN, im2col + BLAS, the references).
#include "src/cpu/instantiate.hpp"
// clang-format off
#include "resnet/backend/cpu/conv.hpp"
// clang-format on

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

#define RESNET_CPU_CONV(T)                                                                                   \
  template void conv2d_forward<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>*, Tensor<T>&,          \
                                  const ConvParams&);                                                        \
  template void conv2d_backward_data<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, const ConvParams&,   \
                                        bool);                                                               \
  template void conv2d_backward_weight<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, const ConvParams&, \
                                          bool);                                                             \
  template void conv2d_backward_bias<T>(const Tensor<T>&, Tensor<T>&, bool);
RESNET_FOR_EACH_CPU_DTYPE(RESNET_CPU_CONV)
template std::string describe_bf16_conv<void>();

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
