// One rank's share of an epoch. Global batch j is positions [j*B, (j+1)*B) of the epoch's order (the
// permutation a one-process DataLoader would use); rank r of W takes positions j*B + r, j*B + r + W, ...
// (strided, as dist's DistributedSampler), so B/W samples a step. The union over ranks is the global batch
// at any world size: a run resumed with another number of ranks trains on the same batches. A sample's
// augmentation is seeded by (seed, epoch, dataset index), exactly as DataLoader seeds it, so one rank
// reproduces a plain DataLoader run bit for bit.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/sample_rng.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// Global batches in an epoch of n samples at global batch `batch` over `world` ranks. With drop_last the
// partial tail is dropped; without, it is kept when it gives every rank at least one sample.
inline int64_t global_batches(int64_t n, int64_t batch, int world, bool drop_last) {
  if (drop_last) return n / batch;
  const int64_t full = n / batch, tail = n - full * batch;
  return full + (tail >= world ? 1 : 0);
}

// Positions (into `order`) of rank `rank`'s samples for global batches [first, last).
std::vector<int64_t> shard_of(const std::vector<int64_t>& order, int64_t batch, int64_t first, int64_t last,
                              int rank, int world);

// Unreadable samples of one dataset over a whole run: each warning printed once (loaders are made per
// epoch, each would warn again), and the dataset indices, so ranks can count the union.
class SkipLog {
 public:
  void warn(const std::string& message);
  void record(int64_t index);
  std::set<int64_t> indices() const;

 private:
  mutable std::mutex mu_;
  std::set<std::string> messages_;
  std::set<int64_t> indices_;
};

// A view of `base` holding the listed samples in order, augmented as epoch `epoch` of a run seeded `seed`,
// at image size `image_size` (Dataset::load_resized) when it is positive, else at the base's own.
class EpochShard : public data::Dataset {
 public:
  EpochShard(std::shared_ptr<const data::Dataset> base, std::vector<int64_t> indices, uint64_t seed,
             int64_t epoch, std::shared_ptr<SkipLog> skips = nullptr, int image_size = 0);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Shape sample_shape() const override;
  int32_t label(int64_t i) const override;
  std::string name(int64_t i) const override;
  void load(int64_t i, data::SampleRng&, float* out) const override;
  int64_t base_index(int64_t i) const { return at(i); }

 private:
  int64_t at(int64_t i) const;
  std::shared_ptr<const data::Dataset> base_;
  std::vector<int64_t> indices_;
  uint64_t seed_;
  int64_t epoch_;
  std::shared_ptr<SkipLog> skips_;
  int image_size_;
};

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/shard_inl.hpp"
#endif
