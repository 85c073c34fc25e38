// The definitions of shard.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/train/shard.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

RESNET_INLINE std::vector<int64_t> shard_of(const std::vector<int64_t>& order, int64_t batch, int64_t first,
                                            int64_t last, int rank, int world) {
  const int64_t n = static_cast<int64_t>(order.size());
  std::vector<int64_t> out;
  for (int64_t j = first; j < last; ++j)
    for (int64_t p = j * batch + rank; p < std::min(n, (j + 1) * batch); p += world)
      out.push_back(order[static_cast<size_t>(p)]);
  return out;
}

RESNET_INLINE void SkipLog::warn(const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (messages_.insert(message).second) std::fprintf(stderr, "warning: %s\n", message.c_str());
}

RESNET_INLINE void SkipLog::record(int64_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  indices_.insert(index);
}

RESNET_INLINE std::set<int64_t> SkipLog::indices() const {
  std::lock_guard<std::mutex> lock(mu_);
  return indices_;
}

RESNET_INLINE EpochShard::EpochShard(std::shared_ptr<const data::Dataset> base, std::vector<int64_t> indices,
                                     uint64_t seed, int64_t epoch, std::shared_ptr<SkipLog> skips,
                                     int image_size)
    : base_(std::move(base)),
      indices_(std::move(indices)),
      seed_(seed),
      epoch_(epoch),
      skips_(std::move(skips)),
      image_size_(image_size) {
  RESNET_CHECK(base_ != nullptr, "EpochShard: null dataset");
  RESNET_CHECK(image_size_ >= 0, "EpochShard: negative image size ", image_size_);
}

RESNET_INLINE Shape EpochShard::sample_shape() const {
  const Shape s = base_->sample_shape();
  if (image_size_ == 0) return s;
  RESNET_CHECK(s.rank() == 3, "EpochShard: resizing needs samples [C, H, W], the dataset gives ",
               s.to_string());
  return Shape{s.dims()[0], image_size_, image_size_};
}

RESNET_INLINE int32_t EpochShard::label(int64_t i) const { return base_->label(at(i)); }

RESNET_INLINE std::string EpochShard::name(int64_t i) const { return base_->name(at(i)); }

RESNET_INLINE void EpochShard::load(int64_t i, data::SampleRng&, float* out) const {
  data::SampleRng rng(data::sample_seed(seed_, epoch_, at(i)));  // the sample's own stream, not the view's
  try {
    if (image_size_ > 0)
      base_->load_resized(at(i), image_size_, rng, out);
    else
      base_->load(at(i), rng, out);
  } catch (const Error&) {
    if (skips_) skips_->record(at(i));
    throw;  // the loader leaves the sample out and warns
  }
}

RESNET_INLINE int64_t EpochShard::at(int64_t i) const {
  RESNET_CHECK(i >= 0 && i < size(), "EpochShard: index ", i, " out of range [0, ", size(), ")");
  return indices_[static_cast<size_t>(i)];
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
