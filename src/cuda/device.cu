// Devices of resnet::cuda: discovery, the start-up version checks (cuDNN, cuBLAS and the CUDA runtime,
// compiled against and loaded), each device's properties and default stream, the process-wide switches
// (TF32, the BatchNorm kernels, cuDNN's algorithm search: settings of resnet::config()) and runtime_info().
#include "resnet/core/abi.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "resnet/core/config.hpp"
#include "runtime_state.cuh"

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

}  // namespace

Global& global() {
  static Global* g = [] {
    auto* s = new Global();  // never destroyed: tensors with static lifetime may free memory at exit
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

int sm_count(int device) { return device_state(device).sm_count; }

}  // namespace detail

// ---------------------------------------------------------------- public runtime API (runtime.hpp)

int device_count() { return detail::global().count; }
int compute_capability(int device) {
  const detail::DeviceState& d = detail::device_state(device);
  return d.cc_major * 10 + d.cc_minor;
}
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
     << "), half packs " << (half_packs_enabled() ? "on" : "off") << ", channels-last kernels "
     << (channels_last_enabled() ? "on" : "off") << ", staging ring "
     << (staging_ring_enabled() ? "on" : "off") << "\n";
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

// The switches are settings of resnet::config() (core/config.hpp), which reads their environment variables
// and validates every value; the BatchNorm ones not set anywhere follow the kernel policy table.
void set_tf32(bool enabled) { config().set_tf32(enabled); }
bool tf32_enabled() { return config().tf32(); }
void set_batchnorm_single_pass(bool enabled) { config().set_bn_single_pass(enabled); }
bool batchnorm_single_pass() {
  return config().bn_single_pass().value_or(kernels::bn_default_on(kernels::BnPath::SinglePass));
}
void set_batchnorm_clusters(bool enabled) { config().set_bn_clusters(enabled); }
bool batchnorm_clusters() {
  return config().bn_clusters().value_or(kernels::bn_default_on(kernels::BnPath::Cluster));
}
void set_channels_last(bool enabled) { config().set_cuda_nhwc(enabled); }
bool channels_last_enabled() { return config().cuda_nhwc(); }
void set_half_packs(bool enabled) { config().set_cuda_half_packs(enabled); }
bool half_packs_enabled() {
  return config().cuda_half_packs().value_or(kernels::bn_default_on(kernels::BnPath::HalfPacks));
}
void set_staging_ring(bool enabled) { config().set_cuda_staging(enabled); }
bool staging_ring_enabled() { return config().cuda_staging(); }
void set_conv_search(ConvSearch search) {
  config().set_cudnn_search(search == ConvSearch::Heuristic ? CudnnSearch::Heuristic
                                                            : CudnnSearch::Benchmark);
}
ConvSearch conv_search() {
  return config().cudnn_search() == CudnnSearch::Heuristic ? ConvSearch::Heuristic : ConvSearch::Benchmark;
}

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
