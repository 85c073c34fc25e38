// CUDA graphs: the GPU work a callable queues, captured once and replayed with one launch. Plain C++ (no
// CUDA header), defined in the resnet::cuda library (src/cuda/graph.cu).
//
// capture(work, device) runs `work` on the host with a fresh side stream made this thread's current stream
// of `device` and that stream in capture mode: every op `work` calls is recorded into the graph instead of
// running (nothing executes during capture). replay() launches the recorded work on the thread's current
// stream, ordered like any op. A replay reads and writes exactly the memory the capture saw, with the
// kernel arguments (shapes, scalars such as a learning rate) frozen at capture time: new data goes into the
// same tensors (copy a batch into a static input before replay()).
//
// Why a side stream: stream capture records everything queued on the capturing stream from any thread, so
// capturing the shared default stream would swallow another thread's work; a private stream sees only this
// thread's. Why cudaStreamCaptureModeThreadLocal: an unsafe call (a synchronisation, a copy to the host)
// made by *this* thread during the capture is refused by CUDA (and by our checks first, naming the op),
// while other threads (data loaders, a communication thread) are not affected, as they would be in the
// Global mode; Relaxed would let a host synchronisation inside the step pass unnoticed.
//
// Memory: every allocation made on the capturing thread during capture comes from a private pool owned by
// the graph (the graph's replays write those addresses), and every block freed there during capture goes
// into that pool too (the graph may read it on replay), so none of it is handed to other work while the
// graph lives. New blocks come from plain cudaMalloc with the thread's capture mode relaxed for that one
// call: the allocation is not meant to be replayed, it is owned by the pool for the graph's life (not
// cudaMallocAsync, whose memory nodes would live inside the graph, outside the caching allocator and its
// statistics, and be unusable by tensors that outlive the capture). The pool's memory goes back to the
// driver when the graph is destroyed; blocks still held by live tensors then (a static output) become
// ordinary cached blocks when those tensors die.
//
// Not allowed inside `work` (each is an error naming the op, and the capture is abandoned): a copy to or
// from host memory, synchronize(), all_finite(), reading a tensor on the host (item(), to(cpu)), a cuDNN
// algorithm search (run the work eagerly at every shape first: warm-up), and freeing cached memory to the
// driver (an out-of-memory during capture says so).
#pragma once

#include "resnet/core/abi.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace resnet {
inline namespace RESNET_ABI {
namespace cuda {

class Graph {
 public:
  Graph();
  ~Graph();  // waits for its replays, then frees the executable graph and its private pool
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&& other) noexcept;
  Graph& operator=(Graph&& other) noexcept;

  // Captures `work` on `device` (see above). A graph holds one capture: capturing again replaces it. If
  // `work` throws, or breaks the capture, nothing is kept and the error is rethrown.
  void capture(const std::function<void()>& work, int device = 0);
  // Launches the captured work on this thread's current stream of the device; returns without waiting.
  void replay();
  // Destroys the capture (as the destructor does); captured() is false afterwards.
  void reset();

  bool captured() const;
  int device() const;
  size_t replays() const;
  size_t nodes() const;       // kernel, copy and memset nodes of the captured graph
  size_t pool_bytes() const;  // device memory of the private pool (in use by the graph's tensors or idle)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether this thread's current stream of `device` is being captured (by a Graph or by anyone else).
bool is_capturing(int device = 0);
// Device memory held by the private pools of all live graphs of `device`.
size_t graph_pool_bytes(int device = 0);

}  // namespace cuda
}  // namespace RESNET_ABI
}  // namespace resnet
