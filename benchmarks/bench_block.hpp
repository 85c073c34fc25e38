// bench_block: what the CPU driver (bench_block.cpp) and the GPU part (bench_block_gpu.cu, built with
// resnet::cuda) share. Plain C++.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bench_block {

struct BlockShape {
  int64_t C, H, W;
  std::string text() const { return std::to_string(C) + "x" + std::to_string(H) + "x" + std::to_string(W); }
};

struct Options {
  std::vector<int64_t> batches;
  std::vector<BlockShape> shapes;
  std::vector<std::string> dtypes;  // GPU: float32, float16
  bool head = true, tail = true;    // BN -> ReLU, BN -> add -> ReLU
  bool forward = true, backward = true;
  int runs = 10, warmup = 2;
};

// One measurement. Bytes are the tensors the op must touch once each (its inputs read, its outputs
// written): the same for every variant of an op, so GB/s ranks variants and `moved` (the bytes the
// variant's kernels actually move, counted from the tensors each kernel reads and writes) says why.
struct Row {
  std::string device, dtype, block, pass, variant;
  BlockShape shape{0, 0, 0};
  int64_t batch = 0;
  double ms = 0;            // median
  double tensor_bytes = 0;  // one activation tensor
  double min_bytes = 0;     // tensors touched once
  double moved_bytes = 0;   // tensor traffic of the variant's kernels
  double copy_gbs = 0;      // a plain copy of one tensor in the same run: 2 * bytes / time
  double unfused_ms = 0;    // the unfused variant of the same op, for the speed-up (0 when not measured)
  std::string note;         // why a variant has no number
};

using RowSink = std::function<void(const Row&)>;

// How a variant's kernels are organised, for its tensor traffic: fused or not, and whether BatchNorm holds
// a channel on chip between its statistics and its outputs (our GPU kernels for small maps) or reads it
// twice (the CPU backend, our multi-pass GPU kernels, cuDNN).
struct Kernels {
  bool fused, single_pass;
};
constexpr Kernels kUnfused{false, false}, kFusedTwoPass{true, false};

// Tensor traffic, in tensor-sized units, per kernel: the tensors it reads and writes. Head = BN + ReLU,
// tail = BN + add + ReLU.
struct Traffic {
  double min, moved;
};
inline Traffic traffic(bool tail, bool backward, Kernels k) {
  if (!backward) {
    const double min = tail ? 3 : 2;  // x (+ residual) read, y written
    // fused: [statistics (x)] + apply (x [+ r], y); unfused: BN ([x]; x, y1), [add (y1, r, y2)], ReLU (y, y)
    const double bn = k.single_pass ? 2 : 3;
    return {min, k.fused ? min + (k.single_pass ? 0 : 1) : bn + (tail ? 3 : 0) + 2};
  }
  const double min = tail ? 5 : 4;  // dy, y, x read; dx (+ dresidual) written
  // fused: reduce (dy, y, x [, dres written]) + [apply (dres or dy and y, x; dx)]
  // unfused: ReLU backward (y, dy; dz), [dresidual = copy of dz], BN backward ([dz, x] +) (dz, x; dx)
  const double bn = k.single_pass ? 3 : 5;
  return {min, k.fused ? (k.single_pass ? min : 7) : 3 + (tail ? 2 : 0) + bn};
}

// Defined in bench_block_gpu.cu. Returns false (with a message) when no GPU can be used.
bool run_gpu(const Options& o, const RowSink& sink, std::string* why_not);

// What one measurement was and its byte counts, both variants' rows built the same way on each device.
struct RowContext {
  std::string device, dtype;
  BlockShape shape;
  int64_t batch;
  double tensor_bytes, copy_gbs;
};
inline Row make_row(const RowContext& c, bool tail, const char* pass, const char* variant, double ms,
                    bool backward, Kernels kernels, double unfused_ms, const std::string& note = "") {
  Row w;
  w.device = c.device;
  w.dtype = c.dtype;
  w.block = tail ? "tail" : "head";
  w.pass = pass;
  w.variant = variant;
  w.shape = c.shape;
  w.batch = c.batch;
  w.ms = ms;
  const Traffic t = traffic(tail, backward, kernels);
  w.tensor_bytes = c.tensor_bytes;
  w.min_bytes = t.min * c.tensor_bytes;
  w.moved_bytes = t.moved * c.tensor_bytes;
  w.copy_gbs = c.copy_gbs;
  w.unfused_ms = unfused_ms;
  w.note = note;
  return w;
}

}  // namespace bench_block
