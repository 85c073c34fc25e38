// Host waits of resnet::cuda, counted in one place (runtime.hpp, HostSync), and the pinned staging ring
// behind upload_async: host-to-device copies that never wait for the device in a steady state.
#include "resnet/core/abi.hpp"

#include <atomic>
#include <sstream>

#include "host_sync.cuh"
#include "resnet/backend/cuda/staging_ring.hpp"
#include "runtime_state.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {
namespace {

std::atomic<uint64_t> g_syncs[static_cast<int>(HostSync::kCount)];

// The staging ring's device side (the bookkeeping is StagingRing, staging_ring.hpp): a pinned block, copies
// and events on the device's stream; every wait is counted.
struct PinnedDevice {
  using Event = cudaEvent_t;
  using Stream = cudaStream_t;
  char* alloc(size_t bytes) {
    void* p = nullptr;
    RESNET_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
    return static_cast<char*>(p);
  }
  void free(char* p, size_t) {
    count_host_sync(HostSync::FreeMemory);
    cudaFreeHost(p);
  }
  Event make_event() {
    cudaEvent_t ev = nullptr;
    RESNET_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    return ev;
  }
  void destroy_event(Event ev) { cudaEventDestroy(ev); }
  void copy(void* dst, const char* staged, size_t bytes, Stream s) {
    RESNET_CUDA_CHECK(cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, s));
  }
  void record(Event ev, Stream s) { RESNET_CUDA_CHECK(cudaEventRecord(ev, s)); }
  bool done(Event ev) {
    const cudaError_t q = cudaEventQuery(ev);
    if (q == cudaSuccess) return true;
    if (q != cudaErrorNotReady) throw_cuda(q, "cudaEventQuery(staging piece)", __FILE__, __LINE__);
    return false;
  }
  void wait(Event ev) {
    count_host_sync(HostSync::StagingWait);
    RESNET_CUDA_CHECK(cudaEventSynchronize(ev));
  }
};

// One device's ring, its calls serialised (threads of one device share it).
struct LockedRing {
  std::mutex mu;
  StagingRing<PinnedDevice> ring;
};

// Never destroyed: at process exit the driver may already be gone.
LockedRing& ring(int device) {
  static std::mutex mu;
  static std::map<int, LockedRing*>* rings = new std::map<int, LockedRing*>();
  std::lock_guard<std::mutex> lock(mu);
  LockedRing*& r = (*rings)[device];
  if (!r) r = new LockedRing();
  return *r;
}

}  // namespace

void count_host_sync(HostSync reason) {
  g_syncs[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace detail

const char* host_sync_name(HostSync reason) {
  switch (reason) {
    case HostSync::Synchronize:
      return "synchronize";
    case HostSync::CopyToHost:
      return "copy to host";
    case HostSync::PinnedUpload:
      return "pinned upload";
    case HostSync::PageableUpload:
      return "pageable upload";
    case HostSync::PeerCopy:
      return "peer copy";
    case HostSync::AllFinite:
      return "all_finite";
    case HostSync::FreeMemory:
      return "cudaFree";
    case HostSync::StagingWait:
      return "staging ring wait";
    case HostSync::StreamDestroy:
      return "stream destroyed";
    default:
      return "unknown";
  }
}

uint64_t host_sync_count(HostSync reason) {
  const int r = static_cast<int>(reason);
  if (r < 0 || r >= static_cast<int>(HostSync::kCount)) return 0;
  return detail::g_syncs[r].load(std::memory_order_relaxed);
}
uint64_t host_sync_count() {
  uint64_t n = 0;
  for (int r = 0; r < static_cast<int>(HostSync::kCount); ++r) n += host_sync_count(static_cast<HostSync>(r));
  return n;
}

std::string describe_host_syncs(const uint64_t (&by_reason)[static_cast<int>(HostSync::kCount)]) {
  uint64_t total = 0;
  std::ostringstream parts;
  for (int r = 0; r < static_cast<int>(HostSync::kCount); ++r) {
    if (!by_reason[r]) continue;
    parts << (total ? ", " : "") << host_sync_name(static_cast<HostSync>(r)) << " " << by_reason[r];
    total += by_reason[r];
  }
  std::ostringstream os;
  os << total;
  if (total) os << " (" << parts.str() << ")";
  return os.str();
}

void upload_async(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  detail::OpScope op("upload_async", device);
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  RESNET_CUDA_CHECK(cudaStreamIsCapturing(detail::stream(device), &capturing));
  RESNET_CHECK(
      capturing == cudaStreamCaptureStatusNone,
      "upload_async during a CUDA graph capture: a replay would copy the staging slot again, which by "
      "then holds other data; upload into the graph's input tensors before each replay instead");
  if (!staging_ring_enabled()) {
    // The copy every upload made when the backend last ran on a GPU: from the caller's pageable memory,
    // which the driver stages before the call returns (counted as a possible wait).
    cuda::copy_bytes(dst, Device::cuda(device), src, Device::cpu(), nbytes);
    return;
  }
  detail::LockedRing& r = detail::ring(device);
  std::lock_guard<std::mutex> lock(r.mu);
  r.ring.upload(dst, src, nbytes, detail::stream(device));
}

size_t staging_ring_bytes(int device) {
  detail::LockedRing& r = detail::ring(device);
  std::lock_guard<std::mutex> lock(r.mu);
  return r.ring.capacity();
}

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
