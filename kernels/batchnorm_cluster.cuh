// EXPERIMENTAL, off by default, never run on a GPU: BatchNorm's single pass (batchnorm_single_pass.cuh)
// over a thread-block cluster (compute capability 9 and newer: up to kMaxCluster co-scheduled blocks whose
// cluster.sync() orders global memory at cluster scope), so that a channel of up to 8 x 16384 values
// stays on chip: ResNet-50's 14x14 maps to batch 668, 28x28 to 167, 56x56 to 41.
//
// The blocks swap their sums through workspace slots, not distributed shared memory, because the
// simulator gives all blocks one shared memory; it runs a cluster's blocks in turns between cluster
// barriers. With ~100 registers a thread only one block fits an SM, so a block cannot hide its
// neighbour's reduction; whether one read of x beats two launch-overlapped passes is for a GPU to say.
#pragma once

#include "resnet/core/abi.hpp"
#include "batchnorm_single_pass.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace kernels {

// `n` consecutive blocks of the grid (one cluster) hold a channel: block b serves channel b / n as rank
// b % n. slots: this channel's 2 * n values of the workspace.
template <typename C>
struct ClusterBlocks {
  unsigned n;
  C* slots;
  RESNET_HD unsigned rank() const { return blockIdx.x % n; }
  RESNET_HD unsigned blocks() const { return n; }
  RESNET_HD unsigned channel() const { return blockIdx.x / n; }
  // Each block's sums (already summed over the block, the same in every thread) go to
  // slots[which * n * N + rank * N + i], and after the cluster barrier every block adds all of them in the
  // same order, so every block gets the same bits. The forward exchanges twice (N = 1, which = 0 and 1),
  // the backward once (N = 2): 2 * n slots either way.
  template <int N>
  __device__ void sum(C (&v)[N], int which) const {
    C* s = slots + which * n * N;
    if (threadIdx.x == 0)
      for (int i = 0; i < N; ++i) s[rank() * N + i] = v[i];
    cluster_sync();
    for (int i = 0; i < N; ++i) {
      C total = C(0);
      for (unsigned b = 0; b < n; ++b) total += __ldcg(s + b * N + i);
      v[i] = total;
    }
  }
};

template <typename C>
__device__ inline ClusterBlocks<C> cluster_blocks(unsigned n, C* slots) {
  return ClusterBlocks<C>{n, slots + static_cast<int64_t>(blockIdx.x / n) * 2 * n};
}

template <typename T, typename P, int K>
__global__ void __launch_bounds__(kSingleBlock)
    bn_forward_cluster_kernel(const T* __restrict__ x, const T* __restrict__ r, T* __restrict__ y,
                              int64_t channels, int64_t count, FastDiv hw, unsigned blocks, cmp_t<T>* slots,
                              const P* __restrict__ gamma, const P* __restrict__ beta, P* running_mean,
                              P* running_var, P* save_mean, P* save_invstd, double eps, double momentum,
                              bool relu_on) {
  bn_forward_single_body<T, P, K>(cluster_blocks(blocks, slots), x, r, y, channels, count, hw, gamma, beta,
                                  running_mean, running_var, save_mean, save_invstd, eps, momentum, relu_on);
}

template <typename T, typename P, int K>
__global__ void __launch_bounds__(kSingleBlock)
    bn_backward_cluster_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                               const P* __restrict__ gamma, const P* __restrict__ mean,
                               const P* __restrict__ invstd, bool training, bool relu_on, T* dx, bool dx_acc,
                               T* dres, bool dres_acc, P* dgamma, P* dbeta, bool param_acc, int64_t channels,
                               int64_t count, FastDiv hw, unsigned blocks, cmp_t<T>* slots) {
  bn_backward_single_body<T, P, K>(cluster_blocks(blocks, slots), x, y, dy, gamma, mean, invstd, training,
                                   relu_on, dx, dx_acc, dres, dres_acc, dgamma, dbeta, param_acc, channels,
                                   count, hw);
}

// Workspace of the cluster kernels: 2 * kMaxCluster slots a channel.
template <typename T>
size_t bn_cluster_workspace_bytes(const BatchNormShape& s) {
  return static_cast<size_t>(2 * kMaxCluster * s.C) * sizeof(cmp_t<T>);
}

// Launches one cluster kernel of a plan with p.path == BnPath::Cluster, if the device can hold such a
// cluster (the registers the kernel takes decide it). Returns false, launching nothing, when it cannot,
// and the caller runs the multi-pass kernels.
template <typename... KArgs, typename... Args>
bool launch_bn_cluster(void (*kernel)(KArgs...), const char* name, const BnPlan& p, int64_t channels,
                       const LaunchEnv& env, Args&&... args) {
  if (!cluster_launch_fits(kernel, p.threads, p.blocks, env)) return false;
  launch_cluster(kernel, name, __FILE__, __LINE__, dim3(static_cast<unsigned>(channels) * p.blocks),
                 dim3(p.threads), p.blocks, env, std::forward<Args>(args)...);
  return true;
}

// workspace: bn_cluster_workspace_bytes<T>(s) bytes.
template <typename T, typename P>
bool bn_forward_training_cluster(const T* x, const T* r, const P* gamma, const P* beta, P* running_mean,
                                 P* running_var, P* save_mean, P* save_invstd, T* y, const BatchNormShape& s,
                                 double eps, double momentum, bool relu_on, const BnPlan& p, void* workspace,
                                 const LaunchEnv& env) {
  const FastDiv hw(static_cast<uint32_t>(s.HW));
  return with_single_width<T>(p.K, [&](auto k) {
    return launch_bn_cluster(bn_forward_cluster_kernel<T, P, decltype(k)::value>, "bn_forward_cluster_kernel",
                             p, s.C, env, x, r, y, s.C, s.count(), hw, p.blocks,
                             static_cast<cmp_t<T>*>(workspace), gamma, beta, running_mean, running_var,
                             save_mean, save_invstd, eps, momentum, relu_on);
  });
}

template <typename T, typename P>
bool bn_backward_cluster(const T* x, const T* y, const T* dy, const P* gamma, const P* mean, const P* invstd,
                         bool training, bool relu_on, T* dx, bool dx_acc, T* dres, bool dres_acc, P* dgamma,
                         P* dbeta, bool param_acc, const BatchNormShape& s, const BnPlan& p, void* workspace,
                         const LaunchEnv& env) {
  const FastDiv hw(static_cast<uint32_t>(s.HW));
  return with_single_width<T>(p.K, [&](auto k) {
    return launch_bn_cluster(bn_backward_cluster_kernel<T, P, decltype(k)::value>,
                             "bn_backward_cluster_kernel", p, s.C, env, x, y, dy, gamma, mean, invstd,
                             training, relu_on, dx, dx_acc, dres, dres_acc, dgamma, dbeta, param_acc, s.C,
                             s.count(), hw, p.blocks, static_cast<cmp_t<T>*>(workspace));
  });
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet
