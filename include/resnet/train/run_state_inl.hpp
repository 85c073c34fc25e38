// The definitions of run_state.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/train/run_state.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

namespace detail {
RESNET_INLINE double extra_number(const io::TrainingState& s, const std::string& key, double fallback,
                                  const std::string& file) {
  auto it = s.extra.find(key);
  if (it == s.extra.end()) return fallback;
  double v = 0;
  RESNET_CHECK(io::detail::parse_double(it->second, v), "checkpoint '", file, "': metadata '", key, "' = '",
               it->second, "' is not a number");
  return v;
}
}  // namespace detail

RESNET_INLINE io::TrainingState checkpoint_state(const TrainerOptions& o, const RunState& r,
                                                 int64_t epochs_done, double lr, int64_t n_train,
                                                 int world_size) {
  io::TrainingState s;
  s.arch = o.arch();
  s.epoch = epochs_done;
  s.step = r.step;
  s.lr = lr;
  s.schedule = o.schedule_name();
  s.seed = o.seed();
  s.class_names = o.class_names();
  s.extra = o.metadata();
  s.extra["train_images"] = std::to_string(n_train);
  s.extra["global_batch"] = std::to_string(o.batch());
  s.extra["world_size"] = std::to_string(world_size);  // informational: any world size may resume
  s.extra["run_epochs"] = std::to_string(o.epochs());  // the length its schedule is laid over
  s.extra["best_acc"] = io::detail::format_double(r.best_acc);
  s.extra["best_epoch"] = std::to_string(r.best_epoch);
  return s;
}

RESNET_INLINE void add_position(io::TrainingState& s, const TrainerOptions& o, const RunState& r,
                                double seconds) {
  s.extra["samples_in_epoch"] = std::to_string(r.position * o.batch());
  s.extra["epoch_loss_sum"] = io::detail::format_double(r.epoch_loss_sum);
  s.extra["epoch_batches"] = std::to_string(r.epoch_batches);
  s.extra["window_sum"] = io::detail::format_double(r.window_sum);
  s.extra["window_count"] = std::to_string(r.window_count);
  s.extra["seconds"] = io::detail::format_double(seconds);
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
