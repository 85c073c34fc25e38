// The CUDA runtime of resnet::cuda: device discovery and the start-up version checks, streams, per-thread
// cuDNN/cuBLAS handles, the caching device allocator, workspaces, copies, and the error reports.
#include "resnet/core/abi.hpp"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "context.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {
namespace {

// CUDA versions are major * 1000 + minor * 10: 13000 -> "13.0", 12080 -> "12.8".
std::string cuda_version_string(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
// cuDNN encodes 9.x as major * 10000 + minor * 100 + patch, 8.x as major * 1000 + minor * 100 + patch.
int cudnn_major(size_t v) { return v >= 10000 ? static_cast<int>(v / 10000) : static_cast<int>(v / 1000); }
std::string cudnn_version_string(size_t v) {
  std::ostringstream os;
  if (v >= 10000)
    os << v / 10000 << "." << (v / 100) % 100 << "." << v % 100;
  else
    os << v / 1000 << "." << (v / 100) % 10 << "." << v % 100;
  return os.str();
}

std::string library_path(const char* symbol) {
  void* p = dlsym(RTLD_DEFAULT, symbol);
  Dl_info info;
  if (p && dladdr(p, &info) && info.dli_fname) return info.dli_fname;
  return "(unknown path)";
}

// A kernel the start-up check launches nothing of: asking for its attributes tells whether this library
// holds code the device can run.
__global__ void probe_kernel() {}

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
  std::atomic<bool> tf32{true};
  std::atomic<bool> bn_single_pass{true};
  std::atomic<bool> bn_clusters{false};
  std::atomic<int> search{static_cast<int>(ConvSearch::Benchmark)};
};

Global& global() {
  static Global* g = [] {
    auto* s = new Global();  // never destroyed: tensors with static lifetime may free memory at exit
    const char* tf = std::getenv("RESNET_TF32");
    if (tf && (std::strcmp(tf, "0") == 0 || std::strcmp(tf, "off") == 0)) s->tf32 = false;
    const char* bn = std::getenv("RESNET_BN_SINGLE_PASS");
    if (bn && (std::strcmp(bn, "0") == 0 || std::strcmp(bn, "off") == 0)) s->bn_single_pass = false;
    const char* clusters = std::getenv("RESNET_BN_CLUSTERS");
    if (clusters && (std::strcmp(clusters, "1") == 0 || std::strcmp(clusters, "on") == 0))
      s->bn_clusters = true;
    const char* search = std::getenv("RESNET_CUDNN_SEARCH");
    if (search && std::strcmp(search, "heuristic") == 0) s->search = static_cast<int>(ConvSearch::Heuristic);
    cudaRuntimeGetVersion(&s->runtime);
    cudaDriverGetVersion(&s->driver);
    cudaError_t err = cudaGetDeviceCount(&s->count);
    if (err != cudaSuccess) {
      s->count = 0;
      s->reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
      if (s->driver == 0) s->reason = "no NVIDIA driver is installed (" + s->reason + ")";
      cudaGetLastError();
    } else if (s->count == 0) {
      s->reason = "no CUDA-capable device is detected";
    }
    s->devices.reset(new DeviceState[static_cast<size_t>(s->count > 0 ? s->count : 1)]);
    // Compile-time against run-time library versions.
    s->cudnn_loaded = cudnnGetVersion();
    s->cudnn_cudart = cudnnGetCudartVersion();
    cublasGetProperty(MAJOR_VERSION, &s->cublas_major);
    cublasGetProperty(MINOR_VERSION, &s->cublas_minor);
    cublasGetProperty(PATCH_LEVEL, &s->cublas_patch);
    std::ostringstream fatal, warn;
    if (cudnn_major(s->cudnn_loaded) != CUDNN_MAJOR)
      fatal << "cuDNN version mismatch: resnet::cuda was compiled against cuDNN " << CUDNN_MAJOR << "."
            << CUDNN_MINOR << "." << CUDNN_PATCHLEVEL << " but the loaded library is cuDNN "
            << cudnn_version_string(s->cudnn_loaded) << " (" << library_path("cudnnGetVersion")
            << "); point the loader at a cuDNN " << CUDNN_MAJOR
            << ".x (LD_LIBRARY_PATH) or rebuild with CUDNN_ROOT";
    else if (s->cudnn_loaded < static_cast<size_t>(CUDNN_VERSION))
      warn << "resnet: warning: loaded cuDNN " << cudnn_version_string(s->cudnn_loaded) << " ("
           << library_path("cudnnGetVersion") << ") is older than the cuDNN " << CUDNN_MAJOR << "."
           << CUDNN_MINOR << "." << CUDNN_PATCHLEVEL << " resnet::cuda was compiled against\n";
    if (s->cudnn_cudart / 1000 != static_cast<size_t>(s->runtime / 1000))
      warn << "resnet: warning: the loaded cuDNN was built for CUDA "
           << cuda_version_string(static_cast<int>(s->cudnn_cudart)) << " but the CUDA runtime is "
           << cuda_version_string(s->runtime) << "\n";
    if (s->cublas_major != CUBLAS_VER_MAJOR)
      warn << "resnet: warning: loaded cuBLAS " << s->cublas_major << "." << s->cublas_minor
           << " differs from the cuBLAS " << CUBLAS_VER_MAJOR << "." << CUBLAS_VER_MINOR
           << " resnet::cuda was compiled against\n";
    s->fatal = fatal.str();
    s->warnings = warn.str();
    if (!s->warnings.empty() && s->count > 0) std::fputs(s->warnings.c_str(), stderr);
    return s;
  }();
  return *g;
}

struct ThreadState {
  std::vector<cudaStream_t> current;  // per device; null: the device's default stream
  std::vector<cudnnHandle_t> cudnn;
  std::vector<cublasHandle_t> cublas;
  std::vector<std::map<cudaStream_t, std::pair<void*, size_t>>> workspaces;
  const char* op = nullptr;
  ~ThreadState();
  // Library handles are not destroyed at thread exit: at process exit the driver may already be gone.
};

thread_local ThreadState tls;

void ensure_sizes(int device) {
  const size_t n = static_cast<size_t>(device) + 1;
  if (tls.current.size() < n) {
    tls.current.resize(n, nullptr);
    tls.cudnn.resize(n, nullptr);
    tls.cublas.resize(n, nullptr);
    tls.workspaces.resize(n);
  }
}

DeviceState& device_state(int device);

// ---------------------------------------------------------------- the caching allocator

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

  // Cached blocks of a stream that is going away become blocks of the device's default stream (the caller
  // has synchronised the stream, so they are idle).
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

ThreadState::~ThreadState() {
  for (auto& per_device : workspaces)
    for (auto& kv : per_device) Allocator::instance().free(kv.second.first);
}

DeviceState& device_state(int device) {
  Global& g = global();
  if (g.count == 0) RESNET_FAIL("no CUDA device is available (", g.reason, "); cannot use cuda:", device);
  RESNET_CHECK(device >= 0 && device < g.count, "cuda:", device, " does not exist: ", g.count, " CUDA device",
               g.count == 1 ? "" : "s", " found");
  if (!g.fatal.empty()) RESNET_FAIL(g.fatal);
  DeviceState& d = g.devices[static_cast<size_t>(device)];
  std::call_once(d.once, [&] {
    cudaDeviceProp prop;
    cudaError_t err = cudaGetDeviceProperties(&prop, device);
    if (err != cudaSuccess) {
      d.error = std::string("cudaGetDeviceProperties failed: ") + cudaGetErrorString(err);
      cudaGetLastError();
      return;
    }
    d.name = prop.name;
    d.sm_count = prop.multiProcessorCount;
    d.cc_major = prop.major;
    d.cc_minor = prop.minor;
    d.total_memory = prop.totalGlobalMem;
    cudaSetDevice(device);
    cudaFuncAttributes attr;
    err = cudaFuncGetAttributes(&attr, probe_kernel);
    if (err != cudaSuccess) {
      d.error = "cuda:" + std::to_string(device) + " (" + d.name + ", compute capability " +
                std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                ") cannot run this build of resnet::cuda (" + cudaGetErrorString(err) +
                "); rebuild with CMAKE_CUDA_ARCHITECTURES including " + std::to_string(prop.major) +
                std::to_string(prop.minor);
      cudaGetLastError();
      return;
    }
    err = cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking);
    if (err == cudaSuccess)
      err = cudaHostAlloc(reinterpret_cast<void**>(&d.error_host), sizeof(kernels::KernelErrorReport),
                          cudaHostAllocMapped);
    if (err == cudaSuccess)
      err = cudaHostGetDevicePointer(reinterpret_cast<void**>(&d.error_device), d.error_host, 0);
    if (err != cudaSuccess) {
      d.error = std::string("cannot set up cuda:") + std::to_string(device) + ": " + cudaGetErrorString(err);
      cudaGetLastError();
      return;
    }
    std::memset(d.error_host, 0, sizeof(kernels::KernelErrorReport));
    d.ready = true;
  });
  if (!d.ready) RESNET_FAIL(d.error);
  return d;
}

void set_device(int device) {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device) RESNET_CUDA_CHECK(cudaSetDevice(device));
}

}  // namespace

// ---------------------------------------------------------------- errors

const char* current_op() { return tls.op ? tls.op : "(no op)"; }

void throw_cuda(cudaError_t err, const char* call, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the next call does not report it again
  resnet::detail::throw_error(file, line, "CUDA error in ", current_op(), ": ", call, " returned ",
                              cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

void throw_cudnn(cudnnStatus_t st, const char* call, const char* file, int line) {
  char detail[512] = {0};
#if CUDNN_MAJOR >= 9
  cudnnGetLastErrorString(detail, sizeof(detail));
#endif
  resnet::detail::throw_error(file, line, "cuDNN error in ", current_op(), ": ", call, " returned ",
                              cudnnGetErrorString(st), detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
}

void throw_cublas(cublasStatus_t st, const char* call, const char* file, int line) {
  resnet::detail::throw_error(file, line, "cuBLAS error in ", current_op(), ": ", call, " returned ",
                              cublasGetStatusName(st), " (", cublasGetStatusString(st), ")");
}

void check_launch(const char* kernel, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    resnet::detail::throw_error(file, line, "CUDA error in ", current_op(), ": launch of kernel ", kernel,
                                " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

// ---------------------------------------------------------------- op scope, handles, workspace

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

int sm_count(int device) { return device_state(device).sm_count; }

void* workspace(int device, size_t bytes) {
  ensure_sizes(device);
  cudaStream_t s = stream(device);
  auto& slot = tls.workspaces[static_cast<size_t>(device)][s];
  if (!slot.first || slot.second < bytes) {
    size_t size = bytes > slot.second + slot.second / 2 ? bytes : slot.second + slot.second / 2;
    size = (size + (size_t(1) << 20) - 1) / (size_t(1) << 20) * (size_t(1) << 20);  // whole MiB
    if (slot.first) Allocator::instance().free(slot.first);
    slot.first = nullptr;
    slot.first = Allocator::instance().allocate(size, device, s);
    slot.second = size;
  }
  return slot.first;
}

kernels::LaunchEnv launch_env(int device) {
  kernels::LaunchEnv env;
  env.stream = stream(device);
  env.sm_count = sm_count(device);
  env.error_flag = device_state(device).error_device;
  env.cc_major = device_state(device).cc_major;
  return env;
}

void check_kernel_errors(int device) {
  DeviceState& d = device_state(device);
  volatile kernels::KernelErrorReport* f = d.error_host;
  if (f->code == kernels::kNoError) return;
  const int code = f->code, extent = f->extent;
  const long long where = f->where;
  f->code = kernels::kNoError;
  if (code == kernels::kLabelOutOfRange)
    RESNET_FAIL("cross_entropy: label ", static_cast<int32_t>(where & 0xffffffff), " at position ",
                where >> 32, " is outside [0, ", extent, ") (found by a kernel on cuda:", device, ")");
  RESNET_FAIL("a kernel on cuda:", device, " reported error code ", code);
}

}  // namespace detail

// ---------------------------------------------------------------- storage hooks (core/storage.hpp)

using detail::Allocator;

void* device_allocate(size_t nbytes, int device) {
  detail::device_state(device);
  detail::set_device(device);
  return Allocator::instance().allocate(nbytes, device, detail::stream(device));
}

void device_free(void* ptr, int) { Allocator::instance().free(ptr); }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cuda() && src_device.is_cuda()) {
    detail::OpScope op("copy (device to device)", dst_device.index);
    if (dst_device.index == src_device.index) {
      RESNET_CUDA_CHECK(
          cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, detail::stream(dst_device.index)));
    } else {
      // The source must be complete before another device's stream reads it.
      RESNET_CUDA_CHECK(cudaStreamSynchronize(detail::stream(src_device.index)));
      RESNET_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes,
                                            detail::stream(dst_device.index)));
    }
  } else if (src_device.is_cuda()) {
    detail::OpScope op("copy to host", src_device.index);
    cudaStream_t s = detail::stream(src_device.index);
    RESNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, s));
    RESNET_CUDA_CHECK(cudaStreamSynchronize(s));
    detail::check_kernel_errors(src_device.index);
  } else {
    detail::OpScope op("copy to device", dst_device.index);
    cudaStream_t s = detail::stream(dst_device.index);
    RESNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, s));
    // From pageable memory the call returns once the source is staged; pinned memory is read later, so
    // wait for it to keep the promise that the source may be reused on return.
    cudaPointerAttributes attr;
    if (cudaPointerGetAttributes(&attr, src) == cudaSuccess && attr.type == cudaMemoryTypeHost)
      RESNET_CUDA_CHECK(cudaStreamSynchronize(s));
    cudaGetLastError();
  }
}

void fill_zero_bytes(void* dst, int device, size_t nbytes) {
  if (nbytes == 0) return;
  detail::OpScope op("zero_", device);
  RESNET_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, detail::stream(device)));
}

// ---------------------------------------------------------------- public runtime API (runtime.hpp)

int device_count() { return detail::global().count; }
std::string unavailable_reason() {
  const auto& g = detail::global();
  return g.count > 0 ? std::string() : g.reason;
}

std::string runtime_info() {
  auto& g = detail::global();
  std::ostringstream os;
  os << "resnet::cuda runtime\n";
  os << "  CUDA runtime " << detail::cuda_version_string(g.runtime) << " (compiled with "
     << detail::cuda_version_string(CUDART_VERSION) << "), driver "
     << (g.driver > 0 ? "supports CUDA " + detail::cuda_version_string(g.driver) : std::string("not found"))
     << "\n";
  os << "  cuDNN loaded " << detail::cudnn_version_string(g.cudnn_loaded) << " from "
     << detail::library_path("cudnnGetVersion") << " (built for CUDA "
     << detail::cuda_version_string(static_cast<int>(g.cudnn_cudart)) << "), compiled against " << CUDNN_MAJOR
     << "." << CUDNN_MINOR << "." << CUDNN_PATCHLEVEL << "\n";
  os << "  cuBLAS loaded " << g.cublas_major << "." << g.cublas_minor << "." << g.cublas_patch << " from "
     << detail::library_path("cublasCreate_v2") << ", compiled against " << CUBLAS_VER_MAJOR << "."
     << CUBLAS_VER_MINOR << "." << CUBLAS_VER_PATCH << "\n";
  os << "  TF32 " << (tf32_enabled() ? "on" : "off") << ", cuDNN algorithm search "
     << (conv_search() == ConvSearch::Benchmark ? "benchmark" : "heuristic") << ", BatchNorm single pass "
     << (batchnorm_single_pass() ? "on" : "off") << " (clusters " << (batchnorm_clusters() ? "on" : "off")
     << ")\n";
  if (g.count == 0) os << "  no device: " << g.reason << "\n";
  for (int d = 0; d < g.count; ++d) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, d) == cudaSuccess)
      os << "  cuda:" << d << " " << prop.name << ", compute capability " << prop.major << "." << prop.minor
         << ", " << prop.multiProcessorCount << " SMs, " << prop.totalGlobalMem / (1024 * 1024) << " MiB\n";
  }
  if (!g.fatal.empty()) os << "  ERROR: " << g.fatal << "\n";
  if (!g.warnings.empty()) os << g.warnings;
  return os.str();
}

void synchronize(int device) {
  detail::OpScope op("synchronize", device);
  RESNET_CUDA_CHECK(cudaStreamSynchronize(detail::stream(device)));
  detail::check_kernel_errors(device);
}

void set_tf32(bool enabled) { detail::global().tf32 = enabled; }
bool tf32_enabled() { return detail::global().tf32; }
void set_batchnorm_single_pass(bool enabled) { detail::global().bn_single_pass = enabled; }
bool batchnorm_single_pass() { return detail::global().bn_single_pass; }
void set_batchnorm_clusters(bool enabled) { detail::global().bn_clusters = enabled; }
bool batchnorm_clusters() { return detail::global().bn_clusters; }
void set_conv_search(ConvSearch search) { detail::global().search = static_cast<int>(search); }
ConvSearch conv_search() { return static_cast<ConvSearch>(detail::global().search.load()); }

MemoryStats memory_stats(int device) { return Allocator::instance().memory(device); }
void reset_peak_memory(int device) { Allocator::instance().reset_peak(device); }
void empty_cache() { Allocator::instance().empty_cache(); }

Stream::Stream(int device) : device_(device) {
  detail::OpScope op("Stream", device);
  cudaStream_t s = nullptr;
  RESNET_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  handle_ = s;
}
Stream::~Stream() {
  cudaStream_t s = static_cast<cudaStream_t>(handle_);
  if (cudaStreamSynchronize(s) == cudaSuccess)
    Allocator::instance().retag_stream(device_, s, detail::device_state(device_).stream);
  cudaStreamDestroy(s);
  cudaGetLastError();
}
void Stream::synchronize() const {
  detail::OpScope op("Stream::synchronize", device_);
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
