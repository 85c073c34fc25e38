// NcclProcessGroup: the collectives of dist/process_group.hpp over NCCL, for GPU tensors (float, double,
// float16, bfloat16). Needs NCCL and the CUDA backend (link resnet::dist built with CUDA:
// RESNET_HAVE_NCCL=1).
//
// - Start-up over MPI: rank 0's ncclUniqueId is broadcast by an MpiProcessGroup (with its timeout), then
//   ncclCommInitRank. Each process takes GPU local_rank % device count (cudaSetDevice); device() says which.
// - Streams: NCCL runs on a stream of its own. A collective first makes that stream wait on an event
//   recorded on the caller's current compute stream (cuda::current_stream, backend/cuda/runtime.hpp), so
//   it reads the tensor only after the ops that wrote it; its completion is another event. Blocking calls
//   make the compute stream wait on it at once; all_reduce_async returns a Work whose wait() does (and its
//   destructor, if never waited), so later ops and frees on the compute stream follow the collective. No
//   call waits on the host, except barrier().
// - Average is NCCL's ncclAvg (the sum divided by size() in the tensor's type).
// - Errors: a failed call throws naming the call and rank with ncclGetErrorString and ncclGetLastError.
// - Failure: a watchdog thread polls the pending collectives' events and ncclCommGetAsyncError. When one
//   stays pending longer than RESNET_DIST_TIMEOUT_S (default 300 s, 0 = never), or NCCL reports an
//   asynchronous error (a peer died), it prints the call, rank and time, calls ncclCommAbort (which ends
//   the stuck kernels) and then ends the job with MPI_Abort, so no rank trains on with a dead
//   communicator and no checkpoint is written from it.
#pragma once

#include "resnet/core/abi.hpp"

#if !RESNET_HAVE_NCCL
#error \
    "resnet/dist/nccl_group.hpp needs NCCL and the CUDA backend: link resnet::dist of a CUDA build (RESNET_HAVE_NCCL=1)"
#endif

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "resnet/backend/cuda/runtime.hpp"
#include "resnet/dist/mpi_group.hpp"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 10, 0)
#error "resnet/dist/nccl_group.hpp needs NCCL 2.10 or newer (ncclAvg, ncclBfloat16)"
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

class NcclProcessGroup : public ProcessGroup {
 public:
  explicit NcclProcessGroup(std::shared_ptr<MpiProcessGroup> bootstrap)
      : mpi_(std::move(bootstrap)), timeout_s_(mpi_ ? mpi_->timeout_s() : 0.0) {
    RESNET_CHECK(mpi_ != nullptr, "NcclProcessGroup: the MPI group to start from is null");
    rank_ = mpi_->rank();
    size_ = mpi_->size();
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    RESNET_CHECK(e == cudaSuccess && count > 0, "NcclProcessGroup on rank ", rank_, " of ", size_,
                 ": no CUDA device (", e == cudaSuccess ? "none found" : cudaGetErrorString(e), ")");
    device_ = mpi_->local_rank() % count;
    cuda_call(cudaSetDevice(device_), "cudaSetDevice");

    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (rank_ == 0) nccl_call(ncclGetUniqueId(&id), "ncclGetUniqueId");
    constexpr int64_t kWords = (sizeof(ncclUniqueId) + sizeof(double) - 1) / sizeof(double);
    Tensor<double> words = Tensor<double>::zeros(Shape{kWords});
    std::memcpy(words.data(), &id, sizeof(id));
    TensorBase base = words;
    mpi_->broadcast(base, 0);
    std::memcpy(&id, words.data(), sizeof(id));
    nccl_call(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    cuda_call(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclProcessGroup() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    cudaSetDevice(device_);
    if (!aborted_) {
      cudaStreamSynchronize(stream_);
      ncclCommDestroy(comm_);
    }
    cudaStreamDestroy(stream_);
  }
  NcclProcessGroup(const NcclProcessGroup&) = delete;
  NcclProcessGroup& operator=(const NcclProcessGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return mpi_->local_rank(); }
  int local_size() const override { return mpi_->local_size(); }
  std::string backend_name() const override { return "nccl"; }
  Device device() const override { return Device::cuda(device_); }

  ncclComm_t comm() const { return comm_; }
  void* stream() const { return stream_; }  // the cudaStream_t NCCL runs on
  const MpiProcessGroup& bootstrap() const { return *mpi_; }

 protected:
  void do_all_reduce(TensorBase& t, ReduceOp op) override { all_reduce_work(t, op)->wait(); }
  std::shared_ptr<Work> do_all_reduce_async(TensorBase t, ReduceOp op) override {
    return all_reduce_work(t, op);
  }
  void do_broadcast(TensorBase& t, int root) override {
    if (t.numel() == 0) return;
    TensorBase keep = t;
    const ncclDataType_t dt = nccl_type(t);
    launch("ncclBroadcast", "broadcast of " + t.describe() + " from rank " + std::to_string(root), keep,
           [&](cudaStream_t s) {
             return ncclBroadcast(keep.raw_data(), keep.raw_data(), static_cast<size_t>(keep.numel()), dt,
                                  root, comm_, s);
           })
        ->wait();
  }
  void do_all_gather(const TensorBase& in, TensorBase& out) override {
    if (in.numel() == 0) return;
    TensorBase src = in, dst = out;
    const ncclDataType_t dt = nccl_type(in);
    // The output is what the compute stream reads next; the input is kept alive alongside.
    auto work = launch("ncclAllGather", "all_gather of " + in.describe(), dst, [&](cudaStream_t s) {
      return ncclAllGather(src.raw_data(), dst.raw_data(), static_cast<size_t>(src.numel()), dt, comm_, s);
    });
    work->keep_also(src);
    work->wait();
  }
  // A host barrier: a one-value all-reduce, waited for on the host (the watchdog bounds the wait).
  void do_barrier() override {
    Tensor<float> one = Tensor<float>::zeros(Shape{1}, device());
    TensorBase base = one;
    auto work = all_reduce_work(base, ReduceOp::Sum);
    work->wait();
    cuda_call(cudaEventSynchronize(work->done()), "cudaEventSynchronize (barrier)");
    check_alive("barrier");
  }

 private:
  // A collective queued on stream_: done() is recorded after it. Keeps its tensors alive until the
  // compute stream is ordered after it.
  class NcclWork : public Work {
   public:
    NcclWork(NcclProcessGroup* g, TensorBase keep) : g_(g), keep_(std::move(keep)) {
      g_->cuda_call(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    }
    ~NcclWork() override {
      try {
        if (!waited_) order_compute();  // never waited: later frees on the compute stream still follow it
      } catch (...) {
      }
      cudaEventDestroy(done_);
    }
    void wait() override {
      g_->check_alive("wait");
      if (!waited_) g_->cuda_call(order_compute(), "cudaStreamWaitEvent (compute after NCCL)");
      waited_ = true;
    }
    cudaEvent_t done() const { return done_; }
    void keep_also(TensorBase t) { extra_ = std::move(t); }

   private:
    cudaError_t order_compute() {
      cudaSetDevice(g_->device_);
      auto compute = static_cast<cudaStream_t>(cuda::current_stream(g_->device_));
      return cudaStreamWaitEvent(compute, done_, 0);
    }
    NcclProcessGroup* g_;
    TensorBase keep_, extra_;
    cudaEvent_t done_ = nullptr;
    bool waited_ = false;
  };

  struct Watched {
    cudaEvent_t event;  // recorded after the call for the watchdog (its own: a Work may go first); null
                        // while the call is being made
    std::chrono::steady_clock::time_point start;
    std::string what;
  };

  std::shared_ptr<NcclWork> all_reduce_work(TensorBase& t, ReduceOp op) {
    TensorBase keep = t;
    auto work = std::make_shared<NcclWork>(this, keep);
    if (t.numel() == 0) return work;  // recorded on nothing: complete
    const ncclDataType_t dt = nccl_type(t);
    const ncclRedOp_t rop = op == ReduceOp::Sum ? ncclSum : ncclAvg;
    return launch("ncclAllReduce", std::string("all_reduce (") + reduce_op_name(op) + ") of " + t.describe(),
                  keep, [&](cudaStream_t s) {
                    return ncclAllReduce(keep.raw_data(), keep.raw_data(), static_cast<size_t>(keep.numel()),
                                         dt, rop, comm_, s);
                  });
  }

  template <typename Launch>
  std::shared_ptr<NcclWork> launch(const char* call, const std::string& what, const TensorBase& keep,
                                   Launch fn) {
    check_alive(call);
    cuda_call(cudaSetDevice(device_), "cudaSetDevice");
    auto compute = static_cast<cudaStream_t>(cuda::current_stream(device_));
    cudaEvent_t ready = nullptr;
    cuda_call(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    cudaError_t e = cudaEventRecord(ready, compute);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(stream_, ready, 0);
    cudaEventDestroy(ready);  // legal once recorded: the wait keeps what it needs
    cuda_call(e, "cudaStreamWaitEvent (NCCL after compute)");
    auto work = std::make_shared<NcclWork>(this, keep);
    // Watched from before the call: a call that blocks (connection set-up to a lost peer) times out too.
    std::list<Watched>::iterator entry;
    {
      std::lock_guard<std::mutex> lock(mu_);
      entry = pending_.insert(pending_.end(), Watched{nullptr, std::chrono::steady_clock::now(),
                                                      std::string(call) + " (" + what + ")"});
    }
    cudaEvent_t watched = nullptr;
    ncclResult_t r = fn(stream_);
    if (r == ncclSuccess) e = cudaEventRecord(work->done(), stream_);
    if (r == ncclSuccess && e == cudaSuccess) e = cudaEventCreateWithFlags(&watched, cudaEventDisableTiming);
    if (r == ncclSuccess && e == cudaSuccess) e = cudaEventRecord(watched, stream_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (r == ncclSuccess && e == cudaSuccess) {
        entry->event = watched;
      } else {
        if (watched) cudaEventDestroy(watched);
        pending_.erase(entry);
      }
    }
    nccl_call(r, call, " (", what, ")");
    cuda_call(e, "cudaEventRecord");
    cv_.notify_all();
    return work;
  }

  // The watchdog: every 100 ms, retire completed collectives; past the timeout or on an asynchronous
  // NCCL error, abort the communicator and the job.
  void watch() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->event == nullptr || cudaEventQuery(it->event) == cudaErrorNotReady) {
          ++it;
          continue;
        }
        cudaEventDestroy(it->event);
        it = pending_.erase(it);
      }
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      std::string failure;
      if (async != ncclSuccess && async != ncclInProgress) {
        failure = ::resnet::detail::concat("NCCL reported an asynchronous error on rank ", rank_, " of ",
                                           size_, ": ", ncclGetErrorString(async), last_error());
      } else if (!pending_.empty() && timeout_s_ > 0) {
        const double waited =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - pending_.front().start).count();
        if (waited > timeout_s_)
          failure = ::resnet::detail::concat(
              pending_.front().what, " on rank ", rank_, " of ", size_, " has not completed after ", waited,
              " s (RESNET_DIST_TIMEOUT_S=", timeout_s_, "): another rank has died or hung");
      }
      if (failure.empty()) continue;
      aborted_ = true;
      lock.unlock();  // the caller may be inside an NCCL call; nothing below needs the list
      std::fprintf(stderr, "resnet dist: %s; aborting the NCCL communicator and the job\n", failure.c_str());
      std::fflush(stderr);
      ncclCommAbort(comm_);
      MPI_Abort(MPI_COMM_WORLD, 3);
    }
    for (auto& w : pending_)
      if (w.event) cudaEventDestroy(w.event);
    pending_.clear();
  }

  void check_alive(const char* what) const {
    RESNET_CHECK(!aborted_, what, ": the NCCL communicator of rank ", rank_, " of ", size_,
                 " was aborted after a timeout or a peer's failure");
  }

  std::string last_error() const {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
    const char* s = comm_ ? ncclGetLastError(comm_) : nullptr;
    if (s != nullptr && *s != '\0') return std::string(" (") + s + ")";
#endif
    return "";
  }

  template <typename... Parts>
  void nccl_call(ncclResult_t r, const char* call, const Parts&... parts) const {
    if (r != ncclSuccess)
      RESNET_FAIL(call, parts..., " failed on rank ", rank_, " of ", size_, ": ", ncclGetErrorString(r),
                  last_error());
  }
  void cuda_call(cudaError_t e, const char* call) const {
    if (e != cudaSuccess)
      RESNET_FAIL(call, " failed on rank ", rank_, " of ", size_, " (cuda:", device_,
                  "): ", cudaGetErrorString(e));
  }

  static ncclDataType_t nccl_type(const TensorBase& t) {
    switch (t.dtype()) {
      case DType::F32:
        return ncclFloat32;
      case DType::F64:
        return ncclFloat64;
      case DType::F16:
        return ncclFloat16;
      case DType::BF16:
        return ncclBfloat16;
      default:
        RESNET_FAIL("NCCL: dtype ", dtype_name(t.dtype()), " is not supported");
    }
  }

  std::shared_ptr<MpiProcessGroup> mpi_;
  double timeout_s_ = 0;
  int rank_ = 0, size_ = 1, device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;

  std::thread watchdog_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::list<Watched> pending_;
  bool stop_ = false;
  std::atomic<bool> aborted_{false};
};

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
