// resnet::cuda elementwise ops (fill, add, scale, mul, ReLU) and whole-tensor reductions (sum, the
// scalar broadcast of its gradient, the finiteness check): checks as in the CPU backend, then the kernels
// of kernels/elementwise.cuh and kernels/reduction.cuh on the current stream.
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "host_sync.cuh"
#include "resnet/backend/contract/elementwise.hpp"
#include "kernels/elementwise.cuh"
#include "kernels/reduction.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_dense;
using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

template <typename T>
void fill(Tensor<T>& y, double value) {
  contract::fill("fill", y);
  const int dev = cuda_device("fill", y, "output");
  OpScope op("fill", dev);
  check_cuda_dense("fill", y, dev, "output");
  kernels::fill(y.data(), y.numel(), value, launch_env(dev));
}

template <typename T>
void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y) {
  contract::elementwise("add", a, &b, y);
  const int dev = cuda_device("add", a, "input");
  OpScope op("add", dev);
  check_cuda_dense("add", a, dev, "first input");
  check_cuda_dense("add", b, dev, "second input");
  check_cuda_dense("add", y, dev, "output");
  kernels::add(a.data(), b.data(), y.data(), y.numel(), launch_env(dev));
}

template <typename T>
void add_inplace(Tensor<T>& y, const Tensor<T>& x, double alpha) {
  contract::elementwise("add_inplace", x, nullptr, y);
  const int dev = cuda_device("add_inplace", y, "output");
  OpScope op("add_inplace", dev);
  check_cuda_dense("add_inplace", y, dev, "output");
  check_cuda_dense("add_inplace", x, dev, "input");
  kernels::add_inplace(y.data(), x.data(), y.numel(), alpha, launch_env(dev));
}

template <typename T>
void scale(const Tensor<T>& x, double alpha, Tensor<T>& y) {
  contract::elementwise("scale", x, nullptr, y);
  const int dev = cuda_device("scale", x, "input");
  OpScope op("scale", dev);
  check_cuda_dense("scale", x, dev, "input");
  check_cuda_dense("scale", y, dev, "output");
  kernels::scale(x.data(), alpha, y.data(), y.numel(), launch_env(dev));
}

template <typename T>
void mul(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y, bool accumulate) {
  contract::elementwise("mul", a, &b, y);
  const int dev = cuda_device("mul", a, "input");
  OpScope op("mul", dev);
  check_cuda_dense("mul", a, dev, "first input");
  check_cuda_dense("mul", b, dev, "second input");
  check_cuda_dense("mul", y, dev, "output");
  kernels::mul(a.data(), b.data(), y.data(), y.numel(), accumulate, launch_env(dev));
}

template <typename T>
void relu_forward(const Tensor<T>& x, Tensor<T>& y) {
  contract::elementwise("relu", x, nullptr, y);
  const int dev = cuda_device("relu", x, "input");
  OpScope op("relu", dev);
  check_cuda_dense("relu", x, dev, "input");
  check_cuda_dense("relu", y, dev, "output");
  kernels::relu_forward(x.data(), y.data(), y.numel(), launch_env(dev));
}

template <typename T>
void relu_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  contract::elementwise("relu_backward", y, &dy, dx);
  const int dev = cuda_device("relu_backward", y, "output");
  OpScope op("relu_backward", dev);
  check_cuda_dense("relu_backward", y, dev, "saved output");
  check_cuda_dense("relu_backward", dy, dev, "output gradient");
  check_cuda_dense("relu_backward", dx, dev, "input gradient");
  kernels::relu_backward(y.data(), dy.data(), dx.data(), y.numel(), accumulate, launch_env(dev));
}

template <typename T>
void sum_all(const Tensor<T>& x, Tensor<T>& y) {
  contract::sum_all("sum_all", x, y);
  const int dev = cuda_device("sum_all", x, "input");
  OpScope op("sum_all", dev);
  check_cuda_dense("sum_all", x, dev, "input");
  check_cuda_dense("sum_all", y, dev, "output");
  kernels::sum_all(x.data(), x.numel(), y.data(), detail::workspace(dev, kernels::sum_all_workspace_bytes()),
                   launch_env(dev));
}

template <typename T>
void broadcast_scalar(const Tensor<T>& dy, double alpha, Tensor<T>& dx, bool accumulate) {
  contract::broadcast_scalar("broadcast_scalar", dy, dx);
  const int dev = cuda_device("broadcast_scalar", dy, "gradient");
  OpScope op("broadcast_scalar", dev);
  check_cuda_dense("broadcast_scalar", dy, dev, "gradient");
  check_cuda_dense("broadcast_scalar", dx, dev, "input gradient");
  kernels::broadcast_scalar(dy.data(), alpha, dx.data(), dx.numel(), accumulate, launch_env(dev));
}

template <typename T>
bool all_finite(const Tensor<T>& x) {
  const int dev = cuda_device("all_finite", x, "input");
  OpScope op("all_finite", dev);
  check_cuda_dense("all_finite", x, dev, "input");
  if (x.numel() == 0) return true;
  auto* flag = static_cast<int*>(detail::workspace(dev, sizeof(int)));
  cudaStream_t s = detail::stream(dev);
  RESNET_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), s));
  kernels::find_non_finite(x.data(), x.numel(), flag, launch_env(dev));
  int host = 0;
  detail::count_host_sync(HostSync::AllFinite);
  RESNET_CUDA_CHECK(cudaMemcpyAsync(&host, flag, sizeof(int), cudaMemcpyDeviceToHost, s));
  RESNET_CUDA_CHECK(cudaStreamSynchronize(s));
  return host == 0;
}

// ---------------------------------------------------------------- explicit instantiations

#define RESNET_CUDA_ELEMENTWISE(T)                                                      \
  template void fill<T>(Tensor<T>&, double);                                            \
  template void add<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&);                 \
  template void add_inplace<T>(Tensor<T>&, const Tensor<T>&, double);                   \
  template void scale<T>(const Tensor<T>&, double, Tensor<T>&);                         \
  template void mul<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool);           \
  template void relu_forward<T>(const Tensor<T>&, Tensor<T>&);                          \
  template void relu_backward<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool); \
  template void sum_all<T>(const Tensor<T>&, Tensor<T>&);                               \
  template void broadcast_scalar<T>(const Tensor<T>&, double, Tensor<T>&, bool);        \
  template bool all_finite<T>(const Tensor<T>&);
RESNET_CUDA_ELEMENTWISE(float)
RESNET_CUDA_ELEMENTWISE(double)
RESNET_CUDA_ELEMENTWISE(half_t)
RESNET_CUDA_ELEMENTWISE(bf16_t)

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
