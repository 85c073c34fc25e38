// Streams and handles of resnet::cuda: this thread's current stream of each device (the device's default
// stream, or one a StreamGuard installed), the op scope that names the op and selects its device, the
// per-thread cuDNN and cuBLAS handles bound to the current stream, the kernels' launch environment, and
// the copies and synchronisations that run on those streams.
#include "resnet/core/abi.hpp"

#include "capture.cuh"
#include "host_sync.cuh"
#include "runtime_state.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {

thread_local ThreadState tls;

ThreadState::~ThreadState() {
  for (auto& per_device : workspaces)
    for (auto& kv : per_device) cached_free(kv.second.first);
}

void ensure_sizes(int device) {
  const size_t n = static_cast<size_t>(device) + 1;
  if (tls.current.size() < n) {
    tls.current.resize(n, nullptr);
    tls.cudnn.resize(n, nullptr);
    tls.cublas.resize(n, nullptr);
    tls.workspaces.resize(n);
  }
}

OpScope::OpScope(const char* op, int device) : previous_(tls.op), device_(device) {
  device_state(device);  // may throw: set the op name only once the scope exists
  tls.op = op;
  try {
    set_device(device);
  } catch (...) {
    tls.op = previous_;
    throw;
  }
}
OpScope::~OpScope() { tls.op = previous_; }

cudaStream_t stream(int device) {
  ensure_sizes(device);
  cudaStream_t s = tls.current[static_cast<size_t>(device)];
  return s ? s : device_state(device).stream;
}

cudnnHandle_t cudnn_handle(int device) {
  ensure_sizes(device);
  cudnnHandle_t& h = tls.cudnn[static_cast<size_t>(device)];
  if (!h) RESNET_CUDNN_CHECK(cudnnCreate(&h));
  RESNET_CUDNN_CHECK(cudnnSetStream(h, stream(device)));
  return h;
}

cublasHandle_t cublas_handle(int device) {
  ensure_sizes(device);
  cublasHandle_t& h = tls.cublas[static_cast<size_t>(device)];
  if (!h) RESNET_CUBLAS_CHECK(cublasCreate(&h));
  RESNET_CUBLAS_CHECK(cublasSetStream(h, stream(device)));
  return h;
}

kernels::LaunchEnv launch_env(int device) {
  kernels::LaunchEnv env;
  env.stream = stream(device);
  env.sm_count = sm_count(device);
  env.error_flag = device_state(device).error_device;
  env.cc_major = device_state(device).cc_major;
  return env;
}

}  // namespace detail

// ---------------------------------------------------------------- copies (core/storage.hpp)

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cuda() && src_device.is_cuda()) {
    detail::OpScope op("copy (device to device)", dst_device.index);
    if (dst_device.index == src_device.index) {
      RESNET_CUDA_CHECK(
          cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, detail::stream(dst_device.index)));
    } else {
      // The source must be complete before another device's stream reads it.
      detail::refuse_during_capture("copy between devices", "it waits for the source device",
                                    src_device.index);
      detail::count_host_sync(HostSync::PeerCopy);
      RESNET_CUDA_CHECK(cudaStreamSynchronize(detail::stream(src_device.index)));
      RESNET_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes,
                                            detail::stream(dst_device.index)));
    }
  } else if (src_device.is_cuda()) {
    detail::OpScope op("copy to host", src_device.index);
    detail::refuse_during_capture("copy to host (item(), to(cpu), reading a tensor)",
                                  "it waits for the device and reads the result on the host",
                                  src_device.index);
    cudaStream_t s = detail::stream(src_device.index);
    detail::count_host_sync(HostSync::CopyToHost);
    RESNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
    RESNET_CUDA_CHECK(cudaStreamSynchronize(s));
    detail::check_kernel_errors(src_device.index);
  } else {
    detail::OpScope op("copy to device", dst_device.index);
    detail::refuse_during_capture(
        "copy to device", "a replay would read the host memory again, not this data", dst_device.index);
    cudaStream_t s = detail::stream(dst_device.index);
    RESNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
    // From pageable memory the call returns once the source is staged (the driver may wait for the stream
    // to stage it: counted as a wait); pinned memory is read later, so wait for it to keep the promise that
    // the source may be reused on return. upload_async (host_sync.cu) waits for neither.
    cudaPointerAttributes attr;
    const bool pinned =
        cudaPointerGetAttributes(&attr, src) == cudaSuccess && attr.type == cudaMemoryTypeHost;
    cudaGetLastError();
    detail::count_host_sync(pinned ? HostSync::PinnedUpload : HostSync::PageableUpload);
    if (pinned) RESNET_CUDA_CHECK(cudaStreamSynchronize(s));
  }
}

void fill_zero_bytes(void* dst, int device, size_t nbytes) {
  if (nbytes == 0) return;
  detail::OpScope op("zero_", device);
  RESNET_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, detail::stream(device)));
}

// ---------------------------------------------------------------- public stream API (runtime.hpp)

void synchronize(int device) {
  detail::OpScope op("synchronize", device);
  detail::refuse_during_capture("synchronize", "it waits for the device", device);
  detail::count_host_sync(HostSync::Synchronize);
  RESNET_CUDA_CHECK(cudaStreamSynchronize(detail::stream(device)));
  detail::check_kernel_errors(device);
}

Stream::Stream(int device) : device_(device) {
  detail::OpScope op("Stream", device);
  cudaStream_t s = nullptr;
  RESNET_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  handle_ = s;
}
Stream::~Stream() {
  cudaStream_t s = static_cast<cudaStream_t>(handle_);
  detail::count_host_sync(HostSync::StreamDestroy);
  if (cudaStreamSynchronize(s) == cudaSuccess)
    detail::cached_retag_stream(device_, s, detail::device_state(device_).stream);
  cudaStreamDestroy(s);
  cudaGetLastError();
}
void Stream::synchronize() const {
  detail::OpScope op("Stream::synchronize", device_);
  detail::refuse_during_capture("Stream::synchronize", "it waits for the device", device_);
  detail::count_host_sync(HostSync::Synchronize);
  RESNET_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(handle_)));
  detail::check_kernel_errors(device_);
}

StreamGuard::StreamGuard(const Stream& stream) : device_(stream.device()) {
  detail::ensure_sizes(device_);
  previous_ = detail::tls.current[static_cast<size_t>(device_)];
  detail::tls.current[static_cast<size_t>(device_)] = static_cast<cudaStream_t>(stream.handle());
}
StreamGuard::~StreamGuard() {
  detail::tls.current[static_cast<size_t>(device_)] = static_cast<cudaStream_t>(previous_);
}

void* current_stream(int device) {
  detail::device_state(device);
  return detail::stream(device);
}

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
