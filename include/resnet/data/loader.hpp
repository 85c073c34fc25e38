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

#include "resnet/core/compiled_mode.hpp"
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
  DataLoader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t num_batches() const { return num_batches(dataset_->size()); }
  // Batches in an epoch of `samples` samples (a DistributedSampler's share: dist/sampler.hpp).
  int64_t num_batches(int64_t samples) const;
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return opts_; }

  // Begins epoch `epoch` at batch `first_batch` (a resumed run skips the batches it already trained on).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);

  // Begins epoch `epoch` over exactly `order` (dataset indices, repeats allowed), e.g. this rank's share
  // DistributedSampler::indices() or dist::eval_shard(); `shuffle` does not apply. Augmentation stays
  // seeded by (seed, epoch, index), so a sample looks the same whichever rank loads it.
  void start_epoch_over(int64_t epoch, std::vector<int64_t> order, int64_t first_batch = 0);

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
  bool next(Batch& out);

  // Files skipped as unreadable so far (each counted once, whatever the epochs).
  int64_t skipped_count() const;
  std::vector<std::string> skipped_files() const;

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };

  // Called with mu_ held.
  std::vector<int64_t> batch_indices(int64_t b) const;

  Batch build(int64_t epoch, int64_t b, const std::vector<int64_t>& indices);

  void skip(int64_t index, const std::string& why);

  void worker_loop();

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

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/data/loader_inl.hpp"
#endif
