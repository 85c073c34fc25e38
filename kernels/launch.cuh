// Launching a kernel the same way on both compilers: with nvcc a <<<grid, block, 0, stream>>> launch
// followed by an error check that names the kernel, the op and the launch site; with the CPU simulator
// a simulated launch. Launchers (host functions in kernels/*.cuh) take a LaunchEnv, so the tests run the
// very code that plans grids, splits reductions and lays out workspaces.
#pragma once

#include "common.cuh"

namespace resnet {
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

}  // namespace kernels
}  // namespace resnet

// RESNET_LAUNCH((kernel<T, V>), grid, block, env, args...): the kernel in parentheses (its template
// arguments may contain commas).
#define RESNET_LAUNCH(kernel, grid, block, env, ...) \
  ::resnet::kernels::launch(kernel, #kernel, __FILE__, __LINE__, grid, block, env, __VA_ARGS__)
