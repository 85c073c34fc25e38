// The training data of one rank for one epoch: a loader over its share of every global batch of the
// epoch's permutation (train/shard.hpp), at the epoch's image size (TrainerOptions::image_sizes), starting
// at the batch a resume stands at; and the count of unreadable files over all ranks at the end of a run.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <memory>
#include <vector>

#include "resnet/data/loader.hpp"
#include "resnet/data/sample_rng.hpp"
#include "resnet/dist/process_group.hpp"
#include "resnet/train/options.hpp"
#include "resnet/train/shard.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

std::unique_ptr<data::DataLoader> epoch_loader(const std::shared_ptr<const data::Dataset>& set,
                                               const TrainerOptions& o, int64_t steps_per_epoch,
                                               int64_t epoch, int64_t first_batch,
                                               const std::shared_ptr<SkipLog>& skips, dist::ProcessGroup& pg);

int64_t count_skipped(const SkipLog& train, int64_t n_train, const SkipLog& test, int64_t n_test,
                      dist::ProcessGroup& pg);

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/epoch_data_inl.hpp"
#endif
