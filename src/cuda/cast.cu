// resnet::cuda dtype casts between float, double, float16 and bfloat16 (all 16 pairs): checks, then the
// vectorised map of kernels/elementwise.cuh.
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "resnet/backend/contract/elementwise.hpp"
#include "kernels/elementwise.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_dense;
using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

template <typename S, typename D>
void cast(const Tensor<S>& x, Tensor<D>& y) {
  contract::elementwise("cast", x, nullptr, y);
  const int dev = cuda_device("cast", x, "input");
  OpScope op("cast", dev);
  check_cuda_dense("cast", x, dev, "input");
  check_cuda_dense("cast", y, dev, "output");
  kernels::cast(x.data(), y.data(), x.numel(), launch_env(dev));
}

// ---------------------------------------------------------------- explicit instantiations

#define RESNET_CUDA_CAST(S, D) template void cast<S, D>(const Tensor<S>&, Tensor<D>&);
#define RESNET_CUDA_CAST_FROM(S) \
  RESNET_CUDA_CAST(S, float)     \
  RESNET_CUDA_CAST(S, double) RESNET_CUDA_CAST(S, half_t) RESNET_CUDA_CAST(S, bf16_t)
RESNET_CUDA_CAST_FROM(float)
RESNET_CUDA_CAST_FROM(double)
RESNET_CUDA_CAST_FROM(half_t)
RESNET_CUDA_CAST_FROM(bf16_t)

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
