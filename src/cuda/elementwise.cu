// resnet::cuda elementwise ops, reductions, pooling, softmax/cross-entropy and optimizer updates: checks
// as in the CPU backend, then the kernels of kernels/*.cuh on the current stream.
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/loss.cuh"
#include "kernels/optim.cuh"
#include "kernels/pool.cuh"
#include "kernels/reduction.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_tensor;
using detail::check_index_range;
using detail::cuda_device;
using detail::launch_env;
using detail::OpScope;

// ---------------------------------------------------------------- elementwise

template <typename T>
void fill(Tensor<T>& y, double value) {
  const int dev = cuda_device("fill", y, "output");
  OpScope op("fill", dev);
  check_cuda_tensor("fill", y, dev, "output");
  kernels::fill(y.data(), y.numel(), value, launch_env(dev));
}

template <typename T>
void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y) {
  const int dev = cuda_device("add", a, "input");
  OpScope op("add", dev);
  check_same_shape("add", a, b);
  check_same_shape("add", a, y);
  check_cuda_tensor("add", a, dev, "first input");
  check_cuda_tensor("add", b, dev, "second input");
  check_cuda_tensor("add", y, dev, "output");
  kernels::add(a.data(), b.data(), y.data(), y.numel(), launch_env(dev));
}

template <typename T>
void add_inplace(Tensor<T>& y, const Tensor<T>& x, double alpha) {
  const int dev = cuda_device("add_inplace", y, "output");
  OpScope op("add_inplace", dev);
  check_same_shape("add_inplace", y, x);
  check_cuda_tensor("add_inplace", y, dev, "output");
  check_cuda_tensor("add_inplace", x, dev, "input");
  kernels::add_inplace(y.data(), x.data(), y.numel(), alpha, launch_env(dev));
}

template <typename T>
void scale(const Tensor<T>& x, double alpha, Tensor<T>& y) {
  const int dev = cuda_device("scale", x, "input");
  OpScope op("scale", dev);
  check_same_shape("scale", x, y);
  check_cuda_tensor("scale", x, dev, "input");
  check_cuda_tensor("scale", y, dev, "output");
  kernels::scale(x.data(), alpha, y.data(), y.numel(), launch_env(dev));
}

template <typename T>
void mul(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y, bool accumulate) {
  const int dev = cuda_device("mul", a, "input");
  OpScope op("mul", dev);
  check_same_shape("mul", a, b);
  check_same_shape("mul", a, y);
  check_cuda_tensor("mul", a, dev, "first input");
  check_cuda_tensor("mul", b, dev, "second input");
  check_cuda_tensor("mul", y, dev, "output");
  kernels::mul(a.data(), b.data(), y.data(), y.numel(), accumulate, launch_env(dev));
}

template <typename T>
void relu_forward(const Tensor<T>& x, Tensor<T>& y) {
  const int dev = cuda_device("relu", x, "input");
  OpScope op("relu", dev);
  check_same_shape("relu", x, y);
  check_cuda_tensor("relu", x, dev, "input");
  check_cuda_tensor("relu", y, dev, "output");
  kernels::relu_forward(x.data(), y.data(), y.numel(), launch_env(dev));
}

template <typename T>
void relu_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  const int dev = cuda_device("relu_backward", y, "output");
  OpScope op("relu_backward", dev);
  check_same_shape("relu_backward", y, dy);
  check_same_shape("relu_backward", y, dx);
  check_cuda_tensor("relu_backward", y, dev, "saved output");
  check_cuda_tensor("relu_backward", dy, dev, "output gradient");
  check_cuda_tensor("relu_backward", dx, dev, "input gradient");
  kernels::relu_backward(y.data(), dy.data(), dx.data(), y.numel(), accumulate, launch_env(dev));
}

template <typename T>
void sum_all(const Tensor<T>& x, Tensor<T>& y) {
  const int dev = cuda_device("sum_all", x, "input");
  OpScope op("sum_all", dev);
  RESNET_CHECK(y.numel() == 1, "sum_all: output must have one element, got ", y.shape());
  check_cuda_tensor("sum_all", x, dev, "input");
  check_cuda_tensor("sum_all", y, dev, "output");
  kernels::sum_all(x.data(), x.numel(), y.data(), detail::workspace(dev, kernels::sum_all_workspace_bytes()),
                   launch_env(dev));
}

template <typename T>
void broadcast_scalar(const Tensor<T>& dy, double alpha, Tensor<T>& dx, bool accumulate) {
  const int dev = cuda_device("broadcast_scalar", dy, "gradient");
  OpScope op("broadcast_scalar", dev);
  RESNET_CHECK(dy.numel() == 1, "broadcast_scalar: gradient must have one element, got ", dy.shape());
  check_cuda_tensor("broadcast_scalar", dy, dev, "gradient");
  check_cuda_tensor("broadcast_scalar", dx, dev, "input gradient");
  kernels::broadcast_scalar(dy.data(), alpha, dx.data(), dx.numel(), accumulate, launch_env(dev));
}

template <typename S, typename D>
void cast(const Tensor<S>& x, Tensor<D>& y) {
  const int dev = cuda_device("cast", x, "input");
  OpScope op("cast", dev);
  check_same_shape("cast", x, y);
  check_cuda_tensor("cast", x, dev, "input");
  check_cuda_tensor("cast", y, dev, "output");
  kernels::cast(x.data(), y.data(), x.numel(), launch_env(dev));
}

template <typename T>
bool all_finite(const Tensor<T>& x) {
  const int dev = cuda_device("all_finite", x, "input");
  OpScope op("all_finite", dev);
  check_cuda_tensor("all_finite", x, dev, "input");
  if (x.numel() == 0) return true;
  auto* flag = static_cast<int*>(detail::workspace(dev, sizeof(int)));
  cudaStream_t s = detail::stream(dev);
  RESNET_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), s));
  kernels::find_non_finite(x.data(), x.numel(), flag, launch_env(dev));
  int host = 0;
  RESNET_CUDA_CHECK(cudaMemcpyAsync(&host, flag, sizeof(int), cudaMemcpyDeviceToHost, s));
  RESNET_CUDA_CHECK(cudaStreamSynchronize(s));
  return host == 0;
}

// ---------------------------------------------------------------- pooling

namespace {
kernels::PoolGeom pool_geom(const TensorBase& x, const TensorBase& y, const PoolParams& p) {
  kernels::PoolGeom g;
  g.NC = x.dim(0) * x.dim(1);
  g.H = x.dim(2);
  g.W = x.dim(3);
  g.OH = y.dim(2);
  g.OW = y.dim(3);
  g.kh = static_cast<int>(p.kernel_h);
  g.kw = static_cast<int>(p.kernel_w);
  g.sh = static_cast<int>(p.stride_h);
  g.sw = static_cast<int>(p.stride_w);
  g.ph = static_cast<int>(p.pad_h);
  g.pw = static_cast<int>(p.pad_w);
  g.count_include_pad = p.count_include_pad;
  return g;
}
void check_pool_shapes(const char* op, const TensorBase& x, const TensorBase& y, const PoolParams& p) {
  check_rank(op, x, 4, "input");
  Shape expect{x.dim(0), x.dim(1), p.out_h(x.dim(2)), p.out_w(x.dim(3))};
  RESNET_CHECK(y.shape() == expect, op, ": output shape ", y.shape(), " does not match ", expect,
               " for input ", x.shape());
}
}  // namespace

template <typename T>
void maxpool2d_forward(const Tensor<T>& x, Tensor<T>& y, Tensor<int32_t>& indices, const PoolParams& p) {
  const int dev = cuda_device("max_pool2d", x, "input");
  OpScope op("max_pool2d", dev);
  check_pool_shapes("max_pool2d", x, y, p);
  check_same_shape("max_pool2d (indices)", y, indices);
  check_cuda_tensor("max_pool2d", x, dev, "input");
  check_cuda_tensor("max_pool2d", y, dev, "output");
  check_cuda_tensor("max_pool2d", indices, dev, "indices");
  kernels::maxpool_forward(x.data(), y.data(), indices.data(), pool_geom(x, y, p), launch_env(dev));
}

template <typename T>
void maxpool2d_backward(const Tensor<T>& dy, const Tensor<int32_t>& indices, Tensor<T>& dx, bool accumulate) {
  const int dev = cuda_device("max_pool2d_backward", dy, "output gradient");
  OpScope op("max_pool2d_backward", dev);
  check_same_shape("max_pool2d_backward", dy, indices);
  check_rank("max_pool2d_backward", dx, 4, "input gradient");
  check_rank("max_pool2d_backward", dy, 4, "output gradient");
  RESNET_CHECK(dx.dim(0) == dy.dim(0) && dx.dim(1) == dy.dim(1), "max_pool2d_backward: gradient ", dy.shape(),
               " does not match input gradient ", dx.shape());
  check_cuda_tensor("max_pool2d_backward", dy, dev, "output gradient");
  check_cuda_tensor("max_pool2d_backward", indices, dev, "indices");
  check_cuda_tensor("max_pool2d_backward", dx, dev, "input gradient");
  check_index_range("max_pool2d_backward", dy);
  kernels::maxpool_backward(dy.data(), indices.data(), dx.data(), dx.dim(0) * dx.dim(1),
                            dx.dim(2) * dx.dim(3), dy.dim(2) * dy.dim(3), accumulate, launch_env(dev));
}

template <typename T>
void avgpool2d_forward(const Tensor<T>& x, Tensor<T>& y, const PoolParams& p) {
  const int dev = cuda_device("avg_pool2d", x, "input");
  OpScope op("avg_pool2d", dev);
  check_pool_shapes("avg_pool2d", x, y, p);
  check_cuda_tensor("avg_pool2d", x, dev, "input");
  check_cuda_tensor("avg_pool2d", y, dev, "output");
  kernels::avgpool_forward(x.data(), y.data(), pool_geom(x, y, p), launch_env(dev));
}

template <typename T>
void avgpool2d_backward(const Tensor<T>& dy, Tensor<T>& dx, const PoolParams& p, bool accumulate) {
  const int dev = cuda_device("avg_pool2d_backward", dy, "output gradient");
  OpScope op("avg_pool2d_backward", dev);
  check_pool_shapes("avg_pool2d_backward", dx, dy, p);
  check_cuda_tensor("avg_pool2d_backward", dy, dev, "output gradient");
  check_cuda_tensor("avg_pool2d_backward", dx, dev, "input gradient");
  kernels::avgpool_backward(dy.data(), dx.data(), pool_geom(dx, dy, p), accumulate, launch_env(dev));
}

template <typename T>
void global_avgpool_forward(const Tensor<T>& x, Tensor<T>& y) {
  const int dev = cuda_device("global_avg_pool", x, "input");
  OpScope op("global_avg_pool", dev);
  check_rank("global_avg_pool", x, 4, "input");
  RESNET_CHECK(y.shape() == Shape({x.dim(0), x.dim(1)}), "global_avg_pool: output shape ", y.shape(),
               " does not match input ", x.shape());
  check_cuda_tensor("global_avg_pool", x, dev, "input");
  check_cuda_tensor("global_avg_pool", y, dev, "output");
  kernels::global_avgpool_forward(x.data(), y.data(), x.dim(0) * x.dim(1), x.dim(2) * x.dim(3),
                                  launch_env(dev));
}

template <typename T>
void global_avgpool_backward(const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  const int dev = cuda_device("global_avg_pool_backward", dy, "output gradient");
  OpScope op("global_avg_pool_backward", dev);
  check_rank("global_avg_pool_backward", dx, 4, "input gradient");
  const int64_t NC = dx.dim(0) * dx.dim(1), HW = dx.dim(2) * dx.dim(3);
  RESNET_CHECK(dy.numel() == NC, "global_avg_pool_backward: gradient ", dy.shape(), " does not match ",
               dx.shape());
  check_cuda_tensor("global_avg_pool_backward", dy, dev, "output gradient");
  check_cuda_tensor("global_avg_pool_backward", dx, dev, "input gradient");
  check_index_range("global_avg_pool_backward", dx);
  kernels::global_avgpool_backward(dy.data(), dx.data(), NC, HW, accumulate, launch_env(dev));
}

// ---------------------------------------------------------------- softmax and cross-entropy

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

// ---------------------------------------------------------------- optimizers

template <typename P>
void sgd_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& momentum_buf, const SgdHyper& h) {
  const int dev = cuda_device("sgd_step", param, "parameter");
  OpScope op("sgd_step", dev);
  check_same_shape("sgd_step", param, grad);
  check_cuda_tensor("sgd_step", param, dev, "parameter");
  check_cuda_tensor("sgd_step", grad, dev, "gradient");
  P* buf = nullptr;
  if (h.momentum != 0.0) {
    check_same_shape("sgd_step", param, momentum_buf);
    check_cuda_tensor("sgd_step", momentum_buf, dev, "momentum buffer");
    buf = momentum_buf.data();
  }
  kernels::sgd_step(param.data(), grad.data(), buf, param.numel(), kernels::sgd_coeffs<P>(h),
                    launch_env(dev));
}

template <typename P>
void adamw_step(Tensor<P>& param, const Tensor<P>& grad, Tensor<P>& m, Tensor<P>& v, const AdamHyper& h) {
  const int dev = cuda_device("adamw_step", param, "parameter");
  OpScope op("adamw_step", dev);
  check_same_shape("adamw_step", param, grad);
  check_same_shape("adamw_step", param, m);
  check_same_shape("adamw_step", param, v);
  check_cuda_tensor("adamw_step", param, dev, "parameter");
  check_cuda_tensor("adamw_step", grad, dev, "gradient");
  check_cuda_tensor("adamw_step", m, dev, "first moment");
  check_cuda_tensor("adamw_step", v, dev, "second moment");
  kernels::adamw_step(param.data(), grad.data(), m.data(), v.data(), param.numel(),
                      kernels::adam_coeffs<P>(h), launch_env(dev));
}

// ---------------------------------------------------------------- explicit instantiations

#define RESNET_CUDA_ELEMENTWISE(T)                                                                       \
  template void fill<T>(Tensor<T>&, double);                                                             \
  template void add<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&);                                  \
  template void add_inplace<T>(Tensor<T>&, const Tensor<T>&, double);                                    \
  template void scale<T>(const Tensor<T>&, double, Tensor<T>&);                                          \
  template void mul<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool);                            \
  template void relu_forward<T>(const Tensor<T>&, Tensor<T>&);                                           \
  template void relu_backward<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool);                  \
  template void sum_all<T>(const Tensor<T>&, Tensor<T>&);                                                \
  template void broadcast_scalar<T>(const Tensor<T>&, double, Tensor<T>&, bool);                         \
  template bool all_finite<T>(const Tensor<T>&);                                                         \
  template void maxpool2d_forward<T>(const Tensor<T>&, Tensor<T>&, Tensor<int32_t>&, const PoolParams&); \
  template void maxpool2d_backward<T>(const Tensor<T>&, const Tensor<int32_t>&, Tensor<T>&, bool);       \
  template void avgpool2d_forward<T>(const Tensor<T>&, Tensor<T>&, const PoolParams&);                   \
  template void avgpool2d_backward<T>(const Tensor<T>&, Tensor<T>&, const PoolParams&, bool);            \
  template void global_avgpool_forward<T>(const Tensor<T>&, Tensor<T>&);                                 \
  template void global_avgpool_backward<T>(const Tensor<T>&, Tensor<T>&, bool);                          \
  template void softmax_forward<T>(const Tensor<T>&, Tensor<T>&);                                        \
  template void softmax_backward<T>(const Tensor<T>&, const Tensor<T>&, Tensor<T>&, bool);               \
  template void cross_entropy_forward<T>(const Tensor<T>&, const Tensor<int32_t>&, double, Tensor<T>&,   \
                                         Tensor<T>&);                                                    \
  template void cross_entropy_backward<T>(const Tensor<T>&, const Tensor<int32_t>&, double,              \
                                          const Tensor<T>&, Tensor<T>&, bool);

RESNET_CUDA_ELEMENTWISE(float)
RESNET_CUDA_ELEMENTWISE(double)
RESNET_CUDA_ELEMENTWISE(half_t)
RESNET_CUDA_ELEMENTWISE(bf16_t)

#define RESNET_CUDA_CAST(S, D) template void cast<S, D>(const Tensor<S>&, Tensor<D>&);
#define RESNET_CUDA_CAST_FROM(S) \
  RESNET_CUDA_CAST(S, float)     \
  RESNET_CUDA_CAST(S, double) RESNET_CUDA_CAST(S, half_t) RESNET_CUDA_CAST(S, bf16_t)
RESNET_CUDA_CAST_FROM(float)
RESNET_CUDA_CAST_FROM(double)
RESNET_CUDA_CAST_FROM(half_t)
RESNET_CUDA_CAST_FROM(bf16_t)

#define RESNET_CUDA_OPTIM(P)                                                            \
  template void sgd_step<P>(Tensor<P>&, const Tensor<P>&, Tensor<P>&, const SgdHyper&); \
  template void adamw_step<P>(Tensor<P>&, const Tensor<P>&, Tensor<P>&, Tensor<P>&, const AdamHyper&);
RESNET_CUDA_OPTIM(float)
RESNET_CUDA_OPTIM(double)

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
