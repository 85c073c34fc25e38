// The definitions of options.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <algorithm>
#include <string>

#include "resnet/core/abi.hpp"
#include "resnet/train/options.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

RESNET_INLINE ScheduleFactory schedule(optim::ScheduleOptions options, double warmup_epochs) {
  return [=](int64_t total, int64_t per_epoch) {
    optim::ScheduleOptions o = options;
    o.total_steps(total);
    if (o.kind() != optim::ScheduleKind::OneCycle)
      o.warmup_steps(
          std::min<int64_t>(total - 1, static_cast<int64_t>(warmup_epochs * static_cast<double>(per_epoch))));
    return optim::make_schedule(o);
  };
}

RESNET_INLINE ScheduleFactory schedule(const std::string& name, double base_lr, double warmup_epochs) {
  return schedule(optim::ScheduleOptions().kind(optim::schedule_kind(name)).base_lr(base_lr), warmup_epochs);
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
