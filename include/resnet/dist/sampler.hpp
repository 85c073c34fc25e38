// Sharded data for data-parallel training. No MPI needed.
//
// DistributedSampler: every rank draws the same seeded permutation of the dataset each epoch
// (data::epoch_permutation(n, seed, epoch), the single-process DataLoader's own shuffle, so a world of one
// sees exactly what a plain shuffled loader sees) and takes a disjoint share of it.
// - Shares are strided: rank r takes positions r, r + W, r + 2W, ... of the epoch's order. With a local
//   batch b = B / W, local batch j of every rank together is exactly positions [j B, (j + 1) B) of the
//   order, whatever W is: global batch j means the same samples at any world size, so a run saved after k
//   global batches resumes with another world size by skipping the first k (first_batch = k).
// - The tail rule (one, stated): Pad (the default, as PyTorch's DistributedSampler): the order is extended
//   by wrapping around to its start until it divides by W, so every rank gets ceil(n / W) indices and takes
//   the same number of steps (no rank waits for a peer that has stopped); W * ceil(n / W) - n samples are
//   seen twice per epoch. Drop: the order is cut to floor(n / W) * W, and the last n mod W samples of each
//   epoch's permutation (different ones every epoch when shuffling) are not seen that epoch.
//
// eval_shard: the indices of sharded evaluation. Every sample exactly once across ranks (no padding, so
// shares differ by at most one). A rank with fewer samples may run one batch fewer: collectives must not
// run per batch; sum the counts once after the loop (ProcessGroup::all_reduce_host).
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdint>
#include <numeric>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/data/sample_rng.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

enum class TailRule { Pad, Drop };

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, int world_size, int rank, uint64_t seed = 0, bool shuffle = true,
                     TailRule tail = TailRule::Pad)
      : n_(dataset_size), world_(world_size), rank_(rank), seed_(seed), shuffle_(shuffle), tail_(tail) {
    RESNET_CHECK(world_ >= 1, "DistributedSampler: world size must be at least 1, got ", world_);
    RESNET_CHECK(rank_ >= 0 && rank_ < world_, "DistributedSampler: rank ", rank_,
                 " out of range for a world of ", world_);
    RESNET_CHECK(n_ > 0, "DistributedSampler: the dataset is empty");
    RESNET_CHECK(tail_ == TailRule::Pad || n_ >= world_, "DistributedSampler: dropping the tail of ", n_,
                 " samples over ", world_, " ranks leaves no sample for some rank (use TailRule::Pad)");
  }

  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }

  // Indices per rank and per epoch across all ranks.
  int64_t num_samples() const { return tail_ == TailRule::Pad ? (n_ + world_ - 1) / world_ : n_ / world_; }
  int64_t total_size() const { return num_samples() * world_; }

  // The epoch's order across ranks (total_size() positions: the permutation, wrapped or cut).
  std::vector<int64_t> global_order() const {
    std::vector<int64_t> perm;
    if (shuffle_) {
      perm = data::epoch_permutation(n_, seed_, epoch_);
    } else {
      perm.resize(static_cast<size_t>(n_));
      std::iota(perm.begin(), perm.end(), int64_t(0));
    }
    std::vector<int64_t> order(static_cast<size_t>(total_size()));
    for (size_t k = 0; k < order.size(); ++k) order[k] = perm[k % perm.size()];
    return order;
  }

  // This rank's share of the epoch, in the order it trains on it (positions rank, rank + W, ...).
  std::vector<int64_t> indices() const {
    const std::vector<int64_t> order = global_order();
    std::vector<int64_t> mine;
    mine.reserve(static_cast<size_t>(num_samples()));
    for (size_t k = static_cast<size_t>(rank_); k < order.size(); k += static_cast<size_t>(world_))
      mine.push_back(order[k]);
    return mine;
  }

  int world_size() const { return world_; }
  int rank() const { return rank_; }
  TailRule tail() const { return tail_; }

 private:
  int64_t n_;
  int world_, rank_;
  uint64_t seed_;
  bool shuffle_;
  TailRule tail_;
  int64_t epoch_ = 0;
};

// The test samples rank `rank` evaluates: rank, rank + W, ... below n (each sample on exactly one rank).
inline std::vector<int64_t> eval_shard(int64_t dataset_size, int world_size, int rank) {
  RESNET_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "eval_shard: rank ", rank,
               " out of range for a world of ", world_size);
  RESNET_CHECK(dataset_size >= 0, "eval_shard: negative dataset size ", dataset_size);
  std::vector<int64_t> mine;
  for (int64_t i = rank; i < dataset_size; i += world_size) mine.push_back(i);
  return mine;
}

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
