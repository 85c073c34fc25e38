// Host waits of resnet::cuda, counted in one place (runtime.hpp, HostSync), and the pinned staging ring
// behind upload_async: host-to-device copies that never wait for the device in a steady state.
#include "resnet/core/abi.hpp"

#include <atomic>
#include <cstring>
#include <deque>
#include <sstream>

#include "host_sync.cuh"
#include "runtime_state.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {
namespace {

std::atomic<uint64_t> g_syncs[static_cast<int>(HostSync::kCount)];

// One device's staging ring: a pinned block carved front to back, each piece guarded by an event recorded
// after its copy. Pieces are retired in the order they were made (a FIFO), waiting only for a piece that is
// still in flight when the ring comes round to it.
class StagingRing {
 public:
  void upload(void* dst, const void* src, size_t nbytes, int device, cudaStream_t s) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t n = (nbytes + 255) / 256 * 256;
    if (n * 4 > cap_) grow(n * 4);
    size_t start = head_;
    if (start + n > cap_) {
      // Wrap: the pieces between head and the end are the oldest; retire them before reusing the front.
      while (!live_.empty() && live_.front().off >= head_) retire_front();
      start = 0;
    }
    while (!live_.empty() && live_.front().off >= start && live_.front().off < start + n) retire_front();
    std::memcpy(base_ + start, src, nbytes);
    RESNET_CUDA_CHECK(cudaMemcpyAsync(dst, base_ + start, nbytes, cudaMemcpyHostToDevice, s));
    cudaEvent_t ev = take_event();
    RESNET_CUDA_CHECK(cudaEventRecord(ev, s));
    live_.push_back(Piece{start, n, ev});
    head_ = start + n;
    (void)device;
  }

 private:
  struct Piece {
    size_t off, len;
    cudaEvent_t ev;
  };
  void retire_front() {
    Piece p = live_.front();
    live_.pop_front();
    wait_event(p.ev);
    spare_.push_back(p.ev);
  }
  static void wait_event(cudaEvent_t ev) {
    cudaError_t q = cudaEventQuery(ev);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) throw_cuda(q, "cudaEventQuery(staging piece)", __FILE__, __LINE__);
    count_host_sync(HostSync::StagingWait);
    RESNET_CUDA_CHECK(cudaEventSynchronize(ev));
  }
  cudaEvent_t take_event() {
    if (!spare_.empty()) {
      cudaEvent_t ev = spare_.back();
      spare_.pop_back();
      return ev;
    }
    cudaEvent_t ev = nullptr;
    RESNET_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    return ev;
  }
  void grow(size_t want) {
    size_t cap = size_t(64) << 20;
    while (cap < want) cap *= 2;
    while (!live_.empty()) retire_front();  // every piece of the old block has been copied
    if (base_) {
      count_host_sync(HostSync::FreeMemory);
      cudaFreeHost(base_);
      base_ = nullptr;
      cap_ = 0;
    }
    void* p = nullptr;
    RESNET_CUDA_CHECK(cudaHostAlloc(&p, cap, cudaHostAllocDefault));
    base_ = static_cast<char*>(p);
    cap_ = cap;
    head_ = 0;
  }

  std::mutex mu_;
  char* base_ = nullptr;
  size_t cap_ = 0, head_ = 0;
  std::deque<Piece> live_;
  std::vector<cudaEvent_t> spare_;
};

StagingRing& ring(int device) {
  static std::mutex mu;
  static std::map<int, StagingRing*>* rings = new std::map<int, StagingRing*>();  // never destroyed
  std::lock_guard<std::mutex> lock(mu);
  StagingRing*& r = (*rings)[device];
  if (!r) r = new StagingRing();
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
  detail::ring(device).upload(dst, src, nbytes, device, detail::stream(device));
}

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
