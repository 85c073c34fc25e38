// Contracts of the per-step bookkeeping ops (backend/cpu/step_state.hpp, src/cuda/step_state.cu).
#pragma once

#include "resnet/core/abi.hpp"

#include "resnet/backend/contract/common.hpp"
#include "resnet/backend/step_math.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace contract {
inline void count_up(const char* op, const TensorBase& counter) {
  RESNET_CHECK(counter.defined() && counter.dtype() == DType::I64 && counter.is_contiguous(), op,
               ": the counter must be a contiguous int64 tensor, got ",
               counter.defined() ? counter.describe() : "undefined");
}
inline void record_step_loss(const char* op, const TensorBase& loss, const TensorBase& stats,
                             const TensorBase* optim_state) {
  RESNET_CHECK(loss.defined() && loss.numel() == 1, op, ": the loss must hold one value, got ",
               loss.defined() ? loss.describe() : "undefined");
  RESNET_CHECK(stats.defined() && stats.dtype() == DType::F64 && stats.numel() == loss_stats::kSize &&
                   stats.is_contiguous() && stats.device() == loss.device(),
               op, ": the statistics must be ", int(loss_stats::kSize), " contiguous float64 values on ",
               loss.device().to_string(), ", got ", stats.defined() ? stats.describe() : "undefined");
  if (optim_state)
    RESNET_CHECK(optim_state->dtype() == DType::F64 && optim_state->numel() == optim_state::kSize &&
                     optim_state->is_contiguous() && optim_state->device() == loss.device(),
                 op, ": the optimizer's step state must be ", int(optim_state::kSize), " float64 values on ",
                 loss.device().to_string(), ", got ", optim_state->describe());
}
inline void bn_running_invstd(const char* op, const TensorBase& var, const TensorBase& invstd) {
  RESNET_CHECK(var.defined() && invstd.defined() && var.numel() == invstd.numel() && var.is_contiguous() &&
                   invstd.is_contiguous() && var.device() == invstd.device() && var.dtype() == invstd.dtype(),
               op, ": running_var ", var.defined() ? var.describe() : "undefined", " and invstd ",
               invstd.defined() ? invstd.describe() : "undefined", " must match");
}
}  // namespace contract
}  // namespace RESNET_ABI
}  // namespace resnet
