// A test-only ProcessGroup whose ranks are threads of one process: the arithmetic of an N-rank world
// (sums in rank order, broadcast, all-gather) without MPI, so data-parallel logic is tested in the normal
// suite. A barrier that waits more than 60 s throws instead of hanging the test.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "resnet/dist/process_group.hpp"

namespace testing {

class ThreadWorld {
 public:
  explicit ThreadWorld(int n) : n_(n), slots_(static_cast<size_t>(n), nullptr) {}
  int size() const { return n_; }
  void barrier(int rank) {
    std::unique_lock<std::mutex> lock(m_);
    const uint64_t g = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    RESNET_CHECK(cv_.wait_for(lock, std::chrono::seconds(60), [&] { return generation_ != g; }),
                 "ThreadWorld: rank ", rank,
                 " waited 60 s at a barrier (a peer failed or called something else)");
  }
  const void*& slot(int r) { return slots_[static_cast<size_t>(r)]; }

 private:
  int n_;
  std::mutex m_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  std::vector<const void*> slots_;
};

class ThreadGroup : public resnet::dist::ProcessGroup {
 public:
  ThreadGroup(std::shared_ptr<ThreadWorld> world, int rank) : world_(std::move(world)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return world_->size(); }
  std::string backend_name() const override { return "threads"; }
  resnet::Device device() const override { return resnet::Device::cpu(); }
  int collectives() const { return calls_; }

 protected:
  void do_all_reduce(resnet::TensorBase& t, resnet::dist::ReduceOp op) override {
    ++calls_;
    if (t.dtype() == resnet::DType::F64)
      reduce<double>(t, op);
    else if (t.dtype() == resnet::DType::BF16)
      reduce_bf16(t, op);
    else
      reduce<float>(t, op);
  }
  void do_broadcast(resnet::TensorBase& t, int root) override {
    ++calls_;
    world_->slot(rank_) = t.raw_data();
    world_->barrier(rank_);
    if (rank_ != root) std::memcpy(t.raw_data(), world_->slot(root), t.nbytes());
    world_->barrier(rank_);
  }
  void do_all_gather(const resnet::TensorBase& in, resnet::TensorBase& out) override {
    ++calls_;
    world_->slot(rank_) = in.raw_data();
    world_->barrier(rank_);
    for (int r = 0; r < size(); ++r)
      std::memcpy(static_cast<char*>(out.raw_data()) + static_cast<size_t>(r) * in.nbytes(), world_->slot(r),
                  in.nbytes());
    world_->barrier(rank_);
  }
  void do_barrier() override { world_->barrier(rank_); }

 private:
  template <typename V>
  void reduce(resnet::TensorBase& t, resnet::dist::ReduceOp op) {
    const size_t n = static_cast<size_t>(t.numel());
    world_->slot(rank_) = t.raw_data();
    world_->barrier(rank_);
    std::vector<V> acc(n, V(0));
    for (int r = 0; r < size(); ++r) {  // rank order: every rank gets the same bits
      const V* p = static_cast<const V*>(world_->slot(r));
      for (size_t i = 0; i < n; ++i) acc[i] += p[i];
    }
    if (op == resnet::dist::ReduceOp::Average)
      for (auto& v : acc) v /= static_cast<V>(size());
    world_->barrier(rank_);
    std::memcpy(t.raw_data(), acc.data(), n * sizeof(V));
  }

  // As the MPI group's bfloat16 sum: rank by rank in float, rounded after each addition.
  void reduce_bf16(resnet::TensorBase& t, resnet::dist::ReduceOp op) {
    using resnet::bf16_t;
    const size_t n = static_cast<size_t>(t.numel());
    world_->slot(rank_) = t.raw_data();
    world_->barrier(rank_);
    std::vector<uint16_t> acc(static_cast<const uint16_t*>(world_->slot(0)),
                              static_cast<const uint16_t*>(world_->slot(0)) + n);
    for (int r = 1; r < size(); ++r) {
      const uint16_t* p = static_cast<const uint16_t*>(world_->slot(r));
      for (size_t i = 0; i < n; ++i)
        acc[i] = bf16_t::from_float(bf16_t::to_float(p[i]) + bf16_t::to_float(acc[i]));
    }
    if (op == resnet::dist::ReduceOp::Average)
      for (auto& v : acc) v = bf16_t::from_float(bf16_t::to_float(v) / static_cast<float>(size()));
    world_->barrier(rank_);
    std::memcpy(t.raw_data(), acc.data(), n * sizeof(uint16_t));
  }

  std::shared_ptr<ThreadWorld> world_;
  int rank_;
  int calls_ = 0;
};

// Runs fn(group) on `n` threads, one rank each; rethrows the first failure after all have finished.
inline void run_ranks(int n, const std::function<void(std::shared_ptr<resnet::dist::ProcessGroup>)>& fn) {
  auto world = std::make_shared<ThreadWorld>(n);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(std::make_shared<ThreadGroup>(world, r));
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace testing
