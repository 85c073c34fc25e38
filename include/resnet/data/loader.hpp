// DataLoader: worker threads prepare the next batches (decode + augment) while the current one trains.
//
// - Order: an epoch visits the samples in order, or in a permutation fixed by (seed, epoch) when shuffling;
//   each sample's augmentation is seeded by (seed, epoch, index). Batches are handed out strictly in order,
//   so the data a run sees does not depend on the number of workers or on thread timing, and a run resumed
//   at batch k of epoch e sees what an uninterrupted one would.
// - Bounded: at most workers x prefetch batches are prepared ahead of the consumer.
// - Errors: a sample that throws resnet::Error (unreadable or corrupt file) is left out of its batch, with
// one
//   warning per file; any other exception in a worker is rethrown by next() in the consumer thread.
// - Shutdown: the destructor stops and joins the workers; start_epoch() abandons the previous epoch's work.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/arg.hpp"

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "resnet/core/tensor.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/sample_rng.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

struct LoaderOptions {
  RESNET_ARG(int64_t, batch_size) = 32;
  RESNET_ARG(bool, shuffle) = false;
  RESNET_ARG(bool, drop_last) = false;  // drop the last, smaller batch of an epoch
  RESNET_ARG(int, workers) = 1;   // threads preparing batches; 0 prepares each batch in the calling thread
  RESNET_ARG(int, prefetch) = 2;  // batches prepared ahead per worker
  RESNET_ARG(uint64_t, seed) = 0;
  // Called once per unreadable file (from a worker thread, serialised); default: a line on stderr.
  RESNET_ARG(std::function<void(const std::string&)>, warn);
};

struct Batch {
  Tensor<float> images;         // [n, C, H, W]
  std::vector<int32_t> labels;  // n labels
  int64_t index = 0;            // position of the batch in its epoch
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options)
      : dataset_(std::move(dataset)), opts_(options) {
    RESNET_CHECK(dataset_ != nullptr, "DataLoader: null dataset");
    RESNET_CHECK(opts_.batch_size() > 0, "DataLoader: batch size must be positive, got ", opts_.batch_size());
    RESNET_CHECK(opts_.workers() >= 0 && opts_.workers() <= 256,
                 "DataLoader: workers must be in [0, 256], got ", opts_.workers());
    RESNET_CHECK(opts_.prefetch() >= 1, "DataLoader: prefetch must be at least 1, got ", opts_.prefetch());
    RESNET_CHECK(dataset_->size() > 0, "DataLoader: the dataset is empty");
    if (!opts_.warn())
      opts_.warn([](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); });
    for (int i = 0; i < opts_.workers(); ++i) threads_.emplace_back([this] { worker_loop(); });
  }
  ~DataLoader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t num_batches() const { return num_batches(dataset_->size()); }
  // Batches in an epoch of `samples` samples (a DistributedSampler's share: dist/sampler.hpp).
  int64_t num_batches(int64_t samples) const {
    const int64_t b = opts_.batch_size();
    return opts_.drop_last() ? samples / b : (samples + b - 1) / b;
  }
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return opts_; }

  // Begins epoch `epoch` at batch `first_batch` (a resumed run skips the batches it already trained on).
  void start_epoch(int64_t epoch, int64_t first_batch = 0) {
    std::vector<int64_t> order;
    if (opts_.shuffle()) {
      order = epoch_permutation(dataset_->size(), opts_.seed(), epoch);
    } else {
      order.resize(static_cast<size_t>(dataset_->size()));
      for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    }
    start_epoch_over(epoch, std::move(order), first_batch);
  }

  // Begins epoch `epoch` over exactly `order` (dataset indices, repeats allowed), e.g. this rank's share
  // DistributedSampler::indices() or dist::eval_shard(); `shuffle` does not apply. Augmentation stays
  // seeded by (seed, epoch, index), so a sample looks the same whichever rank loads it.
  void start_epoch_over(int64_t epoch, std::vector<int64_t> order, int64_t first_batch = 0) {
    const int64_t n = dataset_->size(), batches = num_batches(static_cast<int64_t>(order.size()));
    for (int64_t i : order)
      RESNET_CHECK(i >= 0 && i < n, "DataLoader: index ", i,
                   " of the epoch's order is out of range for a dataset of ", n);
    RESNET_CHECK(first_batch >= 0 && first_batch <= batches, "DataLoader: first batch ", first_batch,
                 " out of range [0, ", batches, "]");
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++generation_;
      ready_.clear();
      order_ = std::move(order);
      epoch_ = epoch;
      next_claim_ = next_deliver_ = first_batch;
      end_ = batches;
      started_ = true;
    }
    work_cv_.notify_all();
  }

  // One epoch as a range: `for (const data::Batch& b : loader.epoch(e)) ...` is start_epoch(e) and then
  // next() until it returns false. The loader must outlive the loop; the range is read once.
  class EpochRange {
   public:
    struct End {};
    class Iterator {
     public:
      explicit Iterator(DataLoader* loader) : loader_(loader) { ++*this; }
      Batch& operator*() { return batch_; }
      Batch* operator->() { return &batch_; }
      Iterator& operator++() {
        done_ = !loader_->next(batch_);
        return *this;
      }
      bool operator!=(End) const { return !done_; }
      bool operator==(End) const { return done_; }

     private:
      DataLoader* loader_;
      Batch batch_;
      bool done_ = false;
    };
    EpochRange(DataLoader* loader, int64_t epoch, int64_t first_batch) : loader_(loader) {
      loader_->start_epoch(epoch, first_batch);
    }
    Iterator begin() { return Iterator(loader_); }
    End end() const { return {}; }

   private:
    DataLoader* loader_;
  };
  EpochRange epoch(int64_t epoch, int64_t first_batch = 0) { return EpochRange(this, epoch, first_batch); }

  // The next non-empty batch of the epoch; false when the epoch is over.
  bool next(Batch& out) {
    for (;;) {
      Slot slot;
      {
        std::unique_lock<std::mutex> lock(mu_);
        RESNET_CHECK(started_, "DataLoader::next called before start_epoch");
        if (next_deliver_ >= end_) return false;
        if (threads_.empty()) {
          const int64_t b = next_deliver_++;
          std::vector<int64_t> idx = batch_indices(b);
          const int64_t epoch = epoch_;
          lock.unlock();
          slot.batch = build(epoch, b, idx);
        } else {
          ready_cv_.wait(lock, [&] { return ready_.count(next_deliver_) != 0; });
          auto it = ready_.find(next_deliver_);
          slot = std::move(it->second);
          ready_.erase(it);
          ++next_deliver_;
          work_cv_.notify_all();
        }
      }
      if (slot.error) std::rethrow_exception(slot.error);
      if (slot.batch.size() == 0) continue;  // every file of this batch was unreadable
      out = std::move(slot.batch);
      return true;
    }
  }

  // Files skipped as unreadable so far (each counted once, whatever the epochs).
  int64_t skipped_count() const {
    std::lock_guard<std::mutex> lock(warn_mu_);
    return static_cast<int64_t>(skipped_.size());
  }
  std::vector<std::string> skipped_files() const {
    std::lock_guard<std::mutex> lock(warn_mu_);
    std::vector<std::string> out;
    for (int64_t i : skipped_) out.push_back(dataset_->name(i));
    return out;
  }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };

  // Called with mu_ held.
  std::vector<int64_t> batch_indices(int64_t b) const {
    const int64_t n = static_cast<int64_t>(order_.size());
    const int64_t lo = b * opts_.batch_size(), hi = std::min(n, lo + opts_.batch_size());
    return std::vector<int64_t>(order_.begin() + lo, order_.begin() + hi);
  }

  Batch build(int64_t epoch, int64_t b, const std::vector<int64_t>& indices) {
    const Shape per = dataset_->sample_shape();
    const size_t per_n = static_cast<size_t>(per.numel());
    std::vector<int64_t> dims{static_cast<int64_t>(indices.size())};
    dims.insert(dims.end(), per.dims().begin(), per.dims().end());
    Batch batch;
    batch.index = b;
    batch.images = Tensor<float>::empty(Shape(dims));
    float* dst = batch.images.data();
    for (int64_t i : indices) {
      SampleRng rng(sample_seed(opts_.seed(), epoch, i));
      try {
        dataset_->load(i, rng, dst + batch.labels.size() * per_n);
      } catch (const Error& e) {
        skip(i, e.what());
        continue;
      }
      batch.labels.push_back(dataset_->label(i));
    }
    if (batch.labels.size() < indices.size()) {  // compact: a batch of the samples that were read
      dims[0] = batch.size();
      Tensor<float> kept = Tensor<float>::empty(Shape(dims));
      if (kept.numel() > 0) std::memcpy(kept.data(), batch.images.data(), kept.nbytes());
      batch.images = kept;
    }
    return batch;
  }

  void skip(int64_t index, const std::string& why) {
    std::lock_guard<std::mutex> lock(warn_mu_);
    if (!skipped_.insert(index).second) return;
    opts_.warn()("skipping unreadable image " + dataset_->name(index) + ": " + why);
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t ahead = static_cast<int64_t>(opts_.workers()) * opts_.prefetch();
    for (;;) {
      work_cv_.wait(lock,
                    [&] { return stop_ || (next_claim_ < end_ && next_claim_ < next_deliver_ + ahead); });
      if (stop_) return;
      const int64_t b = next_claim_++;
      const uint64_t gen = generation_;
      const int64_t epoch = epoch_;
      std::vector<int64_t> idx = batch_indices(b);
      lock.unlock();
      Slot slot;
      try {
        slot.batch = build(epoch, b, idx);
      } catch (...) {
        slot.error = std::current_exception();
      }
      lock.lock();
      if (gen == generation_) {
        ready_[b] = std::move(slot);
        ready_cv_.notify_all();
      }
    }
  }

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions opts_;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  bool stop_ = false, started_ = false;
  uint64_t generation_ = 0;
  int64_t epoch_ = 0, next_claim_ = 0, next_deliver_ = 0, end_ = 0;
  std::vector<int64_t> order_;
  std::map<int64_t, Slot> ready_;

  mutable std::mutex warn_mu_;
  std::set<int64_t> skipped_;
};

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
