// CUDA graph capture inside resnet::cuda (graph.cu, allocator.cu): the private memory pools of graphs and
// the check that refuses, by name, operations a capture cannot hold. Included by the runtime units and by
// ops that must not run during a capture (a cuDNN algorithm search).
#pragma once

#include "resnet/core/abi.hpp"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {

// Throws, naming `what` and `why`, when this thread's current stream of `device` is being captured into a
// CUDA graph: for operations that wait for the device or otherwise cannot be captured.
void refuse_during_capture(const char* what, const char* why, int device);

// Private pools of CUDA graphs (allocator.cu). Between begin and end, this thread's allocations on `device`
// come from `pool` and its frees of any block of that device go into it. Release (the graph is gone): idle
// blocks go back to the driver, blocks still in use become cached blocks of `stream_after` when freed.
uint64_t capture_pool_create(int device);
void capture_pool_begin(uint64_t pool, int device);
void capture_pool_end();
bool capture_pool_active();
void capture_pool_release(uint64_t pool, cudaStream_t stream_after);
size_t capture_pool_bytes(uint64_t pool);
size_t capture_pools_bytes(int device);

}  // namespace detail
}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
