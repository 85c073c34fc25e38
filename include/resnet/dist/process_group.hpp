// ProcessGroup: the collectives data-parallel training needs, over the ranks of one job. The interface
// knows no transport; dist/mpi_group.hpp (CPU tensors, MPI) and dist/nccl_group.hpp (GPU tensors, NCCL)
// implement it, and SingleProcessGroup (here) is the world of one that every program has without either.
//
// Rules every backend keeps:
// - Tensors are contiguous, float or double (16-bit too on GPU backends), on the backend's device; every
//   rank passes the same shapes and dtypes, in the same order of calls (as MPI and NCCL require).
// - Collectives work in place on `t` (all_reduce, broadcast); all_gather writes `out`, whose first
//   dimension is size() times the input's (rank r's data at r * in.numel()). Empty tensors are allowed.
// - Average is Sum divided by size(), computed in the tensor's own type.
// - A failure throws resnet::Error naming the call and the rank ("MPI_Allreduce failed on rank 1 of 2:
//   ..."), like the CUDA errors do.
#pragma once

#include "resnet/core/abi.hpp"

#include <memory>
#include <string>
#include <vector>

#include "resnet/core/tensor.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

enum class ReduceOp { Sum, Average };

inline const char* reduce_op_name(ReduceOp op) { return op == ReduceOp::Sum ? "sum" : "average"; }

// A collective in flight (all_reduce_async). wait() returns once the result may be read by the caller:
// on the host for CPU backends; for GPU backends, once the caller's compute stream is ordered after it
// (no host synchronisation). Waiting twice is harmless.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

// A Work that was complete when it was made (collectives that ran synchronously).
class CompletedWork : public Work {
 public:
  void wait() override {}
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's index among the ranks of its machine, and how many share the machine (GPU selection).
  virtual int local_rank() const { return rank(); }
  virtual int local_size() const { return size(); }
  // "single", "mpi", "nccl".
  virtual std::string backend_name() const = 0;
  // Where this group's tensors live.
  virtual Device device() const = 0;

  // The collectives (non-virtual: the checks every backend shares run here, then the backend's do_*).
  void all_reduce(TensorBase& t, ReduceOp op = ReduceOp::Sum) {
    check_tensor(t, "all_reduce");
    do_all_reduce(t, op);
  }
  void broadcast(TensorBase& t, int root = 0) {
    check_tensor(t, "broadcast");
    RESNET_CHECK(root >= 0 && root < size(), "broadcast: root ", root, " out of range for a world of ",
                 size(), " ranks");
    do_broadcast(t, root);
  }
  void all_gather(const TensorBase& in, TensorBase& out) {
    check_tensor(in, "all_gather (input)");
    check_tensor(out, "all_gather (output)");
    RESNET_CHECK(out.dtype() == in.dtype(), "all_gather: output ", out.describe(), " and input ",
                 in.describe(), " differ in dtype");
    RESNET_CHECK(out.numel() == in.numel() * size(), "all_gather: output ", out.describe(), " must hold ",
                 size(), " x the input ", in.describe());
    do_all_gather(in, out);
  }
  void barrier() { do_barrier(); }

  // Starts an all-reduce and returns at once where the backend can overlap it with computation (gradient
  // buckets during backward()); `t` must stay alive and untouched until wait(). Backends without overlap
  // run it now.
  std::shared_ptr<Work> all_reduce_async(TensorBase t, ReduceOp op = ReduceOp::Sum) {
    check_tensor(t, "all_reduce_async");
    return do_all_reduce_async(t, op);
  }

  // Host scalars (metrics, counts), summed over ranks; every rank gets the result. Exact for integers
  // below 2^53.
  std::vector<double> all_reduce_host(std::vector<double> values, ReduceOp op = ReduceOp::Sum);
  double all_reduce_host(double value, ReduceOp op = ReduceOp::Sum) {
    return all_reduce_host(std::vector<double>{value}, op)[0];
  }

  bool is_main() const { return rank() == 0; }

 protected:
  virtual void do_all_reduce(TensorBase& t, ReduceOp op) = 0;
  virtual void do_broadcast(TensorBase& t, int root) = 0;
  virtual void do_all_gather(const TensorBase& in, TensorBase& out) = 0;
  virtual void do_barrier() = 0;
  virtual std::shared_ptr<Work> do_all_reduce_async(TensorBase t, ReduceOp op) {
    do_all_reduce(t, op);
    return std::make_shared<CompletedWork>();
  }

  // Defined, contiguous, on this group's device, of a dtype the backend can reduce.
  void check_tensor(const TensorBase& t, const char* what) const {
    RESNET_CHECK(t.defined(), what, ": undefined tensor (rank ", rank(), ")");
    RESNET_CHECK(t.is_contiguous(), what, ": tensor ", t.describe(), " is not contiguous (rank ", rank(),
                 ")");
    RESNET_CHECK(t.device() == device(), what, ": tensor ", t.describe(), " is not on this ", backend_name(),
                 " group's device ", device().to_string(), " (rank ", rank(), ")");
    // bfloat16 everywhere (compressed gradients); float16 only where the device computes in it.
    const bool wide = t.dtype() == DType::F32 || t.dtype() == DType::F64 || t.dtype() == DType::BF16;
    const bool half = t.dtype() == DType::F16;
    RESNET_CHECK(wide || (half && !device().is_cpu()), what, ": dtype ", dtype_name(t.dtype()),
                 " is not supported by the ", backend_name(), " backend (float, double",
                 device().is_cpu() ? " and bfloat16" : ", float16 and bfloat16", ") (rank ", rank(), ")");
  }
};

// The world of one process: every collective is the identity (Average of one value is itself).
class SingleProcessGroup : public ProcessGroup {
 public:
  explicit SingleProcessGroup(Device device = Device::cpu()) : device_(device) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend_name() const override { return "single"; }
  Device device() const override { return device_; }

 protected:
  void do_all_reduce(TensorBase&, ReduceOp) override {}
  void do_broadcast(TensorBase&, int) override {}
  void do_all_gather(const TensorBase& in, TensorBase& out) override {
    copy_into(out, in.view_base(out.shape()));
  }
  void do_barrier() override {}

 private:
  Device device_;
};

inline std::vector<double> ProcessGroup::all_reduce_host(std::vector<double> values, ReduceOp op) {
  if (size() == 1 || values.empty()) return values;
  Tensor<double> t = Tensor<double>::from_vector(values, Shape{static_cast<int64_t>(values.size())});
  if (!device().is_cpu()) t = t.to(device());
  TensorBase base = t;
  all_reduce(base, op);
  return Tensor<double>(base).to(Device::cpu()).to_vector();
}

// The default group of a program: one process unless dist::init (dist/init.hpp) made another.
inline std::shared_ptr<ProcessGroup> single_process_group(Device device = Device::cpu()) {
  return std::make_shared<SingleProcessGroup>(device);
}

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
