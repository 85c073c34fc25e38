// Device memory of resnet::cuda: the caching allocator behind every tensor (a freed block returns to a
// pool of its device and stream and serves a later allocation of about its size, so a training step does
// no cudaMalloc after the first), the per-thread workspaces, and the memory statistics.
#include "resnet/core/abi.hpp"

#include <unordered_map>

#include "host_sync.cuh"
#include "runtime_state.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {
namespace {

class Allocator {
 public:
  static Allocator& instance() {
    static Allocator* a = new Allocator();  // never destroyed, like Global
    return *a;
  }

  void* allocate(size_t nbytes, int device, cudaStream_t s) {
    const size_t size = round(nbytes == 0 ? 1 : nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    Pool& pool = free_[{device, s}];
    auto it = pool.lower_bound(size);
    if (it != pool.end() && it->first <= size + size / 8) {
      void* p = it->second;
      const size_t got = it->first;
      pool.erase(it);
      live_[p] = Block{got, device, s};
      stats(device).cached -= got;
      note_allocated(device, got);
      return p;
    }
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached_locked(device);
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      cudaGetLastError();
      const Stats& st = stats(device);
      RESNET_FAIL("CUDA out of memory in ", tls.op ? tls.op : "allocation", ": tried to allocate ", nbytes,
                  " bytes (", mib(nbytes), " MiB) on cuda:", device, "; the device has ", free_b, " bytes (",
                  mib(free_b), " MiB) free of ", mib(total_b), " MiB; resnet holds ", mib(st.allocated),
                  " MiB in tensors and ", mib(st.cached), " MiB cached");
    }
    if (err != cudaSuccess) throw_cuda(err, "cudaMalloc(&p, size)", __FILE__, __LINE__);
    live_[p] = Block{size, device, s};
    ++stats(device).mallocs;
    note_allocated(device, size);
    return p;
  }

  void free(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: nothing sensible to do in a destructor
    const Block b = it->second;
    live_.erase(it);
    free_[{b.device, b.stream}].emplace(b.size, p);
    Stats& st = stats(b.device);
    st.allocated -= b.size;
    st.cached += b.size;
  }

  void retag_stream(int device, cudaStream_t s, cudaStream_t to) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find({device, s});
    if (it == free_.end()) return;
    Pool& dst = free_[{device, to}];
    for (auto& kv : it->second) dst.emplace(kv.first, kv.second);
    free_.erase(it);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& kv : stats_) release_cached_locked(kv.first);
  }

  MemoryStats memory(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    const Stats& st = stats(device);
    MemoryStats m;
    m.allocated_bytes = st.allocated;
    m.peak_allocated_bytes = st.peak;
    m.reserved_bytes = st.allocated + st.cached;
    m.cuda_mallocs = st.mallocs;
    return m;
  }
  void reset_peak(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    stats(device).peak = stats(device).allocated;
  }

 private:
  struct Block {
    size_t size;
    int device;
    cudaStream_t stream;
  };
  struct Stats {
    size_t allocated = 0, cached = 0, peak = 0, mallocs = 0;
  };
  using Pool = std::multimap<size_t, void*>;

  // 512 B granules below 1 MiB, 64 KiB below 64 MiB, 2 MiB above: at most a few percent of slack.
  static size_t round(size_t n) {
    const size_t q = n < (size_t(1) << 20)    ? 512
                     : n < (size_t(64) << 20) ? (size_t(64) << 10)
                                              : (size_t(2) << 20);
    return (n + q - 1) / q * q;
  }
  static double mib(size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

  Stats& stats(int device) { return stats_[device]; }
  void note_allocated(int device, size_t size) {
    Stats& st = stats(device);
    st.allocated += size;
    if (st.allocated > st.peak) st.peak = st.allocated;
  }
  void release_cached_locked(int device) {
    int previous = -1;
    cudaGetDevice(&previous);
    cudaSetDevice(device);
    for (auto it = free_.begin(); it != free_.end();) {
      if (it->first.first != device) {
        ++it;
        continue;
      }
      if (!it->second.empty()) count_host_sync(HostSync::FreeMemory);
      for (auto& kv : it->second) cudaFree(kv.second);  // waits for the device: the blocks are idle after
      it = free_.erase(it);
    }
    stats(device).cached = 0;
    if (previous >= 0) cudaSetDevice(previous);
    cudaGetLastError();
  }

  std::mutex mu_;
  std::unordered_map<void*, Block> live_;
  std::map<std::pair<int, cudaStream_t>, Pool> free_;
  std::map<int, Stats> stats_;
};

}  // namespace

void* cached_allocate(size_t nbytes, int device, cudaStream_t s) {
  return Allocator::instance().allocate(nbytes, device, s);
}
void cached_free(void* p) { Allocator::instance().free(p); }
void cached_retag_stream(int device, cudaStream_t s, cudaStream_t to) {
  Allocator::instance().retag_stream(device, s, to);
}

void* workspace(int device, size_t bytes) {
  ensure_sizes(device);
  cudaStream_t s = stream(device);
  auto& slot = tls.workspaces[static_cast<size_t>(device)][s];
  if (!slot.first || slot.second < bytes) {
    size_t size = bytes > slot.second + slot.second / 2 ? bytes : slot.second + slot.second / 2;
    size = (size + (size_t(1) << 20) - 1) / (size_t(1) << 20) * (size_t(1) << 20);  // whole MiB
    if (slot.first) cached_free(slot.first);
    slot.first = nullptr;
    slot.first = cached_allocate(size, device, s);
    slot.second = size;
  }
  return slot.first;
}

}  // namespace detail

// ---------------------------------------------------------------- storage hooks (core/storage.hpp)

void* device_allocate(size_t nbytes, int device) {
  detail::device_state(device);
  detail::set_device(device);
  return detail::cached_allocate(nbytes, device, detail::stream(device));
}

void device_free(void* ptr, int) { detail::cached_free(ptr); }

// ---------------------------------------------------------------- public memory API (runtime.hpp)

MemoryStats memory_stats(int device) { return detail::Allocator::instance().memory(device); }
void reset_peak_memory(int device) { detail::Allocator::instance().reset_peak(device); }
void empty_cache() { detail::Allocator::instance().empty_cache(); }

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
