// The CUDA runtime around the ops: devices, streams, memory, numerics switches and version reports. Plain
// C++ (no CUDA header), defined in the resnet::cuda library.
//
// Every op runs on its thread's *current stream* of the tensors' device: by default one stream per device
// shared by the whole process (created on first use, non-blocking with respect to the legacy default
// stream), or the stream a StreamGuard installed. Ops return without waiting; only copies to the host,
// all_finite(), synchronize() and Stream::synchronize() wait, each wait counted (host_sync_count()).
//
// Device memory comes from a caching allocator: a freed block goes back to a pool of its device and stream
// and is reused by a later allocation of about the same size, so a training step does no cudaMalloc after
// the first. Memory freed on one stream is reused only on that stream.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

// Number of usable CUDA devices; 0 (never an exception) without a driver or a GPU.
int device_count();
inline bool is_available() { return device_count() > 0; }
// Why device_count() is 0 ("no CUDA-capable device is detected", "CUDA driver version is insufficient...").
std::string unavailable_reason();

// Devices, driver and runtime versions, and the cuDNN and cuBLAS versions compiled against and loaded,
// with any mismatch spelled out. Safe to call without a GPU.
std::string runtime_info();

// Compute capability of `device` as major * 10 + minor (90 for Hopper); throws when there is no such device.
int compute_capability(int device = 0);

// Waits until all work queued on this thread's current stream of `device` is done; throws if a kernel
// reported bad data (a label out of range) or failed.
void synchronize(int device = 0);

// The switches below are runtime settings of resnet::config() (core/config.hpp; README.md, "Runtime
// settings"): each setter here writes its setting and each getter reads it, so config().set_tf32(false) and
// set_tf32(false) are one switch, and the environment variable named with each (read once, validated) is
// its default.

// TF32 tensor-core math for float32 convolutions and matrix products (Ampere and newer): on by default,
// off when the environment has RESNET_TF32=0 (or off). Off gives float32 results within ~1e-5 of the CPU.
void set_tf32(bool enabled);
bool tf32_enabled();

// BatchNorm's single-pass kernels for channels that fit one block (docs/CUDA.md). Off by default: they have
// never run on a GPU, and what never ran on one is never the default (benchmarks/RESULTS.md, "Kernel
// policy"). On with set_batchnorm_single_pass(true) or RESNET_BN_SINGLE_PASS=1, so one program can time a
// whole network both ways; off, the multi-pass kernels run everywhere.
void set_batchnorm_single_pass(bool enabled);
bool batchnorm_single_pass();

// Experimental, off by default until it is measured: the single pass also for channels that fit a cluster
// of up to 8 blocks (Hopper and newer; e.g. ResNet-50's 14x14 and 28x28 maps at batch 128), with the
// blocks' sums exchanged at a cluster barrier. On with set_batchnorm_clusters(true) or RESNET_BN_CLUSTERS=1;
// it takes effect only where the single pass is on too.
void set_batchnorm_clusters(bool enabled);
bool batchnorm_clusters();

// Channels-last (NHWC) kernels: cuDNN convolutions with NHWC descriptors, NHWC BatchNorm and pooling
// (docs/CUDA.md). Off by default: they have never run on a GPU. Off, the ops convert channels-last CUDA
// tensors to row-major before calling the backend (as before); on, CUDA tensors keep their format, as on
// the CPU, so Module::to(MemoryFormat::ChannelsLast) runs the network in NHWC. On with
// set_channels_last(true) or RESNET_CUDA_NHWC=1. Host-side only: safe to call without a GPU.
void set_channels_last(bool enabled);
bool channels_last_enabled();

// Packs of half a 16-byte vector in the multi-pass BatchNorm kernels and the per-channel sums (bias
// gradients) where whole vectors do not divide H * W (16-bit types at 14x14: 196 = 4 * 49). Off by default:
// they have never run on a GPU; off, those shapes load single values, as on the GPU run. A row of the
// BatchNorm policy (kernels/batchnorm_plan.cuh, kBnPolicy). On with set_half_packs(true) or
// RESNET_CUDA_HALF_PACKS=1. Host-side only: safe to call without a GPU.
void set_half_packs(bool enabled);
bool half_packs_enabled();

// How many BatchNorm launches (training forwards and backwards) each kernel path has run in this process,
// counted on the host as they are queued: tests assert with it that the path they meant to test ran.
// half_packs: multi-pass launches that took half packs (counted there, not in multi_pass).
struct BatchNormPathCounts {
  uint64_t multi_pass = 0, single_pass = 0, clusters = 0, half_packs = 0;
};
BatchNormPathCounts batchnorm_path_counts();

// How cuDNN convolution algorithms are chosen, once per shape: Benchmark times every algorithm (like
// torch.backends.cudnn.benchmark = True; the default), Heuristic asks cuDNN's heuristics (faster first
// step). The setting cudnn_search (RESNET_CUDNN_SEARCH=heuristic|benchmark) sets the default.
enum class ConvSearch { Benchmark, Heuristic };
void set_conv_search(ConvSearch search);
ConvSearch conv_search();

struct MemoryStats {
  size_t allocated_bytes = 0;       // held by live tensors (and workspaces)
  size_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes since the last reset
  size_t reserved_bytes = 0;        // allocated plus cached, all obtained from cudaMalloc
  size_t cuda_mallocs = 0;          // cudaMalloc calls so far (flat after warm-up)
};
MemoryStats memory_stats(int device = 0);
void reset_peak_memory(int device = 0);
// Returns every cached (unused) block to the driver.
void empty_cache();

// A stream of its own, for overlapping work (for example a copy beside compute).
class Stream {
 public:
  explicit Stream(int device = 0);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  void* handle() const { return handle_; }  // a cudaStream_t
  int device() const { return device_; }
  void synchronize() const;

 private:
  void* handle_ = nullptr;
  int device_ = 0;
};

// Makes `stream` this thread's current stream of its device until the guard ends.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  int device_;
  void* previous_;
};

// This thread's current stream of `device` (a cudaStream_t).
void* current_stream(int device = 0);

// ---- host synchronisations
// Every place resnet::cuda makes the host wait for a device goes through one counter, by reason, so a test
// can assert that a steady-state training step waits nowhere (and bench_train prints waits per step).
// Counted: synchronize() and Stream::synchronize(), copies to the host, copies from pinned host memory
// through copy_bytes (which wait so the source may be reused), copies from pageable memory (the driver may
// wait for the stream while it stages them), copies between devices, all_finite(), cudaFree of cached
// blocks (empty_cache, out-of-memory retries), a staging slot still in flight (upload_async), a Stream's
// destruction. Not counted: what cuDNN does inside an algorithm search (once per shape) and convolution
// search buffers freed there (src/cuda/conv_linear.cu, once per shape).
enum class HostSync : int {
  Synchronize = 0,  // synchronize(), Stream::synchronize()
  CopyToHost,       // a device-to-host copy (Tensor::to(cpu), item(), to_vector())
  PinnedUpload,     // copy_bytes from pinned host memory (waits so the caller may reuse the source)
  PageableUpload,   // copy_bytes from pageable host memory (the driver may wait while it stages it)
  PeerCopy,         // a copy from another device (waits for the source's stream)
  AllFinite,        // all_finite() reads its flag
  FreeMemory,       // cudaFree / cudaFreeHost (the driver synchronises the device)
  StagingWait,      // upload_async found its staging space still in use by an earlier copy
  StreamDestroy,    // a Stream's destructor waits for its work
  kCount
};
const char* host_sync_name(HostSync reason);
// Host waits so far in this process (all threads), in all and by reason.
uint64_t host_sync_count();
uint64_t host_sync_count(HostSync reason);
// "2 (copy to host 1, synchronize 1)" or "0".
std::string describe_host_syncs(const uint64_t (&by_reason)[static_cast<int>(HostSync::kCount)]);

// Counts the host waits from its construction on (tests: "this step waited nowhere").
class SyncCounter {
 public:
  SyncCounter() { reset(); }
  void reset() {
    for (int r = 0; r < static_cast<int>(HostSync::kCount); ++r)
      start_[r] = host_sync_count(static_cast<HostSync>(r));
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (int r = 0; r < static_cast<int>(HostSync::kCount); ++r) n += count(static_cast<HostSync>(r));
    return n;
  }
  uint64_t count(HostSync r) const { return host_sync_count(r) - start_[static_cast<int>(r)]; }
  // The waits since construction by reason, e.g. "1 (copy to host 1)".
  std::string describe() const {
    uint64_t d[static_cast<int>(HostSync::kCount)];
    for (int r = 0; r < static_cast<int>(HostSync::kCount); ++r) d[r] = count(static_cast<HostSync>(r));
    return describe_host_syncs(d);
  }

 private:
  uint64_t start_[static_cast<int>(HostSync::kCount)] = {};
};

// Copies nbytes from host memory `src` to device memory `dst` on this thread's current stream of `device`;
// `src` may be reused as soon as this returns. Refused during a CUDA graph capture. How it copies depends on
// set_staging_ring:
//  - off (the default, what ran on a GPU): a copy from the caller's pageable memory, which the driver stages
//    before returning (counted as HostSync::PageableUpload: it may wait for the device);
//  - on: the bytes go first into a pinned staging ring of the device, then by an asynchronous copy, so
//    nothing waits in a steady state. Each piece of the ring records an event after its copy and is
//    rewritten only once that event has completed (otherwise the wait is counted, HostSync::StagingWait).
//    The ring holds at least 4 times the largest upload (64 MiB at least) and grows when a larger one comes
//    (its bookkeeping: staging_ring.hpp).
void upload_async(void* dst, const void* src, size_t nbytes, int device = 0);
// The pinned staging ring behind upload_async (above). Off by default: it has never run on a GPU. On with
// set_staging_ring(true) or RESNET_CUDA_STAGING=1 (the training step then waits for the device nowhere;
// test_cuda_sync). Host-side only: safe to call without a GPU.
void set_staging_ring(bool enabled);
bool staging_ring_enabled();
// Bytes of `device`'s staging ring (0 until the ring's first upload).
size_t staging_ring_bytes(int device = 0);

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
