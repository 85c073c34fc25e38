// resnet::cuda per-step bookkeeping that stays on the device (kernels/step_state.cuh): BatchNorm's batch
// counter, the Trainer's loss statistics with the optimizer's skip flag, and eval-mode BatchNorm's inverse
// standard deviation. None of them waits for the device.
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "resnet/backend/contract/step_state.hpp"
#include "kernels/step_state.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_tensor;
using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

void count_up(Tensor<int64_t>& counter) {
  contract::count_up("count_up", counter);
  const int dev = cuda_device("count_up", counter, "counter");
  OpScope op("count_up", dev);
  kernels::count_up(counter.data(), counter.numel(), launch_env(dev));
}

template <typename T>
void record_step_loss(const Tensor<T>& loss, Tensor<double>& stats, Tensor<double>* optim_state, double n,
                      double N) {
  contract::record_step_loss("record_step_loss", loss, stats, optim_state);
  const int dev = cuda_device("record_step_loss", loss, "loss");
  OpScope op("record_step_loss", dev);
  check_cuda_tensor("record_step_loss", stats, dev, "statistics");
  if (optim_state) check_cuda_tensor("record_step_loss", *optim_state, dev, "optimizer step state");
  kernels::record_step_loss(loss.data(), stats.data(), optim_state ? optim_state->data() : nullptr, n, N,
                            launch_env(dev));
}

template <typename P>
void bn_running_invstd(const Tensor<P>& running_var, double eps, Tensor<P>& invstd) {
  contract::bn_running_invstd("bn_running_invstd", running_var, invstd);
  const int dev = cuda_device("bn_running_invstd", running_var, "running_var");
  OpScope op("bn_running_invstd", dev);
  check_cuda_tensor("bn_running_invstd", invstd, dev, "invstd");
  kernels::bn_running_invstd(running_var.data(), eps, invstd.data(), invstd.numel(), launch_env(dev));
}

#define RESNET_CUDA_RECORD(T) \
  template void record_step_loss<T>(const Tensor<T>&, Tensor<double>&, Tensor<double>*, double, double);
RESNET_CUDA_RECORD(float)
RESNET_CUDA_RECORD(double)
RESNET_CUDA_RECORD(half_t)
RESNET_CUDA_RECORD(bf16_t)
template void bn_running_invstd<float>(const Tensor<float>&, double, Tensor<float>&);
template void bn_running_invstd<double>(const Tensor<double>&, double, Tensor<double>&);

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
