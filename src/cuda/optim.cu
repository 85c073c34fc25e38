// resnet::cuda optimizer updates (SGD with momentum/Nesterov/weight decay, AdamW) on float and double
// master weights: checks, then the fused update kernels of kernels/optim.cuh. The learning rate, step
// number and skip flag are read by the kernels from the optimizer's step state in device memory.
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "resnet/backend/contract/optim.hpp"
#include "kernels/optim.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_tensor;
using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

void optim_begin_step(Tensor<double>& state) {
  contract::optim_begin_step("optim_begin_step", state);
  const int dev = cuda_device("optim_begin_step", state, "step state");
  OpScope op("optim_begin_step", dev);
  kernels::optim_begin_step(state.data(), launch_env(dev));
}

template <typename P>
void sgd_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& momentum_buf, const Tensor<double>& state,
              const SgdHyper& h) {
  contract::sgd_step("sgd_step", param, grad, momentum_buf, state, h);
  const int dev = cuda_device("sgd_step", param, "parameter");
  OpScope op("sgd_step", dev);
  check_cuda_tensor("sgd_step", param, dev, "parameter");
  check_cuda_tensor("sgd_step", grad, dev, "gradient");
  check_cuda_tensor("sgd_step", state, dev, "step state");
  P* buf = nullptr;
  if (h.momentum != 0.0) {
    check_cuda_tensor("sgd_step", momentum_buf, dev, "momentum buffer");
    buf = momentum_buf.data();
  }
  kernels::sgd_step(param.data(), grad.data(), buf, param.numel(), state.data(), h, launch_env(dev));
}

template <typename P>
void adamw_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& m, Tensor<P>& v,
                const Tensor<double>& state, const AdamHyper& h) {
  contract::adamw_step("adamw_step", param, grad, m, v, state, h);
  const int dev = cuda_device("adamw_step", param, "parameter");
  OpScope op("adamw_step", dev);
  check_cuda_tensor("adamw_step", param, dev, "parameter");
  check_cuda_tensor("adamw_step", grad, dev, "gradient");
  check_cuda_tensor("adamw_step", m, dev, "first moment");
  check_cuda_tensor("adamw_step", v, dev, "second moment");
  check_cuda_tensor("adamw_step", state, dev, "step state");
  kernels::adamw_step(param.data(), grad.data(), m.data(), v.data(), param.numel(), state.data(), h,
                      launch_env(dev));
}

// ---------------------------------------------------------------- explicit instantiations

#define RESNET_CUDA_OPTIM(P)                                                                               \
  template void sgd_step<P>(Tensor<P>&, const Tensor<P>&, Tensor<P>&, const Tensor<double>&,               \
                            const SgdHyper&);                                                              \
  template void adamw_step<P>(Tensor<P>&, const Tensor<P>&, Tensor<P>&, Tensor<P>&, const Tensor<double>&, \
                              const AdamHyper&);
RESNET_CUDA_OPTIM(float)
RESNET_CUDA_OPTIM(double)

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
