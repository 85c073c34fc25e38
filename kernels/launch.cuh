// Launching a kernel the same way on both compilers: with nvcc a <<<grid, block, 0, stream>>> launch
// followed by an error check that names the kernel, the op and the launch site; with the CPU simulator
// a simulated launch. Launchers (host functions in kernels/*.cuh) take a LaunchEnv, so the tests run the
// very code that plans grids, splits reductions and lays out workspaces.
#pragma once

#include "resnet/core/abi.hpp"
#include "common.cuh"

#if defined(__CUDACC__)
#include <map>
#include <mutex>
#include <tuple>
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {
// Defined in the resnet::cuda library: throws resnet::Error when the launch failed.
void check_launch(const char* kernel, const char* file, int line);
}  // namespace detail
}  // namespace cuda

namespace kernels {

// Kernel error codes.
enum KernelError : int { kNoError = 0, kLabelOutOfRange = 1 };

// A kernel writes `where` (one 64-bit store, so a reader never sees half of one report), then `extent`,
// then, after a system-wide fence, `code`. Plain stores: atomics on host-mapped memory are not portable.
struct KernelErrorReport {
  int code;
  int extent;       // e.g. the number of classes
  long long where;  // (row << 32) | (uint32) value
};

struct LaunchEnv {
  stream_t stream = nullptr;
  int sm_count = 1;
  int cc_major = 0;  // compute capability: thread-block clusters need 9 (Hopper) or newer
  // Where kernels report bad data, such as a label out of range: host-mapped memory on the GPU (plain
  // memory in the simulator), read by the library at its next synchronisation. May be null.
  KernelErrorReport* error_flag = nullptr;
};

template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), const char* name, const char* file, int line, dim3 grid, dim3 block,
            const LaunchEnv& env, Args&&... args) {
#if defined(__CUDACC__)
  kernel<<<grid, block, 0, env.stream>>>(static_cast<KArgs>(args)...);
  ::resnet::cuda::detail::check_launch(name, file, line);
#else
  (void)name;
  (void)file;
  (void)line;
  (void)env;
  ::sim::launch(grid, block, [&] { kernel(static_cast<KArgs>(args)...); });
#endif
}

#if defined(__CUDACC__)
// A launch configuration with clusters of `cluster_x` blocks along x; `attr` is storage it points to.
inline cudaLaunchConfig_t cluster_config(dim3 grid, dim3 block, unsigned cluster_x, const LaunchEnv& env,
                                         cudaLaunchAttribute* attr) {
  attr->id = cudaLaunchAttributeClusterDimension;
  attr->val.clusterDim.x = cluster_x;
  attr->val.clusterDim.y = 1;
  attr->val.clusterDim.z = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = env.stream;
  config.attrs = attr;
  config.numAttrs = 1;
  return config;
}
#endif

// A launch in thread-block clusters of `cluster_x` blocks along x (grid.x must be a multiple of it; the
// kernel synchronises them with cluster_sync()). Needs compute capability 9.0: see cluster_launch_fits.
template <typename... KArgs, typename... Args>
void launch_cluster(void (*kernel)(KArgs...), const char* name, const char* file, int line, dim3 grid,
                    dim3 block, unsigned cluster_x, const LaunchEnv& env, Args&&... args) {
#if defined(__CUDACC__)
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t config = cluster_config(grid, block, cluster_x, env, &attr);
  cudaLaunchKernelEx(&config, kernel, static_cast<KArgs>(args)...);  // an error is left for check_launch
  ::resnet::cuda::detail::check_launch(name, file, line);
#else
  (void)name;
  (void)file;
  (void)line;
  (void)env;
  ::sim::launch_cluster(grid, block, cluster_x, [&] { kernel(static_cast<KArgs>(args)...); });
#endif
}

// Whether at least one cluster of `cluster_x` blocks of `threads` threads of `kernel` fits the device at
// once (cudaOccupancyMaxActiveClusters; the registers a kernel takes decide it). Asked once per kernel,
// shape and kind of device (compute capability and multiprocessors), then cached. Always true in the
// simulator.
template <typename... KArgs>
bool cluster_launch_fits(void (*kernel)(KArgs...), unsigned threads, unsigned cluster_x,
                         const LaunchEnv& env) {
  if (env.cc_major < 9) return false;
#if defined(__CUDACC__)
  static std::mutex mu;
  static std::map<std::tuple<const void*, unsigned, unsigned, int, int>, bool> known;
  const auto key =
      std::make_tuple(reinterpret_cast<const void*>(kernel), threads, cluster_x, env.cc_major, env.sm_count);
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t config = cluster_config(dim3(cluster_x), dim3(threads), cluster_x, env, &attr);
  int clusters = 0;
  const bool fits = cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) == cudaSuccess && clusters > 0;
  cudaGetLastError();  // a refusal is an answer, not an error for the next launch to find
  known[key] = fits;
  return fits;
#else
  (void)kernel;
  (void)threads;
  (void)cluster_x;
  return true;
#endif
}

}  // namespace kernels
}  // namespace RESNET_ABI
}  // namespace resnet

// RESNET_LAUNCH((kernel<T, V>), grid, block, env, args...): the kernel in parentheses (its template
// arguments may contain commas).
#define RESNET_LAUNCH(kernel, grid, block, env, ...) \
  ::resnet::kernels::launch(kernel, #kernel, __FILE__, __LINE__, grid, block, env, __VA_ARGS__)
// RESNET_LAUNCH_CLUSTER((kernel<T>), grid, block, cluster_x, env, args...): the same in clusters.
#define RESNET_LAUNCH_CLUSTER(kernel, grid, block, cluster_x, env, ...)                               \
  ::resnet::kernels::launch_cluster(kernel, #kernel, __FILE__, __LINE__, grid, block, cluster_x, env, \
                                    __VA_ARGS__)
