// The definitions of loss_reader.hpp: included by it in header-only mode, and compiled once into the library
// in the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/train/loss_reader.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

RESNET_INLINE std::string read_step_losses(Tensor<double>& stats, dist::ProcessGroup& pg,
                                           std::vector<PendingStep>& pending, RunState& r,
                                           double& last_loss) {
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
