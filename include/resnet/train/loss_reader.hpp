// Reading the device's loss statistics (backend/step_math.hpp) on the host: one host wait, agreed over the
// ranks (a collective, at the same step on every rank). The sums since the last read become the host's, or
// the first non-finite step of any rank is named. The sums of W > 1 ranks are summed in another order than
// a per-step exchange would (last bits); with one rank they are the very same additions.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include "resnet/backend/async_copy.hpp"
#include "resnet/backend/step_math.hpp"
#include "resnet/dist/process_group.hpp"
#include "resnet/train/run_state.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

// A step recorded on the device but not yet read: where to say a non-finite loss happened.
struct PendingStep {
  int64_t step, epoch, batch;
};

// Empty when every recorded loss was finite (r's sums and `last_loss` updated, `pending` cleared); else the
// message naming the first bad step, with r.step set back to the step before it (that step and every later
// one were skipped on the device).
std::string read_step_losses(Tensor<double>& stats, dist::ProcessGroup& pg, std::vector<PendingStep>& pending,
                             RunState& r, double& last_loss);

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/loss_reader_inl.hpp"
#endif
