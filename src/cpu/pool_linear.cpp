// Pooling and the fully connected layer of the compiled CPU backend.
#include "src/cpu/instantiate.hpp"
// clang-format off
#include "resnet/backend/cpu/linear.hpp"
#include "resnet/backend/cpu/pool.hpp"
// clang-format on

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

#define RESNET_CPU_POOL_LINEAR(T)                                                                          \
  template void maxpool2d_forward<T>(const Tensor<T>&, Tensor<T>&, Tensor<int32_t>&, const PoolParams&);   \
  template void maxpool2d_backward<T>(const Tensor<T>&, const Tensor<int32_t>&, Tensor<T>&, bool);         \
  template void avgpool2d_forward<T>(const Tensor<T>&, Tensor<T>&, const PoolParams&);                     \
  template void avgpool2d_backward<T>(const Tensor<T>&, Tensor<T>&, const PoolParams&, bool);              \
  template void global_avgpool_forward<T>(const Tensor<T>&, Tensor<T>&);                                   \
  template void global_avgpool_backward<T>(const Tensor<T>&, Tensor<T>&, bool);                            \
  template void linear_forward<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>*, Tensor<T>&);       \
  template void linear_backward<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, Tensor<T>*, bool, \
                                   Tensor<T>*, Tensor<T>*, bool);
RESNET_FOR_EACH_CPU_DTYPE(RESNET_CPU_POOL_LINEAR)

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
