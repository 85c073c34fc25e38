// MpiProcessGroup: the collectives of dist/process_group.hpp over MPI, for CPU tensors (float, double and
// bfloat16).
// Needs MPI (link resnet::dist).
//
// - Communicator: a duplicate of the parent (MPI_COMM_WORLD by default) with MPI_ERRORS_RETURN, so every
//   failure comes back as resnet::Error naming the call and the rank (MPI_Error_string), never an abort.
//   Local rank and size come from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
// - One communication thread per group makes all of the group's MPI calls, in the order the caller
//   issued them (collectives must be issued in the same order on every rank; one queue keeps it so even
//   when async and blocking calls mix). A blocking collective queues and waits; all_reduce_async queues and
//   returns, and the thread overlaps it with the caller's computation. Needs MPI_THREAD_MULTIPLE
//   (mpi_runtime.hpp); without it, or with RESNET_DIST_COMM_THREAD=0, everything runs synchronously on
//   the caller's thread.
// - Each collective is the nonblocking MPI call (MPI_Iallreduce with MPI_IN_PLACE, MPI_Ibcast,
//   MPI_Iallgather, MPI_Ibarrier) polled with MPI_Test: spinning for the first millisecond, then every
//   ~50 us, so a pending collective does not take a core from the computation it overlaps.
// - Average = the MPI sum, then divided by size() in the tensor's type.
// - bfloat16 (compressed gradients): MPI has no such type, so it travels as 16-bit words and is summed by
//   our own MPI_Op, element by element in float and rounded back, as NCCL's ncclBfloat16 sum does.
// - Failure: a rank that dies makes mpirun kill the others (OpenMPI aborts the
//   job when a process exits without MPI_Finalize or on a signal). A rank that hangs leaves its peers
//   waiting in a collective: when one stays pending longer than RESNET_DIST_TIMEOUT_S (default 300 s),
//   the waiting rank prints the call, its rank and the time waited to stderr and calls MPI_Abort, which
//   ends every rank with a non-zero exit. The construction's rendezvous is guarded the same way.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <chrono>
#include <climits>
#include <cstdint>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "resnet/core/config.hpp"
#include "resnet/core/dtype.hpp"
#include "resnet/dist/launch_env.hpp"
#include "resnet/dist/mpi_runtime.hpp"
#include "resnet/dist/process_group.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

struct MpiOptions {
  // The defaults are the process's settings (resnet::config(): dist_timeout_s, RESNET_DIST_TIMEOUT_S, and
  // dist_comm_thread, RESNET_DIST_COMM_THREAD); a group built with other options keeps its own.
  RESNET_ARG(double, timeout_s) = config().dist_timeout_s();  // 0 = no timeout
  // Run collectives on a communication thread (needs MPI_THREAD_MULTIPLE).
  RESNET_ARG(bool, comm_thread) = config().dist_comm_thread();
};

// Counters of one group's collectives (for measuring communication per step).
struct MpiStats {
  int64_t collectives = 0;
  int64_t bytes = 0;          // payload bytes of the collectives
  double busy_seconds = 0.0;  // time from an MPI call's start to its completion
};

class MpiProcessGroup : public ProcessGroup {
 public:
  explicit MpiProcessGroup(MPI_Comm parent = MPI_COMM_WORLD, MpiOptions options = MpiOptions())
      : runtime_(MpiRuntime::get()), opts_(options) {
    int rank = 0, size = 1;
    MPI_Comm_rank(parent, &rank);
    MPI_Comm_size(parent, &size);
    rank_ = rank;
    size_ = size;
    if (parent == MPI_COMM_WORLD) check_launch_matches();
    // Everyone arrives first (with the timeout), so the blocking calls below cannot wait for a lost rank.
    MPI_Request req;
    call(MPI_Ibarrier(parent, &req), "MPI_Ibarrier (start-up rendezvous)");
    wait_request(req, "MPI_Ibarrier (start-up rendezvous)", std::chrono::steady_clock::now());
    call(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
    call(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    MPI_Comm local;
    call(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
         "MPI_Comm_split_type (MPI_COMM_TYPE_SHARED)");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    call(MPI_Op_create(&bf16_sum, 1, &bf16_sum_op_), "MPI_Op_create (bfloat16 sum)");
    threaded_ = opts_.comm_thread() && runtime_->multiple();
    if (threaded_) thread_ = std::thread([this] { comm_loop(); });
  }

  ~MpiProcessGroup() override {
    if (threaded_) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      cv_.notify_all();
      thread_.join();  // the queue is drained first
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && bf16_sum_op_ != MPI_OP_NULL) MPI_Op_free(&bf16_sum_op_);
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  MpiProcessGroup(const MpiProcessGroup&) = delete;
  MpiProcessGroup& operator=(const MpiProcessGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend_name() const override { return "mpi"; }
  Device device() const override { return Device::cpu(); }

  MPI_Comm comm() const { return comm_; }
  // Whether all_reduce_async overlaps (a communication thread) or runs at once.
  bool overlaps() const { return threaded_; }
  double timeout_s() const { return opts_.timeout_s(); }
  int thread_level() const { return runtime_->thread_level(); }
  MpiStats stats() const {
    std::lock_guard<std::mutex> lock(stats_mu_);
    return stats_;
  }

 protected:
  // Empty tensors need no MPI call (every rank passes the same shapes, so every rank skips it).
  void do_all_reduce(TensorBase& t, ReduceOp op) override {
    if (t.numel() > 0) submit(all_reduce_op(t, op))->wait();
  }
  std::shared_ptr<Work> do_all_reduce_async(TensorBase t, ReduceOp op) override {
    if (t.numel() == 0) return std::make_shared<CompletedWork>();
    return submit(all_reduce_op(t, op));
  }
  void do_broadcast(TensorBase& t, int root) override {
    if (t.numel() == 0) return;
    Op o;
    o.call = "MPI_Ibcast";
    o.what = "broadcast of " + t.describe() + " from rank " + std::to_string(root);
    o.bytes = t.nbytes();
    const int n = count_of(t, o.call);
    const MPI_Datatype dt = mpi_type(t);
    o.start = [this, t, n, dt, root](MPI_Request* r) {
      return MPI_Ibcast(t.raw_data(), n, dt, root, comm_, r);
    };
    submit(std::move(o))->wait();
  }
  void do_all_gather(const TensorBase& in, TensorBase& out) override {
    if (in.numel() == 0) return;
    const char* a = static_cast<const char*>(in.raw_data());
    const char* b = static_cast<const char*>(out.raw_data());
    RESNET_CHECK(in.numel() == 0 || a + in.nbytes() <= b || b + out.nbytes() <= a, "all_gather: the input ",
                 in.describe(), " overlaps the output ", out.describe(), " (rank ", rank_, ")");
    Op o;
    o.call = "MPI_Iallgather";
    o.what = "all_gather of " + in.describe();
    o.bytes = out.nbytes();
    const int n = count_of(in, o.call);
    const MPI_Datatype dt = mpi_type(in);
    TensorBase src = in, dst = out;
    o.start = [this, src, dst, n, dt](MPI_Request* r) {
      return MPI_Iallgather(src.raw_data(), n, dt, dst.raw_data(), n, dt, comm_, r);
    };
    submit(std::move(o))->wait();
  }
  void do_barrier() override {
    Op o;
    o.call = "MPI_Ibarrier";
    o.what = "barrier";
    o.start = [this](MPI_Request* r) { return MPI_Ibarrier(comm_, r); };
    submit(std::move(o))->wait();
  }

 private:
  // One collective: how to start it, and what to do on the result (Average's division).
  struct Op {
    const char* call = "";
    std::string what;
    size_t bytes = 0;
    std::function<int(MPI_Request*)> start;
    std::function<void()> finish;
  };

  // A queued collective; also the Work handed back by all_reduce_async.
  struct Pending : Work {
    Op op;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::exception_ptr error;
    void wait() override {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done; });
      if (error) std::rethrow_exception(error);
    }
    void complete(std::exception_ptr e) {
      {
        std::lock_guard<std::mutex> lock(mu);
        error = e;
        done = true;
      }
      cv.notify_all();
    }
  };

  Op all_reduce_op(const TensorBase& t, ReduceOp op) {
    Op o;
    o.call = "MPI_Iallreduce";
    o.what = std::string("all_reduce (") + reduce_op_name(op) + ") of " + t.describe();
    o.bytes = t.nbytes();
    const int n = count_of(t, o.call);
    const MPI_Datatype dt = mpi_type(t);
    const MPI_Op sum = t.dtype() == DType::BF16 ? bf16_sum_op_ : MPI_SUM;
    o.start = [this, t, n, dt, sum](MPI_Request* r) {
      return MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), n, dt, sum, comm_, r);
    };
    if (op == ReduceOp::Average && size_ > 1) {
      const int64_t numel = t.numel();
      const double world = size_;
      o.finish = [t, numel, world] {
        if (t.dtype() == DType::F32) {
          float* p = static_cast<float*>(t.raw_data());
          const float w = static_cast<float>(world);
          for (int64_t i = 0; i < numel; ++i) p[i] /= w;
        } else if (t.dtype() == DType::BF16) {
          uint16_t* p = static_cast<uint16_t*>(t.raw_data());
          const float w = static_cast<float>(world);
          for (int64_t i = 0; i < numel; ++i) p[i] = bf16_t::from_float(bf16_t::to_float(p[i]) / w);
        } else {
          double* p = static_cast<double*>(t.raw_data());
          for (int64_t i = 0; i < numel; ++i) p[i] /= world;
        }
      };
    }
    return o;
  }

  // Queues `op` (or runs it here without a communication thread).
  std::shared_ptr<Pending> submit(Op op) {
    auto p = std::make_shared<Pending>();
    p->op = std::move(op);
    if (!threaded_) {
      p->complete(run_catching(*p));
      return p;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      RESNET_CHECK(!stop_, p->op.what, ": the MPI group is shutting down (rank ", rank_, ")");
      queue_.push_back(p);
    }
    cv_.notify_all();
    return p;
  }

  std::exception_ptr run_catching(Pending& p) {
    try {
      run(p.op);
    } catch (...) {
      return std::current_exception();
    }
    return nullptr;
  }

  void run(Op& op) {
    const auto t0 = std::chrono::steady_clock::now();
    MPI_Request req;
    call(op.start(&req), op.call, " (", op.what, ")");
    wait_request(req, op.call, t0, " (", op.what, ")");
    if (op.finish) op.finish();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.collectives += 1;
    stats_.bytes += static_cast<int64_t>(op.bytes);
    stats_.busy_seconds += dt;
  }

  void comm_loop() {
    for (;;) {
      std::shared_ptr<Pending> p;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and drained
        p = queue_.front();
        queue_.pop_front();
      }
      p->complete(run_catching(*p));
    }
  }

  // Polls `req` until it completes; past the timeout, says what hung and aborts the job.
  template <typename... Parts>
  void wait_request(MPI_Request& req, const char* call_name, std::chrono::steady_clock::time_point t0,
                    const Parts&... parts) {
    using clock = std::chrono::steady_clock;
    int flag = 0;
    for (int64_t polls = 0;; ++polls) {
      call(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), call_name, parts...);
      if (flag) return;
      const double waited = std::chrono::duration<double>(clock::now() - t0).count();
      if (opts_.timeout_s() > 0 && waited > opts_.timeout_s()) {
        const std::string msg = ::resnet::detail::concat(
            call_name, parts..., " on rank ", rank_, " of ", size_, " has not completed after ", waited,
            " s (RESNET_DIST_TIMEOUT_S=", opts_.timeout_s(),
            "): another rank has died, hung or called a different "
            "collective; aborting the job with MPI_Abort");
        std::fprintf(stderr, "resnet dist: %s\n", msg.c_str());
        std::fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 3);
        RESNET_FAIL(msg);  // MPI_Abort does not return; should it, the caller still gets the error
      }
      if (waited > 1e-3) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  template <typename... Parts>
  void call(int rc, const char* call_name, const Parts&... parts) const {
    if (rc != MPI_SUCCESS)
      RESNET_FAIL(call_name, parts..., " failed on rank ", rank_, " of ", size_, ": ", mpi_error_string(rc));
  }

  int count_of(const TensorBase& t, const char* call_name) const {
    RESNET_CHECK(t.numel() <= INT_MAX, call_name, ": ", t.describe(), " has more than INT_MAX elements, ",
                 "more than one MPI call can move (rank ", rank_, ")");
    return static_cast<int>(t.numel());
  }
  static MPI_Datatype mpi_type(const TensorBase& t) {
    switch (t.dtype()) {
      case DType::F32:
        return MPI_FLOAT;
      case DType::F64:
        return MPI_DOUBLE;
      default:
        return MPI_UINT16_T;  // bfloat16 (check_tensor refuses the rest): moved as words, summed by bf16_sum
    }
  }
  // MPI_User_function over bfloat16 words: inout[i] = in[i] + inout[i], in float, rounded to nearest even.
  static void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
    const uint16_t* a = static_cast<const uint16_t*>(in);
    uint16_t* b = static_cast<uint16_t*>(inout);
    for (int i = 0; i < *len; ++i) b[i] = bf16_t::from_float(bf16_t::to_float(a[i]) + bf16_t::to_float(b[i]));
  }

  // Under a launcher that says N ranks, MPI must see N too (srun without --mpi=pmix, or a program linked
  // to another MPI than the launcher's, gives N worlds of one: N copies training side by side).
  void check_launch_matches() const {
    const LaunchEnv env = detect_launch();
    RESNET_CHECK(!env.launched() || env.world_size == size_, "this process was started as ", env.describe(),
                 " but MPI sees a world of ", size_,
                 " (with srun pass --mpi=pmix or pmi2; the program must use the MPI of its launcher); "
                 "refusing to train ",
                 env.world_size, " copies side by side");
  }

  std::shared_ptr<MpiRuntime> runtime_;
  MpiOptions opts_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Op bf16_sum_op_ = MPI_OP_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool threaded_ = false;

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Pending>> queue_;
  bool stop_ = false;

  mutable std::mutex stats_mu_;
  MpiStats stats_;
};

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
