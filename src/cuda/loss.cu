// resnet::cuda softmax and the fused log-softmax + cross-entropy loss, forward and backward: checks as in
// the CPU backend, then the kernels of kernels/loss.cuh.
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "resnet/backend/contract/loss.hpp"
#include "kernels/loss.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_tensor;
using detail::check_index_range;
using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

template <typename T>
void softmax_forward(const Tensor<T>& x, Tensor<T>& y) {
  contract::softmax("softmax", x, y);
  const int dev = cuda_device("softmax", x, "input");
  OpScope op("softmax", dev);
  check_cuda_tensor("softmax", x, dev, "input");
  check_cuda_tensor("softmax", y, dev, "output");
  kernels::softmax_forward(x.data(), y.data(), x.dim(0), x.dim(1), launch_env(dev));
}

template <typename T>
void softmax_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  contract::softmax_backward("softmax_backward", y, dy, dx);
  const int dev = cuda_device("softmax_backward", y, "output");
  OpScope op("softmax_backward", dev);
  check_cuda_tensor("softmax_backward", y, dev, "saved output");
  check_cuda_tensor("softmax_backward", dy, dev, "output gradient");
  check_cuda_tensor("softmax_backward", dx, dev, "input gradient");
  kernels::softmax_backward(y.data(), dy.data(), dx.data(), y.dim(0), y.dim(1), accumulate, launch_env(dev));
}

template <typename T>
void cross_entropy_forward(const Tensor<T>& logits, const Tensor<int32_t>& labels, double label_smoothing,
                           Tensor<T>& loss, Tensor<T>& probs) {
  contract::cross_entropy("cross_entropy", logits, labels, label_smoothing, loss, probs);
  const int dev = cuda_device("cross_entropy", logits, "logits");
  OpScope op("cross_entropy", dev);
  const int64_t N = logits.dim(0), K = logits.dim(1);
  check_cuda_tensor("cross_entropy", logits, dev, "logits");
  check_cuda_tensor("cross_entropy", labels, dev, "labels");
  check_cuda_tensor("cross_entropy", loss, dev, "loss");
  check_cuda_tensor("cross_entropy", probs, dev, "probabilities");
  auto env = launch_env(dev);
  void* ws = detail::workspace(dev, kernels::cross_entropy_workspace_bytes(N));
  kernels::cross_entropy_forward(logits.data(), labels.data(), N, K, label_smoothing, loss.data(),
                                 probs.data(), ws, env);
}

template <typename T>
void cross_entropy_backward(const Tensor<T>& probs, const Tensor<int32_t>& labels, double label_smoothing,
                            const Tensor<T>& dloss, Tensor<T>& dlogits, bool accumulate) {
  contract::cross_entropy_backward("cross_entropy_backward", probs, labels, label_smoothing, dloss, dlogits);
  const int dev = cuda_device("cross_entropy_backward", probs, "probabilities");
  OpScope op("cross_entropy_backward", dev);
  check_cuda_tensor("cross_entropy_backward", probs, dev, "probabilities");
  check_cuda_tensor("cross_entropy_backward", labels, dev, "labels");
  check_cuda_tensor("cross_entropy_backward", dloss, dev, "loss gradient");
  check_cuda_tensor("cross_entropy_backward", dlogits, dev, "logits gradient");
  check_index_range("cross_entropy_backward", probs);
  kernels::cross_entropy_backward(probs.data(), labels.data(), label_smoothing, dloss.data(), dlogits.data(),
                                  probs.dim(0), probs.dim(1), accumulate, launch_env(dev));
}

// ---------------------------------------------------------------- explicit instantiations

#define RESNET_CUDA_LOSS(T)                                                                            \
  template void softmax_forward<T>(const Tensor<T>&, Tensor<T>&);                                      \
  template void softmax_backward<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool);             \
  template void cross_entropy_forward<T>(const Tensor<T>&, const Tensor<int32_t>&, double, Tensor<T>&, \
                                         Tensor<T>&);                                                  \
  template void cross_entropy_backward<T>(const Tensor<T>&, const Tensor<int32_t>&, double,            \
                                          const Tensor<T>&, Tensor<T>&, bool);
RESNET_CUDA_LOSS(float)
RESNET_CUDA_LOSS(double)
RESNET_CUDA_LOSS(half_t)
RESNET_CUDA_LOSS(bf16_t)

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
