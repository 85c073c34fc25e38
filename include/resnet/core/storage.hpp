// Storage: a reference-counted byte buffer on one device, shared by a tensor and all its views.
//
// CPU memory comes from a small caching allocator: training allocates the same activation sizes every
// step, and returning large blocks to the OS (glibc unmaps them) makes every step pay page faults again.
// CUDA memory comes from the CUDA backend's caching allocator, declared here and defined in the
// resnet::cuda library, so the core never includes a CUDA header.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "resnet/core/device.hpp"
#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {

#if RESNET_WITH_CUDA
namespace cuda {
// Defined by the resnet::cuda library (src/cuda). Sizes are in bytes.
void* device_allocate(size_t nbytes, int device);
void device_free(void* ptr, int device);
// Copies nbytes between any two of host and device memory; synchronous with respect to the host.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);
void fill_zero_bytes(void* dst, int device, size_t nbytes);
// On one device: dst[b, j, i] = src[b, i, j] for B matrices [I, J] of elements of `elem_size` bytes (2, 4
// or 8), queued on the device's current stream. How a dense tensor changes memory format there (NCHW ->
// NHWC is B = N, I = C, J = H * W) without a round trip through the host.
void transpose_bytes(void* dst, const void* src, size_t elem_size, int64_t B, int64_t I, int64_t J,
                     int device);
}  // namespace cuda
#endif

inline bool cuda_compiled() { return RESNET_WITH_CUDA != 0; }

namespace detail {

class CpuCachingAllocator {
 public:
  static CpuCachingAllocator& instance() {
    static CpuCachingAllocator* a = new CpuCachingAllocator();  // never destroyed: used by static tensors
    return *a;
  }

  // Large requests take the smallest cached block that fits (best fit, at most kMaxOversize times the
  // request): its pages are already resident, so reusing it costs no memory, while a fresh block would add
  // to the process's footprint (exact-size reuse alone kept, say, the stem's 51 MB blocks idle while the
  // later stages allocated anew). Each step of training repeats the same requests, so after the first
  // steps every request is served from the cache.
  void* allocate(size_t nbytes) {
    size_t rounded = round_up(nbytes == 0 ? 1 : nbytes);
    if (rounded >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(rounded);
      if (it != free_.end() && it->first / kMaxOversize <= rounded) {
        void* p = it->second;
        cached_bytes_ -= it->first;
        block_size_[p] = it->first;
        free_.erase(it);
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlign, rounded);
    if (!p) {
      release_cache();
      p = std::aligned_alloc(kAlign, rounded);
    }
    RESNET_CHECK(p != nullptr, "out of CPU memory: could not allocate ", nbytes, " bytes");
    if (rounded >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mu_);
      block_size_[p] = rounded;
    }
    return p;
  }

  void deallocate(void* p, size_t nbytes) {
    if (!p) return;
    size_t rounded = round_up(nbytes == 0 ? 1 : nbytes);
    if (rounded >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = block_size_.find(p);
      if (it != block_size_.end()) {
        rounded = it->second;  // the block's real size (a best-fit block may be larger than asked)
        block_size_.erase(it);
      }
      if (cached_bytes_ + rounded <= limit_bytes_) {
        free_.emplace(rounded, p);
        cached_bytes_ += rounded;
        return;
      }
    }
    std::free(p);
  }

  void release_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : free_) std::free(kv.second);
    free_.clear();
    cached_bytes_ = 0;
  }

  size_t cached_bytes() const { return cached_bytes_; }
  void set_limit(size_t bytes) { limit_bytes_ = bytes; }

 private:
  static constexpr size_t kAlign = 64;
  static constexpr size_t kCacheMin = 64 * 1024;
  static constexpr size_t kMaxOversize = 4;
  static size_t round_up(size_t n) {
    size_t q = n >= kCacheMin ? 4096 : kAlign;
    return (n + q - 1) / q * q;
  }
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> block_size_;  // large blocks in use -> their real size
  size_t cached_bytes_ = 0;
  size_t limit_bytes_ = size_t(8) << 30;
};

}  // namespace detail

// Frees every cached CPU block (for example before measuring peak memory).
inline void release_cpu_cache() { detail::CpuCachingAllocator::instance().release_cache(); }

class Storage {
 public:
  Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
    if (device.is_cpu()) {
      data_ = detail::CpuCachingAllocator::instance().allocate(nbytes);
    } else {
#if RESNET_WITH_CUDA
      data_ = cuda::device_allocate(nbytes, device.index);
#else
      RESNET_FAIL("cannot allocate on ", device.to_string(),
                  ": this program was built without CUDA support (link resnet::cuda)");
#endif
    }
  }
  // Wraps memory owned elsewhere; the deleter (may be empty) runs when the storage dies.
  Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter)
      : data_(data), nbytes_(nbytes), device_(device), external_(true), deleter_(std::move(deleter)) {}

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  ~Storage() {
    if (external_) {
      if (deleter_) deleter_(data_);
      return;
    }
    if (device_.is_cpu()) {
      detail::CpuCachingAllocator::instance().deallocate(data_, nbytes_);
    } else {
#if RESNET_WITH_CUDA
      cuda::device_free(data_, device_.index);
#endif
    }
  }

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool external_ = false;
  std::function<void(void*)> deleter_;
};

// Byte copy between devices (host<->host is memcpy).
inline void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#if RESNET_WITH_CUDA
  cuda::copy_bytes(dst, dst_device, src, src_device, nbytes);
#else
  RESNET_FAIL("copy between ", src_device.to_string(), " and ", dst_device.to_string(),
              " needs CUDA support (link resnet::cuda)");
#endif
}

}  // namespace RESNET_ABI
}  // namespace resnet
