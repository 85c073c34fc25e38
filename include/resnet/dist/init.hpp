// dist::init: the process group a program trains with, chosen from how it was launched.
//
//   launched as one of N > 1 ranks (mpirun, mpiexec, srun), MPI in the build:
//       want == cpu  -> MpiProcessGroup (CPU tensors over MPI)
//       want == cuda -> NcclProcessGroup (GPU tensors over NCCL; the GPU is local_rank % device count;
//                       group->device() says which), bootstrapped over MPI
//   launched as one of N > 1 ranks, no MPI in the build -> an error: never N copies training side by side
//   otherwise (no launcher, or a world of one) -> SingleProcessGroup(want)
//
// With MPI in the build means compiled against resnet::dist (RESNET_HAVE_MPI=1); plain resnet::resnet
// programs get the single process or the refusal, and need neither MPI nor NCCL.
#pragma once

#include "resnet/core/abi.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "resnet/dist/launch_env.hpp"
#include "resnet/dist/process_group.hpp"

#if RESNET_HAVE_MPI
#include "resnet/dist/mpi_group.hpp"
#endif
#if RESNET_HAVE_NCCL
#include "resnet/dist/nccl_group.hpp"
#endif

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

#if RESNET_HAVE_MPI
inline constexpr bool built_with_mpi() { return true; }
#else
inline constexpr bool built_with_mpi() { return false; }
#endif
#if RESNET_HAVE_NCCL
inline constexpr bool built_with_nccl() { return true; }
#else
inline constexpr bool built_with_nccl() { return false; }
#endif

// The refusal a build without MPI gives when launched as one of several ranks (empty when it may run).
inline std::string refuse_without_mpi(const LaunchEnv& env) {
  if (built_with_mpi() || env.world_size <= 1) return "";
  return "this program was started as rank " + std::to_string(env.rank) + " of " +
         std::to_string(env.world_size) + " by " + env.launcher +
         " but resnet was built without MPI (install libopenmpi-dev, reconfigure, and link resnet::dist); "
         "refusing to train " +
         std::to_string(env.world_size) + " copies side by side";
}

inline std::shared_ptr<ProcessGroup> init(Device want = Device::cpu()) {
  const LaunchEnv env = detect_launch();
  const std::string refusal = refuse_without_mpi(env);
  RESNET_CHECK(refusal.empty(), refusal);
  if (env.world_size <= 1) return std::make_shared<SingleProcessGroup>(want);
#if RESNET_HAVE_MPI
  auto mpi = std::make_shared<MpiProcessGroup>();
  if (want.is_cpu()) return mpi;
#if RESNET_HAVE_NCCL
  return std::make_shared<NcclProcessGroup>(mpi);
#else
  RESNET_FAIL("dist::init(", want.to_string(), "): GPU tensors across ", env.world_size,
              " ranks need NCCL, and this build has none (resnet::dist without the CUDA backend)");
#endif
#else
  RESNET_FAIL("unreachable: ", refusal);
#endif
}

// One line naming the world and every rank's device and host, e.g. "world 2 (mpi): rank 0 cpu on a,
// rank 1 cpu on b". A collective (every rank must call it; every rank gets the line; rank 0 prints it).
inline std::string describe_world(ProcessGroup& pg) {
  constexpr int kHost = 64;
  char host[kHost] = {0};
  if (gethostname(host, kHost - 1) != 0) std::snprintf(host, kHost, "?");
  std::vector<double> mine(kHost + 2, 0.0);
  mine[0] = pg.device().is_cpu() ? -1.0 : pg.device().index;
  for (int i = 0; i < kHost && host[i]; ++i)
    mine[static_cast<size_t>(i) + 2] = static_cast<unsigned char>(host[i]);
  Tensor<double> in = Tensor<double>::from_vector(mine, Shape{kHost + 2}).to(pg.device());
  Tensor<double> out = Tensor<double>::empty(Shape{int64_t(pg.size()) * (kHost + 2)}, pg.device());
  TensorBase out_base = out;
  pg.all_gather(in, out_base);
  const std::vector<double> all = out.to(Device::cpu()).to_vector();
  const LaunchEnv env = detect_launch();
  std::string s = "world " + std::to_string(pg.size()) + " (" + pg.backend_name() +
                  (env.launched() ? ", launched by " + env.launcher : std::string()) + "):";
  for (int r = 0; r < pg.size(); ++r) {
    const double* p = all.data() + static_cast<size_t>(r) * (kHost + 2);
    std::string name;
    for (int i = 0; i < kHost && p[i + 2] != 0.0; ++i) name += static_cast<char>(p[i + 2]);
    s += std::string(r ? "," : "") + " rank " + std::to_string(r) + " " +
         (p[0] < 0 ? std::string("cpu") : Device::cuda(static_cast<int>(p[0])).to_string()) + " on " + name;
  }
  return s;
}

// Ends every rank of the job now with exit code `code` (MPI_Abort under MPI), after printing `why`. For a
// rank that must stop alone (a fatal error its peers cannot see): returning from main instead would leave
// them waiting in their next collective until RESNET_DIST_TIMEOUT_S.
[[noreturn]] inline void abort_job(const std::string& why, int code = 1) {
  std::fprintf(stderr, "%s\n", why.c_str());
  std::fflush(stderr);
#if RESNET_HAVE_MPI
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::_Exit(code);
}

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
