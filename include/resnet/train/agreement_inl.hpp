// The definitions of agreement.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/train/parts.cpp). Not for direct inclusion.
#pragma once

#include <cmath>
#include <exception>
#include <string>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/train/agreement.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

RESNET_INLINE StepAgreement agree_step(dist::ProcessGroup& pg, const StepVote& v) {
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

RESNET_INLINE bool agree_batch(dist::ProcessGroup& pg, bool has_batch, int64_t batch_index) {
  const double idx = has_batch ? static_cast<double>(batch_index) : -1;
  std::vector<double> s = pg.all_reduce_host({has_batch ? 1.0 : 0.0, idx, idx * idx});
  const double w = pg.size();
  RESNET_CHECK(s[0] == 0 || (s[0] == w && s[1] * s[1] == w * s[2]), "training: the ranks are out of step (",
               static_cast<int64_t>(s[0]), " of ", pg.size(), " ranks have a batch; rank ", pg.rank(),
               "): a rank's batch was entirely unreadable. Remove the unreadable files named above");
  return s[0] > 0;
}

RESNET_INLINE std::vector<Device> rank_devices(dist::ProcessGroup& pg, const Device& mine) {
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

RESNET_INLINE std::string describe_world(dist::ProcessGroup& pg, const Device& mine) {
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
