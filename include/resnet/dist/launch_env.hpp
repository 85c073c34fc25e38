// How this process was launched, read from the environment alone (no MPI needed): OpenMPI's mpirun
// (OMPI_COMM_WORLD_*), MPICH/Intel MPI's hydra (PMI_SIZE, PMI_RANK, MPI_LOCALNRANKS, MPI_LOCALRANKID) or
// Slurm's srun (SLURM_STEP_NUM_TASKS / SLURM_NTASKS with SLURM_STEP_ID, SLURM_PROCID, SLURM_LOCALID,
// SLURM_STEP_TASKS_PER_NODE). A build without MPI uses it to refuse to run as one of N > 1 copies
// (dist/init.hpp); a build with MPI cross-checks it against what MPI reports.
//
// Slurm: only an srun step counts as a launch. A batch script also sees SLURM_NTASKS and SLURM_PROCID=0,
// but it is one process, so SLURM_NTASKS alone is read only together with SLURM_STEP_ID.
#pragma once

#include "resnet/core/abi.hpp"

#include <cstdlib>
#include <functional>
#include <string>

#include "resnet/core/error.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace dist {

struct LaunchEnv {
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;
  int local_size = 1;
  std::string launcher = "none";  // "mpirun" (OpenMPI), "mpiexec" (MPICH/PMI), "srun", or "none"
  bool launched() const { return launcher != "none"; }
  std::string describe() const {
    return "rank " + std::to_string(rank) + " of " + std::to_string(world_size) + " (local " +
           std::to_string(local_rank) + " of " + std::to_string(local_size) + ") by " + launcher;
  }
};

namespace detail {

using Getenv = std::function<const char*(const char*)>;

// A non-negative integer variable, or -1 when unset; a malformed value is an error naming the variable.
inline int env_int(const Getenv& get, const char* name) {
  const char* v = get(name);
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  RESNET_CHECK(end != v && *end == '\0' && x >= 0 && x < (1L << 30), "launch environment: ", name, "='", v,
               "' is not a non-negative integer");
  return static_cast<int>(x);
}

// Slurm's tasks-per-node list ("2(x3),1": three nodes of 2 tasks, then one of 1): the count of node `node`.
inline int slurm_tasks_on_node(const std::string& list, int node) {
  size_t pos = 0;
  int seen = 0;
  while (pos < list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(pos, end - pos);
    int count = 0, repeat = 1;
    const size_t paren = item.find("(x");
    try {
      count = std::stoi(item.substr(0, paren));
      if (paren != std::string::npos) repeat = std::stoi(item.substr(paren + 2));
    } catch (const std::exception&) {
      RESNET_FAIL("launch environment: cannot parse Slurm's tasks per node '", list, "'");
    }
    if (node < seen + repeat) return count;
    seen += repeat;
    pos = end + 1;
  }
  RESNET_FAIL("launch environment: Slurm's tasks per node '", list, "' has no node ", node);
}

inline LaunchEnv finish(LaunchEnv e, const char* what) {
  RESNET_CHECK(e.world_size >= 1 && e.rank >= 0 && e.rank < e.world_size, "launch environment (", what,
               "): rank ", e.rank, " is not in a world of ", e.world_size);
  if (e.local_size < 1) e.local_size = 1;
  if (e.local_rank < 0 || e.local_rank >= e.local_size) e.local_rank = 0;
  return e;
}

}  // namespace detail

// Reads the launch variables through `get` (tests pass a map; the default reads the real environment).
inline LaunchEnv detect_launch(const detail::Getenv& get) {
  using detail::env_int;
  LaunchEnv e;
  if (env_int(get, "OMPI_COMM_WORLD_SIZE") >= 1) {
    e.launcher = "mpirun";
    e.world_size = env_int(get, "OMPI_COMM_WORLD_SIZE");
    e.rank = env_int(get, "OMPI_COMM_WORLD_RANK");
    e.local_rank = env_int(get, "OMPI_COMM_WORLD_LOCAL_RANK");
    e.local_size = env_int(get, "OMPI_COMM_WORLD_LOCAL_SIZE");
    return detail::finish(e, "OMPI_COMM_WORLD_*");
  }
  if (env_int(get, "PMI_SIZE") >= 1) {
    e.launcher = "mpiexec";
    e.world_size = env_int(get, "PMI_SIZE");
    e.rank = env_int(get, "PMI_RANK");
    e.local_rank = env_int(get, "MPI_LOCALRANKID");
    e.local_size = env_int(get, "MPI_LOCALNRANKS");
    return detail::finish(e, "PMI_*");
  }
  int slurm_size = env_int(get, "SLURM_STEP_NUM_TASKS");
  if (slurm_size < 1 && env_int(get, "SLURM_STEP_ID") >= 0) slurm_size = env_int(get, "SLURM_NTASKS");
  if (slurm_size >= 1 && env_int(get, "SLURM_PROCID") >= 0) {
    e.launcher = "srun";
    e.world_size = slurm_size;
    e.rank = env_int(get, "SLURM_PROCID");
    e.local_rank = env_int(get, "SLURM_LOCALID");
    const char* per_node = get("SLURM_STEP_TASKS_PER_NODE");
    if (per_node == nullptr) per_node = get("SLURM_TASKS_PER_NODE");
    const int node = env_int(get, "SLURM_NODEID");
    if (per_node != nullptr && *per_node != '\0')
      e.local_size = detail::slurm_tasks_on_node(per_node, node < 0 ? 0 : node);
    return detail::finish(e, "SLURM_*");
  }
  return e;
}

inline LaunchEnv detect_launch() {
  return detect_launch([](const char* name) { return std::getenv(name); });
}

}  // namespace dist
}  // namespace RESNET_ABI
}  // namespace resnet
