// Elementwise ops, losses, optimizer updates and per-step bookkeeping of the compiled CPU backend.
#include "src/cpu/instantiate.hpp"
// clang-format off
#include "resnet/backend/cpu/elementwise.hpp"
#include "resnet/backend/cpu/loss.hpp"
#include "resnet/backend/cpu/optim.hpp"
#include "resnet/backend/cpu/step_state.hpp"
// clang-format on

namespace resnet {
inline namespace RESNET_ABI {
namespace cpu {

#define RESNET_CPU_ELEMENTWISE(T)                                                                      \
  template void fill<T>(Tensor<T>&, double);                                                           \
  template void add<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&);                                \
  template void add_inplace<T>(Tensor<T>&, const Tensor<T>&, double);                                  \
  template void scale<T>(const Tensor<T>&, double, Tensor<T>&);                                        \
  template void mul<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool);                          \
  template void relu_forward<T>(const Tensor<T>&, Tensor<T>&);                                         \
  template void relu_backward<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool);                \
  template void sum_all<T>(const Tensor<T>&, Tensor<T>&);                                              \
  template void broadcast_scalar<T>(const Tensor<T>&, double, Tensor<T>&, bool);                       \
  template bool all_finite<T>(const Tensor<T>&);                                                       \
  template void softmax_forward<T>(const Tensor<T>&, Tensor<T>&);                                      \
  template void softmax_backward<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool);             \
  template void cross_entropy_forward<T>(const Tensor<T>&, const Tensor<int32_t>&, double, Tensor<T>&, \
                                         Tensor<T>&);                                                  \
  template void cross_entropy_backward<T>(const Tensor<T>&, const Tensor<int32_t>&, double,            \
                                          const Tensor<T>&, Tensor<T>&, bool);                         \
  template void record_step_loss<T>(const Tensor<T>&, Tensor<double>&, Tensor<double>*, double, double);
RESNET_FOR_EACH_CPU_DTYPE(RESNET_CPU_ELEMENTWISE)

// Optimizer state is float or double (bfloat16 weights keep float masters).
#define RESNET_CPU_OPTIM(P)                                                                                \
  template void sgd_step<P>(Tensor<P>&, const Tensor<P>&, Tensor<P>&, const Tensor<double>&,               \
                            const SgdHyper&);                                                              \
  template void adamw_step<P>(Tensor<P>&, const Tensor<P>&, Tensor<P>&, Tensor<P>&, const Tensor<double>&, \
                              const AdamHyper&);                                                           \
  template void bn_running_invstd<P>(const Tensor<P>&, double, Tensor<P>&);
RESNET_CPU_OPTIM(float)
RESNET_CPU_OPTIM(double)

// Conversions between every pair of dtypes, float16 included: the CPU converts through float.
#define RESNET_CPU_CAST(S, D) template void cast<S, D>(const Tensor<S>&, Tensor<D>&);
#define RESNET_CPU_CAST_FROM(S) \
  RESNET_CPU_CAST(S, float)     \
  RESNET_CPU_CAST(S, double)    \
  RESNET_CPU_CAST(S, bf16_t)    \
  RESNET_CPU_CAST(S, half_t)
RESNET_CPU_CAST_FROM(float)
RESNET_CPU_CAST_FROM(double)
RESNET_CPU_CAST_FROM(bf16_t)
RESNET_CPU_CAST_FROM(half_t)

}  // namespace cpu
}  // namespace RESNET_ABI
}  // namespace resnet
