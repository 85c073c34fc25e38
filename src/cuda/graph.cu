// CUDA graphs of resnet::cuda (graph.hpp): capture a callable's work on a private side stream in
// thread-local capture mode with a private memory pool, instantiate it, replay it on the current stream,
// and the check that refuses operations a capture cannot hold. Host code only.
#include "resnet/core/abi.hpp"

#include <string>

#include "capture.cuh"
#include "resnet/backend/cuda/graph.hpp"
#include "runtime_state.cuh"

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {
namespace detail {

void refuse_during_capture(const char* what, const char* why, int device) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream(device), &st) != cudaSuccess) {
    cudaGetLastError();
    return;  // no answer: the call itself will report what is wrong
  }
  if (st == cudaStreamCaptureStatusNone) return;
  RESNET_FAIL(what, " during CUDA graph capture on cuda:", device, ": ", why,
              ", which a captured step cannot do; do it outside the captured work (before capture or after "
              "replay)");
}

}  // namespace detail

struct Graph::Impl {
  int device = 0;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  uint64_t pool = 0;
  cudaStream_t last_stream = nullptr;  // where the last replay ran (null: none yet)
  size_t replays = 0, nodes = 0;
};

Graph::Graph() : impl_(new Impl) {}
Graph::~Graph() { reset(); }
Graph::Graph(Graph&& other) noexcept : impl_(std::move(other.impl_)) { other.impl_.reset(new Impl); }
Graph& Graph::operator=(Graph&& other) noexcept {
  if (this != &other) {
    reset();
    impl_.swap(other.impl_);
  }
  return *this;
}

bool Graph::captured() const { return impl_ && impl_->exec != nullptr; }
int Graph::device() const { return impl_ ? impl_->device : 0; }
size_t Graph::replays() const { return impl_ ? impl_->replays : 0; }
size_t Graph::nodes() const { return impl_ ? impl_->nodes : 0; }
size_t Graph::pool_bytes() const {
  return impl_ && impl_->pool ? detail::capture_pool_bytes(impl_->pool) : 0;
}

void Graph::reset() {
  if (!impl_) return;
  Impl& g = *impl_;
  if (g.exec || g.pool) {
    // The replays must be done before the pool's memory can go back to the driver (cudaFree would wait for
    // the whole device anyway); never inside another capture, where waiting is illegal.
    if (g.last_stream && !detail::capture_pool_active()) cudaStreamSynchronize(g.last_stream);
    if (g.exec) cudaGraphExecDestroy(g.exec);
    if (g.graph) cudaGraphDestroy(g.graph);
    if (g.pool) {
      cudaStream_t after = g.last_stream;
      if (!after) after = detail::device_state(g.device).stream;
      detail::capture_pool_release(g.pool, after);
    }
    cudaGetLastError();
  }
  const int device = g.device;
  g = Impl{};
  g.device = device;
}

void Graph::capture(const std::function<void()>& work, int device) {
  RESNET_CHECK(static_cast<bool>(work), "CUDA graph capture: no work to capture (an empty function)");
  reset();
  detail::OpScope op("CUDA graph capture", device);
  RESNET_CHECK(!detail::capture_pool_active(),
               "CUDA graph capture: this thread is already capturing a graph; captures do not nest");
  {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    RESNET_CUDA_CHECK(cudaStreamIsCapturing(detail::stream(device), &st));
    RESNET_CHECK(st == cudaStreamCaptureStatusNone, "CUDA graph capture: the current stream of cuda:", device,
                 " is already being captured; captures do not nest");
  }
  Impl& g = *impl_;
  g.device = device;
  cudaStream_t side = nullptr;
  RESNET_CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  g.pool = detail::capture_pool_create(device);
  detail::ensure_sizes(device);
  const size_t d = static_cast<size_t>(device);
  cudaStream_t previous = detail::tls.current[d];
  detail::tls.current[d] = side;
  detail::capture_pool_begin(g.pool, device);
  // Puts this thread back as it was: its stream, no capture target, and the side stream's workspace (taken
  // from the pool during capture and used by the graph) freed into the pool, where it stays the graph's.
  auto restore = [&]() {
    detail::capture_pool_end();
    detail::tls.current[d] = previous;
    auto& ws = detail::tls.workspaces[d];
    auto it = ws.find(side);
    if (it != ws.end()) {
      detail::cached_free(it->second.first);
      ws.erase(it);
    }
    cudaStreamDestroy(side);
    cudaGetLastError();
  };
  cudaError_t err = cudaStreamBeginCapture(side, cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) {
    restore();
    reset();
    detail::throw_cuda(err, "cudaStreamBeginCapture(side, cudaStreamCaptureModeThreadLocal)", __FILE__,
                       __LINE__);
  }
  cudaGraph_t graph = nullptr;
  try {
    work();
  } catch (...) {
    cudaStreamEndCapture(side, &graph);  // ends the (possibly invalidated) capture; the graph is discarded
    if (graph) cudaGraphDestroy(graph);
    restore();
    reset();
    throw;
  }
  err = cudaStreamEndCapture(side, &graph);
  restore();
  if (err != cudaSuccess || !graph) {
    if (graph) cudaGraphDestroy(graph);
    reset();
    RESNET_FAIL(
        "CUDA graph capture on cuda:", device, " failed: cudaStreamEndCapture returned ",
        cudaGetErrorName(err), " (", cudaGetErrorString(err),
        "): an operation of the captured work broke the capture (a synchronisation, a copy to or from "
        "pageable host memory, work on the legacy default stream, or a stream forked and not joined)");
  }
  g.graph = graph;
  size_t n = 0;
  if (cudaGraphGetNodes(graph, nullptr, &n) == cudaSuccess) g.nodes = n;
  cudaGetLastError();
  err = cudaGraphInstantiateWithFlags(&g.exec, graph, 0);
  if (err != cudaSuccess) {
    g.exec = nullptr;
    reset();
    detail::throw_cuda(err, "cudaGraphInstantiateWithFlags(&exec, graph, 0)", __FILE__, __LINE__);
  }
}

void Graph::replay() {
  RESNET_CHECK(captured(), "CUDA graph replay: nothing was captured (call capture() first)");
  Impl& g = *impl_;
  detail::OpScope op("CUDA graph replay", g.device);
  detail::refuse_during_capture("CUDA graph replay", "a graph cannot launch another from inside a capture",
                                g.device);
  cudaStream_t s = detail::stream(g.device);
  RESNET_CUDA_CHECK(cudaGraphLaunch(g.exec, s));
  g.last_stream = s;
  ++g.replays;
}

bool is_capturing(int device) {
  detail::device_state(device);
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(detail::stream(device), &st) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return st != cudaStreamCaptureStatusNone;
}

size_t graph_pool_bytes(int device) { return detail::capture_pools_bytes(device); }

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
