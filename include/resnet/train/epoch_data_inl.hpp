// The definitions of epoch_data.hpp: included by it in header-only mode, and compiled once into the library
// in the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/train/epoch_data.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

RESNET_INLINE std::unique_ptr<data::DataLoader> epoch_loader(const std::shared_ptr<const data::Dataset>& set,
                                                             const TrainerOptions& o, int64_t steps_per_epoch,
                                                             int64_t epoch, int64_t first_batch,
                                                             const std::shared_ptr<SkipLog>& skips,
                                                             dist::ProcessGroup& pg) {
  const int w = pg.size();
  std::vector<int64_t> order = data::epoch_permutation(set->size(), o.seed(), epoch);
  auto shard = std::make_shared<EpochShard>(set, shard_of(order, o.batch(), 0, steps_per_epoch, pg.rank(), w),
                                            o.seed(), epoch, skips, o.image_sizes().size_at(epoch));
  auto lo = data::LoaderOptions().batch_size(o.batch() / w).workers(o.workers()).prefetch(o.prefetch());
  lo.warn([skips](const std::string& m) { skips->warn(m); });
  auto loader = std::make_unique<data::DataLoader>(shard, lo);
  RESNET_CHECK(loader->num_batches() == steps_per_epoch, "Trainer: rank ", pg.rank(), " has ",
               loader->num_batches(), " batches in epoch ", epoch + 1, ", not ", steps_per_epoch);
  loader->start_epoch(0, first_batch);  // the shard already is this epoch's order
  return loader;
}

// Unreadable files over all ranks, each once (a collective).
RESNET_INLINE int64_t count_skipped(const SkipLog& train, int64_t n_train, const SkipLog& test,
                                    int64_t n_test, dist::ProcessGroup& pg) {
  std::vector<double> flags(static_cast<size_t>(n_train + n_test), 0.0);
  for (int64_t i : train.indices()) flags[static_cast<size_t>(i)] = 1;
  for (int64_t i : test.indices()) flags[static_cast<size_t>(n_train + i)] = 1;
  flags = pg.all_reduce_host(flags);
  int64_t n = 0;
  for (double f : flags) n += f > 0 ? 1 : 0;
  return n;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
