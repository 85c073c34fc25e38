// Decisions every rank must take together, made from one all_reduce_host so that no rank is left waiting
// in a collective its peers skipped: whether each rank has a batch and the same one, the global loss, and
// the stop flags (Ctrl-C, a callback). In a world of one these are plain arithmetic.
#pragma once

#include "resnet/core/abi.hpp"
#include "resnet/core/compiled_mode.hpp"

#include <cmath>
#include <exception>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/dist/process_group.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

struct StepVote {
  bool has_batch = false;
  int64_t batch_index = 0;
  double loss = 0;  // this rank's mean loss over its samples
  int64_t samples = 0;
  bool interrupt = false, stop = false;
};

struct StepAgreement {
  bool any_batch = false;  // false: the epoch is over on every rank
  double loss = 0;         // the global batch's mean loss (NaN if any rank's was not finite)
  int64_t samples = 0;     // images in the global batch
  bool interrupt = false, stop = false;
};

StepAgreement agree_step(dist::ProcessGroup& pg, const StepVote& v);

// Before a forward pass that communicates (SyncBatchNorm): whether every rank has a batch, the same one
// (throws on every rank if not), or none has.
bool agree_batch(dist::ProcessGroup& pg, bool has_batch, int64_t batch_index);

// Whether any rank asks for `flag` (epoch ends, where no loss is exchanged).
inline bool any_rank(dist::ProcessGroup& pg, bool flag) { return pg.all_reduce_host(flag ? 1.0 : 0.0) > 0; }

// Runs `setup` on every rank; if it throws on any, it throws on all (the failing ranks their own error, the
// others one naming how many failed), so no rank goes on to a collective its peers will never reach.
template <typename F>
void setup_together(dist::ProcessGroup& pg, const char* what, F&& setup) {
  std::exception_ptr err;
  try {
    setup();
  } catch (...) {
    err = std::current_exception();
  }
  const double failed = pg.all_reduce_host(err ? 1.0 : 0.0);
  if (err) std::rethrow_exception(err);
  RESNET_CHECK(failed == 0, what, ": failed on ", static_cast<int64_t>(failed), " of ", pg.size(),
               " ranks (their message is above); rank ", pg.rank(), " stops too");
}

// Each rank's device, in rank order (a collective).
std::vector<Device> rank_devices(dist::ProcessGroup& pg, const Device& mine);

// "cpu" for one rank; "2 ranks (mpi): rank 0 cpu, rank 1 cpu" for more (a collective).
std::string describe_world(dist::ProcessGroup& pg, const Device& mine);

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet

#if !RESNET_SEPARATE_COMPILATION
#include "resnet/train/agreement_inl.hpp"
#endif
