// BatchNorm of the compiled CPU backend: one device and cross-replica (SyncBatchNorm) statistics.
#include "src/cpu/instantiate.hpp"
// clang-format off
#include "resnet/backend/cpu/batchnorm.hpp"
#include "resnet/backend/cpu/batchnorm_sync.hpp"
// clang-format on

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

#define RESNET_CPU_BATCHNORM(T)                                                                          \
  template void batchnorm_forward_training<T, acc_t<T>>(                                                 \
      const Tensor<T>&, const Tensor<T>*, const Tensor<acc_t<T>>&, const Tensor<acc_t<T>>&,              \
      Tensor<acc_t<T>>&, Tensor<acc_t<T>>&, Tensor<acc_t<T>>&, Tensor<acc_t<T>>&, Tensor<T>&,            \
      const BatchNormParams&, Activation);                                                               \
  template void batchnorm_forward_inference<T, acc_t<T>>(                                                \
      const Tensor<T>&, const Tensor<T>*, const Tensor<acc_t<T>>&, const Tensor<acc_t<T>>&,              \
      const Tensor<acc_t<T>>&, const Tensor<acc_t<T>>&, Tensor<T>&, const BatchNormParams&, Activation); \
  template void batchnorm_backward<T, acc_t<T>>(                                                         \
      const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<acc_t<T>>&,                     \
      const Tensor<acc_t<T>>&, const Tensor<acc_t<T>>&, bool, Activation, Tensor<T>*, bool, Tensor<T>*,  \
      bool, Tensor<acc_t<T>>*, Tensor<acc_t<T>>*, bool);                                                 \
  template void batchnorm_sync_stats<T>(const Tensor<T>&, Tensor<double>&);                              \
  template void batchnorm_sync_backward_reduce<T, acc_t<T>>(                                             \
      const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<acc_t<T>>&,                     \
      const Tensor<acc_t<T>>&, Activation, Tensor<double>&, Tensor<acc_t<T>>*, Tensor<acc_t<T>>*, bool); \
  template void batchnorm_sync_backward_apply<T, acc_t<T>>(                                              \
      const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Tensor<acc_t<T>>&,                     \
      const Tensor<acc_t<T>>&, const Tensor<acc_t<T>>&, const Tensor<double>&, const Tensor<double>&,    \
      Activation, Tensor<T>*, bool, Tensor<T>*, bool);
RESNET_FOR_EACH_CPU_DTYPE(RESNET_CPU_BATCHNORM)

#define RESNET_CPU_BATCHNORM_COMBINE(P)                                                              \
  template void batchnorm_sync_combine<P>(const Tensor<double>&, Tensor<P>&, Tensor<P>&, Tensor<P>&, \
                                          Tensor<P>&, Tensor<P>&, Tensor<double>&, const BatchNormParams&);
RESNET_CPU_BATCHNORM_COMBINE(float)
RESNET_CPU_BATCHNORM_COMBINE(double)

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
