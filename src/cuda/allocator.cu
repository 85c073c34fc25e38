// Device memory of resnet::cuda: the caching allocator behind every tensor (a freed block returns to a
// pool of its device and stream and serves a later allocation of about its size, so a training step does
// no cudaMalloc after the first), the per-thread workspaces, and the memory statistics.
//
// CUDA graphs (graph.hpp): while a thread captures, its allocations on the captured device come from the
// graph's private pool and its frees go into that pool, whatever pool the block came from; a pool's blocks
// serve only its graph until the graph is gone (release), when the idle ones go back to the driver and the
// ones still held by tensors become ordinary cached blocks of the stream the graph last ran on.
#include "resnet/core/abi.hpp"

#include <unordered_map>

#include "capture.cuh"
#include "host_sync.cuh"
#include "runtime_state.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {
namespace {

// The private pool this thread captures into (0: none) and its device.
struct CaptureTarget {
  uint64_t pool = 0;
  int device = -1;
};
thread_local CaptureTarget tls_capture;

class Allocator {
 public:
  static Allocator& instance() {
    static Allocator* a = new Allocator();  // never destroyed, like Global
    return *a;
  }

  void* allocate(size_t nbytes, int device, cudaStream_t s) {
    const size_t size = round(nbytes == 0 ? 1 : nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    if (tls_capture.pool != 0 && tls_capture.device == device)
      return allocate_private_locked(nbytes, size, device, tls_capture.pool);
    Pool& pool = free_[{device, s}];
    auto it = pool.lower_bound(size);
    if (it != pool.end() && it->first <= size + size / 8) {
      void* p = it->second;
      const size_t got = it->first;
      pool.erase(it);
      live_[p] = Block{got, device, s, 0};
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
    live_[p] = Block{size, device, s, 0};
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
    Stats& st = stats(b.device);
    st.allocated -= b.size;
    st.cached += b.size;
    if (b.pool != 0) {
      PrivatePool& pp = pools_.at(b.pool);
      if (!pp.released) {
        pp.free.emplace(b.size, p);
        return;
      }
      // Its graph is gone: an ordinary cached block of the stream the graph last ran on.
      pp.bytes -= b.size;
      const cudaStream_t after = pp.stream_after;
      if (pp.bytes == 0) pools_.erase(b.pool);
      free_[{b.device, after}].emplace(b.size, p);
      return;
    }
    if (tls_capture.pool != 0 && tls_capture.device == b.device) {
      // Freed during a capture: the captured work may read it on every replay (it was the input of a
      // captured op), so from now on it serves that graph only.
      PrivatePool& pp = pools_.at(tls_capture.pool);
      pp.free.emplace(b.size, p);
      pp.bytes += b.size;
      return;
    }
    free_[{b.device, b.stream}].emplace(b.size, p);
  }

  // ---- private pools of CUDA graphs

  uint64_t pool_create(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t id = next_pool_++;
    pools_[id].device = device;
    return id;
  }
  void pool_release(uint64_t id, cudaStream_t stream_after) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pools_.find(id);
    if (it == pools_.end()) return;
    PrivatePool& pp = it->second;
    pp.released = true;
    pp.stream_after = stream_after;
    int previous = -1;
    cudaGetDevice(&previous);
    cudaSetDevice(pp.device);
    Stats& st = stats(pp.device);
    for (auto& kv : pp.free) {
      cudaFree(kv.second);  // waits for the device: the graph's last replay is done
      st.cached -= kv.first;
      pp.bytes -= kv.first;
    }
    pp.free.clear();
    if (previous >= 0) cudaSetDevice(previous);
    cudaGetLastError();
    if (pp.bytes == 0) pools_.erase(it);
  }
  size_t pool_bytes(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pools_.find(id);
    return it == pools_.end() || it->second.released ? 0 : it->second.bytes;
  }
  size_t pools_bytes(int device) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (auto& kv : pools_)
      if (kv.second.device == device && !kv.second.released) n += kv.second.bytes;
    return n;
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
    uint64_t pool;  // 0: the stream's cache; else the private pool of a graph
  };
  struct Stats {
    size_t allocated = 0, cached = 0, peak = 0, mallocs = 0;
  };
  using Pool = std::multimap<size_t, void*>;
  struct PrivatePool {
    int device = 0;
    Pool free;
    size_t bytes = 0;       // every block of the pool, in use or idle
    bool released = false;  // the graph is gone; live blocks leave the pool as they are freed
    cudaStream_t stream_after = nullptr;
  };

  // During a capture: a block of the private pool, from its idle blocks or from the driver. cudaMalloc is
  // one of the calls stream capture treats as unsafe because it is not captured; here that is the point (the
  // block belongs to the pool for the graph's life and every replay uses it at this address), so the thread's
  // capture mode is relaxed for this call only. Cached blocks cannot go back to the driver during a capture
  // (cudaFree waits for the device), so an out-of-memory error says so instead of retrying.
  void* allocate_private_locked(size_t nbytes, size_t size, int device, uint64_t id) {
    PrivatePool& pp = pools_.at(id);
    auto it = pp.free.lower_bound(size);
    if (it != pp.free.end() && it->first <= size + size / 8) {
      void* p = it->second;
      const size_t got = it->first;
      pp.free.erase(it);
      live_[p] = Block{got, device, nullptr, id};
      stats(device).cached -= got;
      note_allocated(device, got);
      return p;
    }
    void* p = nullptr;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaThreadExchangeStreamCaptureMode(&mode);
    cudaError_t err = cudaMalloc(&p, size);
    cudaThreadExchangeStreamCaptureMode(&mode);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      const Stats& st = stats(device);
      RESNET_FAIL("CUDA out of memory in ", tls.op ? tls.op : "allocation",
                  " during CUDA graph capture: tried to ", "allocate ", nbytes, " bytes (", mib(nbytes),
                  " MiB) on cuda:", device, " for the graph's ", "private pool (", mib(pp.bytes),
                  " MiB so far); resnet holds ", mib(st.allocated), " MiB in tensors and ", mib(st.cached),
                  " MiB cached, which cannot be returned to the driver ",
                  "during a capture: call cuda::empty_cache() before capturing");
    }
    if (err != cudaSuccess)
      throw_cuda(err, "cudaMalloc(&p, size) for a CUDA graph's private pool", __FILE__, __LINE__);
    live_[p] = Block{size, device, nullptr, id};
    pp.bytes += size;
    ++stats(device).mallocs;
    note_allocated(device, size);
    return p;
  }

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
  std::map<uint64_t, PrivatePool> pools_;
  uint64_t next_pool_ = 1;
};

}  // namespace

void* cached_allocate(size_t nbytes, int device, cudaStream_t s) {
  return Allocator::instance().allocate(nbytes, device, s);
}
void cached_free(void* p) { Allocator::instance().free(p); }
void cached_retag_stream(int device, cudaStream_t s, cudaStream_t to) {
  Allocator::instance().retag_stream(device, s, to);
}

uint64_t capture_pool_create(int device) { return Allocator::instance().pool_create(device); }
void capture_pool_begin(uint64_t pool, int device) { tls_capture = CaptureTarget{pool, device}; }
void capture_pool_end() { tls_capture = CaptureTarget{}; }
bool capture_pool_active() { return tls_capture.pool != 0; }
void capture_pool_release(uint64_t pool, cudaStream_t stream_after) {
  Allocator::instance().pool_release(pool, stream_after);
}
size_t capture_pool_bytes(uint64_t pool) { return Allocator::instance().pool_bytes(pool); }
size_t capture_pools_bytes(int device) { return Allocator::instance().pools_bytes(device); }

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
