// resnet::cuda pooling: max (with indices), average and global average, forward and backward: checks as
// in the CPU backend, then the kernels of kernels/pool.cuh, or of kernels/pool_nhwc.cuh for channels-last
// tensors (the contracts make an op's activations share one format).
#include "resnet/core/abi.hpp"
#include "context.cuh"
#include "resnet/backend/contract/pool.hpp"
#include "kernels/pool.cuh"
#include "kernels/pool_nhwc.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

using detail::check_cuda_dense;
using detail::check_index_range;
using detail::cuda_device;
using detail::is_nhwc;
using detail::launch_env;
using detail::OpScope;

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
kernels::PoolGeomNhwc pool_geom_nhwc(const TensorBase& x, const TensorBase& y, const PoolParams& p) {
  kernels::PoolGeomNhwc q;
  q.g = pool_geom(x, y, p);
  q.N = x.dim(0);
  q.C = x.dim(1);
  return q;
}
}  // namespace

template <typename T>
void maxpool2d_forward(const Tensor<T>& x, Tensor<T>& y, Tensor<int32_t>& indices, const PoolParams& p) {
  contract::pool2d("max_pool2d", x, y, p, x);
  contract::maxpool_indices("max_pool2d", y, indices);
  const int dev = cuda_device("max_pool2d", x, "input");
  OpScope op("max_pool2d", dev);
  check_cuda_dense("max_pool2d", x, dev, "input");
  check_cuda_dense("max_pool2d", y, dev, "output");
  check_cuda_dense("max_pool2d", indices, dev, "indices");
  if (is_nhwc(x))
    kernels::maxpool_nhwc_forward(x.data(), y.data(), indices.data(), pool_geom_nhwc(x, y, p),
                                  launch_env(dev));
  else
    kernels::maxpool_forward(x.data(), y.data(), indices.data(), pool_geom(x, y, p), launch_env(dev));
}

template <typename T>
void maxpool2d_backward(const Tensor<T>& dy, const Tensor<int32_t>& indices, Tensor<T>& dx, bool accumulate) {
  contract::maxpool_backward("max_pool2d_backward", dy, indices, dx);
  const int dev = cuda_device("max_pool2d_backward", dy, "output gradient");
  OpScope op("max_pool2d_backward", dev);
  check_cuda_dense("max_pool2d_backward", dy, dev, "output gradient");
  check_cuda_dense("max_pool2d_backward", indices, dev, "indices");
  check_cuda_dense("max_pool2d_backward", dx, dev, "input gradient");
  check_index_range("max_pool2d_backward", dy);
  if (is_nhwc(dx))
    kernels::maxpool_nhwc_backward(dy.data(), indices.data(), dx.data(), dx.dim(0), dx.dim(1),
                                   dx.dim(2) * dx.dim(3), dy.dim(2) * dy.dim(3), accumulate, launch_env(dev));
  else
    kernels::maxpool_backward(dy.data(), indices.data(), dx.data(), dx.dim(0) * dx.dim(1),
                              dx.dim(2) * dx.dim(3), dy.dim(2) * dy.dim(3), accumulate, launch_env(dev));
}

template <typename T>
void avgpool2d_forward(const Tensor<T>& x, Tensor<T>& y, const PoolParams& p) {
  contract::pool2d("avg_pool2d", x, y, p, x);
  const int dev = cuda_device("avg_pool2d", x, "input");
  OpScope op("avg_pool2d", dev);
  check_cuda_dense("avg_pool2d", x, dev, "input");
  check_cuda_dense("avg_pool2d", y, dev, "output");
  if (is_nhwc(x))
    kernels::avgpool_nhwc_forward(x.data(), y.data(), pool_geom_nhwc(x, y, p), launch_env(dev));
  else
    kernels::avgpool_forward(x.data(), y.data(), pool_geom(x, y, p), launch_env(dev));
}

template <typename T>
void avgpool2d_backward(const Tensor<T>& dy, Tensor<T>& dx, const PoolParams& p, bool accumulate) {
  contract::pool2d("avg_pool2d_backward", dx, dy, p, dy);
  const int dev = cuda_device("avg_pool2d_backward", dy, "output gradient");
  OpScope op("avg_pool2d_backward", dev);
  check_cuda_dense("avg_pool2d_backward", dy, dev, "output gradient");
  check_cuda_dense("avg_pool2d_backward", dx, dev, "input gradient");
  if (is_nhwc(dx))
    kernels::avgpool_nhwc_backward(dy.data(), dx.data(), pool_geom_nhwc(dx, dy, p), accumulate,
                                   launch_env(dev));
  else
    kernels::avgpool_backward(dy.data(), dx.data(), pool_geom(dx, dy, p), accumulate, launch_env(dev));
}

template <typename T>
void global_avgpool_forward(const Tensor<T>& x, Tensor<T>& y) {
  contract::global_pool("global_avg_pool", x, y, x);
  const int dev = cuda_device("global_avg_pool", x, "input");
  OpScope op("global_avg_pool", dev);
  check_cuda_dense("global_avg_pool", x, dev, "input");
  check_cuda_dense("global_avg_pool", y, dev, "output");
  if (is_nhwc(x))
    kernels::global_avgpool_nhwc_forward(x.data(), y.data(), x.dim(0), x.dim(1), x.dim(2) * x.dim(3),
                                         launch_env(dev));
  else
    kernels::global_avgpool_forward(x.data(), y.data(), x.dim(0) * x.dim(1), x.dim(2) * x.dim(3),
                                    launch_env(dev));
}

template <typename T>
void global_avgpool_backward(const Tensor<T>& dy, Tensor<T>& dx, bool accumulate) {
  contract::global_pool("global_avg_pool_backward", dx, dy, dy);
  const int dev = cuda_device("global_avg_pool_backward", dy, "output gradient");
  OpScope op("global_avg_pool_backward", dev);
  const int64_t NC = dx.dim(0) * dx.dim(1), HW = dx.dim(2) * dx.dim(3);
  check_cuda_dense("global_avg_pool_backward", dy, dev, "output gradient");
  check_cuda_dense("global_avg_pool_backward", dx, dev, "input gradient");
  check_index_range("global_avg_pool_backward", dx);
  if (is_nhwc(dx))
    kernels::global_avgpool_nhwc_backward(dy.data(), dx.data(), dx.dim(0), dx.dim(1), HW, accumulate,
                                          launch_env(dev));
  else
    kernels::global_avgpool_backward(dy.data(), dx.data(), NC, HW, accumulate, launch_env(dev));
}

// ---------------------------------------------------------------- explicit instantiations

#define RESNET_CUDA_POOL(T)                                                                              \
  template void maxpool2d_forward<T>(const Tensor<T>&, Tensor<T>&, Tensor<int32_t>&, const PoolParams&); \
  template void maxpool2d_backward<T>(const Tensor<T>&, const Tensor<int32_t>&, Tensor<T>&, bool);       \
  template void avgpool2d_forward<T>(const Tensor<T>&, Tensor<T>&, const PoolParams&);                   \
  template void avgpool2d_backward<T>(const Tensor<T>&, Tensor<T>&, const PoolParams&, bool);            \
  template void global_avgpool_forward<T>(const Tensor<T>&, Tensor<T>&);                                 \
  template void global_avgpool_backward<T>(const Tensor<T>&, Tensor<T>&, bool);
RESNET_CUDA_POOL(float)
RESNET_CUDA_POOL(double)
RESNET_CUDA_POOL(half_t)
RESNET_CUDA_POOL(bf16_t)

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
