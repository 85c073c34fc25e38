// resnet::cuda softmax and the fused log-softmax + cross-entropy loss, forward and backward: checks as in
// the CPU backend, then the kernels of kernels/loss.cuh.
#include "resnet/core/abi.hpp"
#include "context.cuh"
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
  const int dev = cuda_device("softmax", x, "input");
  OpScope op("softmax", dev);
  check_rank("softmax", x, 2, "input");
  check_same_shape("softmax", x, y);
  check_cuda_tensor("softmax", x, dev, "input");
  check_cuda_tensor("softmax", y, dev, "output");
  kernels::softmax_forward(x.data(), y.data(), x.dim(0), x.dim(1), launch_env(dev));
}

template <typename T>
void softmax_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  const int dev = cuda_device("softmax_backward", y, "output");
  OpScope op("softmax_backward", dev);
  check_rank("softmax_backward", y, 2, "output");
  check_same_shape("softmax_backward", y, dy);
  check_same_shape("softmax_backward", y, dx);
  check_cuda_tensor("softmax_backward", y, dev, "saved output");
  check_cuda_tensor("softmax_backward", dy, dev, "output gradient");
  check_cuda_tensor("softmax_backward", dx, dev, "input gradient");
  kernels::softmax_backward(y.data(), dy.data(), dx.data(), y.dim(0), y.dim(1), accumulate, launch_env(dev));
}

template <typename T>
void cross_entropy_forward(const Tensor<T>& logits, const Tensor<int32_t>& labels, double label_smoothing,
                           Tensor<T>& loss, Tensor<T>& probs) {
  const int dev = cuda_device("cross_entropy", logits, "logits");
  OpScope op("cross_entropy", dev);
  check_rank("cross_entropy", logits, 2, "logits");
  check_rank("cross_entropy", labels, 1, "labels");
  const int64_t N = logits.dim(0), K = logits.dim(1);
  RESNET_CHECK(labels.dim(0) == N, "cross_entropy: ", labels.dim(0), " labels for logits of shape ",
               logits.shape());
  check_same_shape("cross_entropy", logits, probs);
  RESNET_CHECK(loss.numel() == 1, "cross_entropy: loss must have one element");
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
  const int dev = cuda_device("cross_entropy_backward", probs, "probabilities");
  OpScope op("cross_entropy_backward", dev);
  check_rank("cross_entropy_backward", probs, 2, "probabilities");
  check_same_shape("cross_entropy_backward", probs, dlogits);
  RESNET_CHECK(labels.numel() == probs.dim(0), "cross_entropy_backward: ", labels.numel(), " labels for ",
               probs.dim(0), " rows");
  RESNET_CHECK(dloss.numel() == 1, "cross_entropy_backward: loss gradient must have one element");
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
