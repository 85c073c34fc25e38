// Decisions every rank must take together, made from one all_reduce_host so that no rank is left waiting
// in a collective its peers skipped: whether each rank has a batch and the same one, the global loss, and
// the stop flags (Ctrl-C, a callback). In a world of one these are plain arithmetic.
#pragma once

#include "resnet/core/abi.hpp"

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

inline StepAgreement agree_step(dist::ProcessGroup& pg, const StepVote& v) {
  const double idx = v.has_batch ? static_cast<double>(v.batch_index) : -1;
  const double n = static_cast<double>(v.samples);
  // A non-finite loss must reach every rank as non-finite, also where another rank's value would cancel it.
  const bool bad = v.has_batch && !std::isfinite(v.loss);
  std::vector<double> s =
      pg.all_reduce_host({v.has_batch ? 1.0 : 0.0, idx, idx * idx, bad ? 0.0 : v.loss * n, n, bad ? 1.0 : 0.0,
                          v.interrupt ? 1.0 : 0.0, v.stop ? 1.0 : 0.0});
  const double w = pg.size();
  StepAgreement a;
  a.any_batch = s[0] > 0;
  // Every rank holds batch k iff sum(idx)^2 == W * sum(idx^2) (Cauchy-Schwarz), exact in doubles here.
  RESNET_CHECK(
      !a.any_batch || (s[0] == w && s[1] * s[1] == w * s[2]), "training: the ranks are out of step (",
      static_cast<int64_t>(s[0]), " of ", pg.size(), " ranks have a batch",
      v.has_batch ? ", this rank's is batch " + std::to_string(v.batch_index) : std::string(), "; rank ",
      pg.rank(), "): a rank's batch was entirely unreadable. Remove the unreadable files named above");
  a.samples = static_cast<int64_t>(s[4]);
  a.loss = s[4] > 0 ? s[3] / s[4] : 0.0;
  if (s[5] > 0) a.loss = bad && std::isinf(v.loss) ? v.loss : std::nan("");
  a.interrupt = s[6] > 0;
  a.stop = s[7] > 0;
  return a;
}

// Before a forward pass that communicates (SyncBatchNorm): whether every rank has a batch, the same one
// (throws on every rank if not), or none has.
inline bool agree_batch(dist::ProcessGroup& pg, bool has_batch, int64_t batch_index) {
  const double idx = has_batch ? static_cast<double>(batch_index) : -1;
  std::vector<double> s = pg.all_reduce_host({has_batch ? 1.0 : 0.0, idx, idx * idx});
  const double w = pg.size();
  RESNET_CHECK(s[0] == 0 || (s[0] == w && s[1] * s[1] == w * s[2]), "training: the ranks are out of step (",
               static_cast<int64_t>(s[0]), " of ", pg.size(), " ranks have a batch; rank ", pg.rank(),
               "): a rank's batch was entirely unreadable. Remove the unreadable files named above");
  return s[0] > 0;
}

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
inline std::vector<Device> rank_devices(dist::ProcessGroup& pg, const Device& mine) {
  const int w = pg.size();
  std::vector<double> slots(static_cast<size_t>(2 * w), 0.0);
  slots[static_cast<size_t>(2 * pg.rank())] = mine.is_cuda() ? 1 : 0;
  slots[static_cast<size_t>(2 * pg.rank() + 1)] = mine.index;
  slots = pg.all_reduce_host(slots);
  std::vector<Device> out;
  for (int r = 0; r < w; ++r) {
    const int idx = static_cast<int>(slots[static_cast<size_t>(2 * r + 1)]);
    out.push_back(slots[static_cast<size_t>(2 * r)] > 0 ? Device::cuda(idx) : Device::cpu());
  }
  return out;
}

// "cpu" for one rank; "2 ranks (mpi): rank 0 cpu, rank 1 cpu" for more (a collective).
inline std::string describe_world(dist::ProcessGroup& pg, const Device& mine) {
  std::vector<Device> ds = rank_devices(pg, mine);
  if (pg.size() == 1) return mine.to_string();
  std::string s = std::to_string(pg.size()) + " ranks (" + pg.backend_name() + "):";
  for (size_t r = 0; r < ds.size(); ++r)
    s += (r ? ", rank " : " rank ") + std::to_string(r) + " " + ds[r].to_string();
  return s;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
