// State shared by the runtime translation units of resnet::cuda (device.cu, streams.cu, allocator.cu,
// errors.cu), and by nothing else: the process-wide device table (the settings are resnet::config()), this
// thread's streams, handles and workspaces, and the caching allocator's entry points. Ops see only
// context.cuh.
#pragma once

#include "resnet/core/abi.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "context.cuh"
#include "kernels/batchnorm_plan.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {

// ---- devices and settings (device.cu)

struct DeviceState {
  std::once_flag once;
  bool ready = false;
  std::string error;  // why the device cannot be used, when it cannot
  int sm_count = 1;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  size_t total_memory = 0;
  cudaStream_t stream = nullptr;
  kernels::KernelErrorReport* error_host = nullptr;  // host-mapped, written by kernels
  kernels::KernelErrorReport* error_device = nullptr;
};

struct Global {
  int count = 0;
  std::string reason;       // why count is 0
  std::string fatal;        // a version mismatch that makes the backend unusable
  std::string warnings;     // mismatches that are reported but tolerated
  size_t cudnn_loaded = 0;  // cudnnGetVersion()
  size_t cudnn_cudart = 0;  // the CUDA runtime cuDNN was built for
  int runtime = 0, driver = 0;
  int cublas_major = -1, cublas_minor = -1, cublas_patch = -1;
  std::unique_ptr<DeviceState[]> devices;
};

// Discovers the devices and checks the library versions on first use; never destroyed.
Global& global();
// The device's state, set up on first use; throws when it does not exist or cannot run this build.
DeviceState& device_state(int device);
void set_device(int device);

// ---- this thread (streams.cu)

struct ThreadState {
  std::vector<cudaStream_t> current;  // per device; null: the device's default stream
  std::vector<cudnnHandle_t> cudnn;
  std::vector<cublasHandle_t> cublas;
  std::vector<std::map<cudaStream_t, std::pair<void*, size_t>>> workspaces;
  const char* op = nullptr;
  ~ThreadState();  // frees the workspaces
  // Library handles are not destroyed at thread exit: at process exit the driver may already be gone.
};
extern thread_local ThreadState tls;
// Grows tls's per-device vectors to hold `device`.
void ensure_sizes(int device);

// ---- the caching allocator (allocator.cu)

void* cached_allocate(size_t nbytes, int device, cudaStream_t s);
void cached_free(void* p);
// Cached blocks of a stream that is going away become blocks of stream `to` (the caller has synchronised
// the stream, so they are idle).
void cached_retag_stream(int device, cudaStream_t s, cudaStream_t to);

}  // namespace detail
}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
