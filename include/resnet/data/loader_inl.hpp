// The definitions of loader.hpp's DataLoader: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/data/loader.cpp). Not for direct inclusion.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/data/loader.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace data {

RESNET_INLINE DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, const LoaderOptions& options)
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

RESNET_INLINE DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

RESNET_INLINE int64_t DataLoader::num_batches(int64_t samples) const {
  const int64_t b = opts_.batch_size();
  return opts_.drop_last() ? samples / b : (samples + b - 1) / b;
}

RESNET_INLINE void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  std::vector<int64_t> order;
  if (opts_.shuffle()) {
    order = epoch_permutation(dataset_->size(), opts_.seed(), epoch);
  } else {
    order.resize(static_cast<size_t>(dataset_->size()));
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  }
  start_epoch_over(epoch, std::move(order), first_batch);
}

RESNET_INLINE void DataLoader::start_epoch_over(int64_t epoch, std::vector<int64_t> order,
                                                int64_t first_batch) {
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

RESNET_INLINE bool DataLoader::next(Batch& out) {
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

RESNET_INLINE int64_t DataLoader::skipped_count() const {
  std::lock_guard<std::mutex> lock(warn_mu_);
  return static_cast<int64_t>(skipped_.size());
}

RESNET_INLINE std::vector<std::string> DataLoader::skipped_files() const {
  std::lock_guard<std::mutex> lock(warn_mu_);
  std::vector<std::string> out;
  for (int64_t i : skipped_) out.push_back(dataset_->name(i));
  return out;
}

RESNET_INLINE std::vector<int64_t> DataLoader::batch_indices(int64_t b) const {
  const int64_t n = static_cast<int64_t>(order_.size());
  const int64_t lo = b * opts_.batch_size(), hi = std::min(n, lo + opts_.batch_size());
  return std::vector<int64_t>(order_.begin() + lo, order_.begin() + hi);
}

RESNET_INLINE Batch DataLoader::build(int64_t epoch, int64_t b, const std::vector<int64_t>& indices) {
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

RESNET_INLINE void DataLoader::skip(int64_t index, const std::string& why) {
  std::lock_guard<std::mutex> lock(warn_mu_);
  if (!skipped_.insert(index).second) return;
  opts_.warn()("skipping unreadable image " + dataset_->name(index) + ": " + why);
}

RESNET_INLINE void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  const int64_t ahead = static_cast<int64_t>(opts_.workers()) * opts_.prefetch();
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || (next_claim_ < end_ && next_claim_ < next_deliver_ + ahead); });
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

}  // namespace data
}  // namespace RESNET_ABI
}  // namespace resnet
