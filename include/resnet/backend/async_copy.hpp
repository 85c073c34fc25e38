// Host-to-device writes that never wait for the device: small per-step values (an optimizer's learning
// rate) and a batch's labels and images. On a CUDA device they go through the runtime's pinned staging
// ring (cuda::upload_async: the host data is copied at once, so it may be reused on return, and the copy to
// the device is queued on the current stream); on the CPU they are plain stores.
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <cstring>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

#if RESNET_WITH_CUDA
#include "resnet/backend/cuda/runtime.hpp"
#endif

namespace resnet {
inline namespace RESNET_ABI {

// Copies nbytes from host memory into `dst`'s data, in stream order on a device, without waiting.
inline void write_bytes_async(TensorBase& dst, const void* src, size_t nbytes) {
  RESNET_CHECK(dst.defined() && dst.is_dense() && nbytes <= dst.nbytes(), "write_bytes_async: ", nbytes,
               " bytes do not fit ", dst.defined() ? dst.describe() : "an undefined tensor");
  if (nbytes == 0) return;
  if (dst.device().is_cpu()) {
    std::memcpy(dst.raw_data(), src, nbytes);
    return;
  }
#if RESNET_WITH_CUDA
  cuda::upload_async(dst.raw_data(), src, nbytes, dst.device().index);
#else
  RESNET_FAIL("write_bytes_async: ", dst.describe(),
              " is on a CUDA device but this program was built without CUDA");
#endif
}

// Writes values[0, n) into the contiguous tensor t at elements [at, at + n), in stream order on a device.
template <typename T>
void write_async(Tensor<T>& t, int64_t at, const T* values, int64_t n) {
  RESNET_CHECK(t.defined() && t.is_contiguous() && at >= 0 && n >= 0 && at + n <= t.numel(),
               "write_async: ", n, " values at element ", at, " do not fit ",
               t.defined() ? t.describe() : "an undefined tensor");
  if (n == 0) return;
  if (t.device().is_cpu()) {
    std::copy(values, values + n, t.data() + at);
    return;
  }
#if RESNET_WITH_CUDA
  cuda::upload_async(t.data() + at, values, static_cast<size_t>(n) * sizeof(T), t.device().index);
#else
  RESNET_FAIL("write_async: ", t.describe(), " is on a CUDA device but this program was built without CUDA");
#endif
}

// A copy of the host tensor `h` on `device` that does not wait for the device (Tensor::to waits when the
// source is pinned and may wait when it is pageable); `h` may be reused as soon as this returns. On the CPU
// it is `h` itself, as Tensor::to is.
template <typename T>
Tensor<T> to_device_async(const Tensor<T>& h, const Device& device) {
  RESNET_CHECK(h.defined() && h.device().is_cpu(), "to_device_async: the source must be a host tensor, got ",
               h.defined() ? h.describe() : "an undefined tensor");
  if (device.is_cpu()) return h;
  const Tensor<T> src = h.contiguous();
  Tensor<T> dst = Tensor<T>::empty(src.shape(), device);
  write_async(dst, 0, src.data(), src.numel());
  return dst;
}

}  // namespace RESNET_ABI
}  // namespace resnet
