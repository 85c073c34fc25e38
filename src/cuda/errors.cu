// Errors of resnet::cuda: failed CUDA, cuDNN and cuBLAS calls and kernel launches become resnet::Error
// naming the op, the call and the place; bad data a kernel reported (a label out of range) is read from
// host-mapped memory at the next synchronisation and thrown the same way.
#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/loss.hpp"
#include "runtime_state.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {

const char* current_op() { return tls.op ? tls.op : "(no op)"; }

void throw_cuda(cudaError_t err, const char* call, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the next call does not report it again
  // A call that stream capture refused: say which op cannot be part of a CUDA graph (graph.hpp).
  const bool capture = err == cudaErrorStreamCaptureUnsupported || err == cudaErrorStreamCaptureInvalidated ||
                       err == cudaErrorStreamCaptureImplicit || err == cudaErrorStreamCaptureWrongThread ||
                       err == cudaErrorStreamCaptureUnjoined || err == cudaErrorStreamCaptureIsolation ||
                       err == cudaErrorStreamCaptureMerge || err == cudaErrorStreamCaptureUnmatched;
  resnet::detail::throw_error(file, line, "CUDA error in ", current_op(), ": ", call, " returned ",
                              cudaGetErrorName(err), " (", cudaGetErrorString(err), ")",
                              capture ? "; this op cannot be part of a CUDA graph capture (it synchronises, "
                                        "touches host memory or uses the legacy default stream): keep it out "
                                        "of the captured work"
                                      : "");
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

void check_kernel_errors(int device) {
  DeviceState& d = device_state(device);
  volatile kernels::KernelErrorReport* f = d.error_host;
  if (f->code == kernels::kNoError) return;
  const int code = f->code, extent = f->extent;
  const long long where = f->where;
  f->code = kernels::kNoError;
  if (code == kernels::kLabelOutOfRange)
    // The CPU's message (backend/contract/loss.hpp), then where it was found.
    throw Error(contract::label_out_of_range("cross_entropy", static_cast<int32_t>(where & 0xffffffff),
                                             where >> 32, extent) +
                ::resnet::detail::concat(" (found by a kernel on cuda:", device,
                                         ", reported at the next synchronisation)"));
  RESNET_FAIL("a kernel on cuda:", device, " reported error code ", code);
}

}  // namespace detail
}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
