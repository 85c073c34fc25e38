// Reading the device's loss statistics (backend/step_math.hpp) on the host: one host wait, agreed over the
// ranks (a collective, at the same step on every rank). The sums since the last read become the host's, or
// the first non-finite step of any rank is named. The sums of W > 1 ranks are summed in another order than
// a per-step exchange would (last bits); with one rank they are the very same additions.
#pragma once

#include "resnet/core/abi.hpp"

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
inline std::string read_step_losses(Tensor<double>& stats, dist::ProcessGroup& pg,
                                    std::vector<PendingStep>& pending, RunState& r, double& last_loss) {
  const std::vector<double> s = stats.to_vector();
  const int w = pg.size(), rank = pg.rank();
  std::vector<double> m(static_cast<size_t>(3 + 2 * w), 0.0);
  m[0] = s[loss_stats::kWindowSum];
  m[1] = s[loss_stats::kEpochSum];
  m[2] = s[loss_stats::kLastLoss];
  m[static_cast<size_t>(3 + 2 * rank)] = s[loss_stats::kBadStep];
  m[static_cast<size_t>(4 + 2 * rank)] = s[loss_stats::kBadKind];
  if (w > 1) m = pg.all_reduce_host(m);
  double bad = 0;
  for (int k = 0; k < w; ++k) {
    const double b = m[static_cast<size_t>(3 + 2 * k)];
    if (b > 0 && (bad == 0 || b < bad)) bad = b;
  }
  if (bad > 0) {
    // Infinite only where this rank's own loss was, else NaN, as a per-step exchange of the losses would say.
    const bool own = s[loss_stats::kBadStep] == bad;
    const bool inf = own && s[loss_stats::kBadKind] >= 2;
    const int64_t at = static_cast<int64_t>(bad);
    int64_t e = r.epoch_now, bi = -1;
    for (const PendingStep& p : pending)
      if (p.step == at) {
        e = p.epoch;
        bi = p.batch;
      }
    r.step = at - 1;
    return "the loss is " + std::string(inf ? "infinite" : "NaN") + " at epoch " + std::to_string(e + 1) +
           ", batch " + std::to_string(bi + 1) + " (step " + std::to_string(at) + ")";
  }
  r.window_sum = m[0];
  r.epoch_loss_sum = m[1];
  last_loss = m[2];
  pending.clear();
  if (w > 1) {  // rank 0's device holds the global sums, the others' none, so the next read sums again
    const double back[2] = {pg.rank() == 0 ? r.window_sum : 0.0, pg.rank() == 0 ? r.epoch_loss_sum : 0.0};
    write_async(stats, loss_stats::kWindowSum, back, 2);
  }
  return {};
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
