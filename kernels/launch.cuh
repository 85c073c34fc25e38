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

struct LaunchEnv {
  stream_t stream = nullptr;
  int sm_count = 1;
  // Device (or, in the simulator, host) memory the kernels set when they meet bad data, such as a label
  // out of range: [0] error code, [1..2] details. May be null.
  int* error_flag = nullptr;
};

// Kernel error codes written to LaunchEnv::error_flag[0].
enum KernelError : int { kNoError = 0, kLabelOutOfRange = 1 };

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
