// Internals shared by the resnet::cuda translation units: checked calls into CUDA, cuDNN and cuBLAS, the
// op scope that names the op in error messages and selects its device, per-thread library handles bound
// to the current stream, the growing per-thread workspace, and the launch environment of the kernels.
#pragma once

#include "resnet/core/abi.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "kernels/launch.cuh"
#include "resnet/backend/cuda/cuda.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {

// The op running on this thread ("batch_norm", "conv2d_backward_data", ...), for error messages.
const char* current_op();

[[noreturn]] void throw_cuda(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cudnn(cudnnStatus_t st, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t st, const char* call, const char* file, int line);

#define RESNET_CUDA_CHECK(call)                                                   \
  do {                                                                            \
    cudaError_t resnet_err_ = (call);                                             \
    if (resnet_err_ != cudaSuccess)                                               \
      ::resnet::cuda::detail::throw_cuda(resnet_err_, #call, __FILE__, __LINE__); \
  } while (0)
#define RESNET_CUDNN_CHECK(call)                                                  \
  do {                                                                            \
    cudnnStatus_t resnet_st_ = (call);                                            \
    if (resnet_st_ != CUDNN_STATUS_SUCCESS)                                       \
      ::resnet::cuda::detail::throw_cudnn(resnet_st_, #call, __FILE__, __LINE__); \
  } while (0)
#define RESNET_CUBLAS_CHECK(call)                                                  \
  do {                                                                             \
    cublasStatus_t resnet_st_ = (call);                                            \
    if (resnet_st_ != CUBLAS_STATUS_SUCCESS)                                       \
      ::resnet::cuda::detail::throw_cublas(resnet_st_, #call, __FILE__, __LINE__); \
  } while (0)

// For the duration of an op: its name for error messages, and its device made current. Checks once per
// process that a device exists and the library versions agree.
class OpScope {
 public:
  OpScope(const char* op, int device);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;
  int device() const { return device_; }

 private:
  const char* previous_;
  int device_;
};

cudaStream_t stream(int device);
cudnnHandle_t cudnn_handle(int device);    // this thread's, bound to stream(device)
cublasHandle_t cublas_handle(int device);  // this thread's, bound to stream(device)
int sm_count(int device);
// Scratch memory of this thread and device, valid until the next call (kernels queued before then may
// still use it: it is only ever freed into the stream-ordered caching allocator).
void* workspace(int device, size_t bytes);
kernels::LaunchEnv launch_env(int device);
// Throws if a kernel on `device` reported bad data since the last check (reads host-mapped memory; call
// after a synchronisation).
void check_kernel_errors(int device);

// ---- checks shared by the ops
// The CUDA device of an op's first tensor (the one that decides where the op runs).
inline int cuda_device(const char* op, const TensorBase& t, const char* what) {
  RESNET_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
  RESNET_CHECK(t.device().is_cuda(), op, ": ", what, " ", t.describe(), " is not on a CUDA device");
  return t.device().index;
}
inline void check_cuda_tensor(const char* op, const TensorBase& t, int device, const char* what) {
  RESNET_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
  RESNET_CHECK(t.device().is_cuda() && t.device().index == device, op, ": ", what, " ", t.describe(),
               " is not on cuda:", device, " with the other tensors; move it with .to(device) first");
  RESNET_CHECK(t.is_contiguous(), op, ": ", what, " ", t.describe(), " must be contiguous");
}
// The same for ops that take either dense format (elementwise ops on whole tensors, and the ops with NHWC
// kernels): row-major or channels-last; the contracts make an op's tensors share one format.
inline void check_cuda_dense(const char* op, const TensorBase& t, int device, const char* what) {
  RESNET_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
  RESNET_CHECK(t.device().is_cuda() && t.device().index == device, op, ": ", what, " ", t.describe(),
               " is not on cuda:", device, " with the other tensors; move it with .to(device) first");
  RESNET_CHECK(t.is_dense(), op, ": ", what, " ", t.describe(),
               " must be contiguous (row-major or channels-last)");
}
// Whether an op's first activation is channels-last (its kernels index NHWC); a tensor dense in both
// formats ([N, C, 1, 1], C = 1) is read as row-major, which is the same memory.
inline bool is_nhwc(const TensorBase& t) {
  return t.rank() == 4 && t.suggest_memory_format() == MemoryFormat::ChannelsLast;
}
inline void check_index_range(const char* op, const TensorBase& t) {
  RESNET_CHECK(t.numel() < (int64_t(1) << 32), op, ": ", t.describe(), " has ", t.numel(),
               " elements; the CUDA kernels index up to 2^32 - 1");
}

}  // namespace detail
}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
