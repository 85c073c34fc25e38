// A small CPU simulator for our CUDA kernels, for tests on machines without a GPU.
//
// Include this before any kernels/*.cuh and compile with g++: the kernel sources then build as ordinary
// host code. A launch runs the grid one block at a time; each thread of the block is a ucontext fiber
// that runs the real kernel body and yields at __syncthreads() and at warp shuffles, so shared-memory
// reductions and their indexing execute exactly as written. __shared__ becomes `static`: one copy per
// kernel instantiation, which is what a block sees because blocks run one after another.
//
// It proves logic, not the absence of races (compute-sanitizer on a GPU does that), but it catches some:
// a thread that leaves a kernel while others wait at a barrier, a shuffle with missing lanes, and (by
// running the threads of each phase in forward and in reverse order, see set_order) most reads of shared
// memory that lack a barrier. Slow: for small shapes only.
#pragma once

#define RESNET_KERNEL_SIM 1

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

// The built-in variables, set by the scheduler before it resumes each fiber.
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

namespace sim {

enum class Order { Forward, Reverse };
// The order in which the scheduler runs the threads of a block between two barriers.
void set_order(Order order);
Order order();

// Runs `body` (a call of the kernel with its arguments) for every thread of every block of the grid.
// Throws std::runtime_error on a barrier misuse or deadlock.
void launch(dim3 grid, dim3 block, const std::function<void()>& body);

// The same with thread-block clusters of `cluster_x` blocks along x (grid.x a multiple of it). The blocks of
// a cluster take turns: each runs until all its threads wait at the cluster barrier (or have exited), then
// the next; the barrier releases when every thread of the cluster is there. So shared memory, which blocks
// share here, must not carry data across a cluster barrier (on a GPU each block has its own).
void launch_cluster(dim3 grid, dim3 block, unsigned cluster_x, const std::function<void()>& body);

// Statistics of the last launch (for tests that want to see the barriers were really exercised).
struct LaunchStats {
  long long block_barriers = 0;
  long long warp_barriers = 0;
  long long cluster_barriers = 0;
};
LaunchStats last_launch_stats();

namespace detail {
void block_barrier();
void cluster_barrier();
// Publishes 8 bytes for this lane, waits for the whole warp, and returns the bytes of lane `src`.
uint64_t warp_exchange(uint64_t mine, int src_lane);
int lane_id();
}  // namespace detail

}  // namespace sim

inline void __syncthreads() { sim::detail::block_barrier(); }
inline void __threadfence() {}
inline void __threadfence_system() {}
inline void __syncwarp(unsigned = 0xffffffffu) {}

template <typename T>
T __shfl_sync_impl(T v, int src_lane) {
  static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  uint64_t got = sim::detail::warp_exchange(bits, src_lane);
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
  const int lane = sim::detail::lane_id();
  int src = lane ^ lane_mask;
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  return __shfl_sync_impl(v, src);
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  const int lane = sim::detail::lane_id();
  int src = lane + static_cast<int>(delta);
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  return __shfl_sync_impl(v, src);
}
template <typename T>
T __shfl_sync(unsigned, T v, int src_lane, int width = 32) {
  const int lane = sim::detail::lane_id();
  return __shfl_sync_impl(v, (lane & ~(width - 1)) + (src_lane & (width - 1)));
}

// Fibers switch only at barriers, so a read-modify-write is atomic here.
template <typename T>
T atomicAdd(T* p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
inline int atomicCAS(int* p, int compare, int value) {
  int old = *p;
  if (old == compare) *p = value;
  return old;
}
inline int atomicExch(int* p, int value) {
  int old = *p;
  *p = value;
  return old;
}
template <typename T>
T __ldg(const T* p) {
  return *p;
}
template <typename T>
T __ldcg(const T* p) {
  return *p;
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<uint64_t>(a) * b) >> 32);
}
