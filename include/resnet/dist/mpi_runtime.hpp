// The MPI runtime of the process: MPI_Init_thread once, MPI_Finalize at exit, and the checks every MPI call
// shares. Needs MPI (link resnet::dist, which defines RESNET_HAVE_MPI=1).
//
// - Thread level: MPI_THREAD_MULTIPLE is requested. Each MpiProcessGroup's communication thread makes that
//   group's MPI calls while the main thread computes, may make MPI calls of its own (another group, the
//   user's code), and the timeout calls MPI_Abort from the thread that waits; all of that is legal only
//   under MULTIPLE. OpenMPI 4 provides it; where it is not provided, the groups run their collectives
//   synchronously on the caller's thread (MpiProcessGroup::overlaps() says which).
// - Ownership: when the program initialised MPI itself, we neither initialise nor finalise it. Otherwise
//   the runtime object lives until the last group using it and a static holder are gone (normally at exit).
// - OpenMPI's nonblocking all-reduce defaults to the ring algorithm (below) unless the user chose one.
// - Timeout (RESNET_DIST_TIMEOUT_S, seconds, default 300, 0 = never): how long a collective may stay
//   pending before the rank that waits prints which call, rank and how long, and aborts the whole job.
#pragma once

#include "resnet/core/abi.hpp"

#if !RESNET_HAVE_MPI
#error \
    "resnet/dist/mpi_*.hpp need MPI: link the resnet::dist target (cmake/dist.cmake), which defines RESNET_HAVE_MPI=1"
#endif

#include <mpi.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

inline std::string mpi_error_string(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(buf, static_cast<size_t>(len));
}

inline std::string mpi_thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
    default:
      return "thread level " + std::to_string(level);
  }
}

class MpiRuntime {
 public:
  // The process's runtime, initialising MPI on first use.
  static std::shared_ptr<MpiRuntime> get() {
    static std::mutex mu;
    static std::shared_ptr<MpiRuntime> holder;  // keeps MPI up until exit
    std::lock_guard<std::mutex> lock(mu);
    if (!holder) holder = std::shared_ptr<MpiRuntime>(new MpiRuntime());
    return holder;
  }
  ~MpiRuntime() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Finalize();
  }
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int thread_level() const { return provided_; }
  bool multiple() const { return provided_ >= MPI_THREAD_MULTIPLE; }
  bool owns_mpi() const { return owns_; }

 private:
  MpiRuntime() {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    RESNET_CHECK(!finalized, "MPI was already finalised; resnet::dist cannot use it after MPI_Finalize");
    if (initialized) {
      MPI_Query_thread(&provided_);
    } else {
      // OpenMPI's nonblocking all-reduce (libnbc) picks a binomial tree for 2 ranks: 2x slower than its
      // blocking call on 25 MB; the ring matches it (measured, 2-core EPYC). An explicit choice (the
      // variable, or mpirun --mca) wins.
      setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", /*overwrite=*/0);
      const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided_);
      RESNET_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed: ", mpi_error_string(rc));
      owns_ = true;
    }
  }
  int provided_ = MPI_THREAD_SINGLE;
  bool owns_ = false;
};

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
