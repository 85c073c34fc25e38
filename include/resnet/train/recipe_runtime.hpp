// Where a recipe run computes: the device (auto | cpu | cuda), the CPU threads, the loader workers and the
// process group (one process, or every rank of a launcher such as mpirun when MPI is in the build).
#pragma once

#include "resnet/core/abi.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>

#include "resnet/backend/cuda/available.hpp"
#include "resnet/core/device.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/dist/init.hpp"
#include "resnet/dist/launch_env.hpp"
#include "resnet/train/recipe_options.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace train {

struct RecipeRuntime {
  std::shared_ptr<dist::ProcessGroup> group;  // SingleProcessGroup unless launched as N > 1 ranks
  Device device = Device::cpu();
  int workers = 1;
};

namespace detail {
inline int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }
}  // namespace detail

// "auto": CUDA when built with it and a GPU is present, else the CPU.
inline Device recipe_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  const bool have_cuda = cuda::is_available();
  if (name == "cuda") {
    if (!cuda_compiled())
      detail::option_fail(
          "--device cuda: this program was built without CUDA support (configure with nvcc present)");
    if (!have_cuda) throw Error("--device cuda: no usable CUDA device: " + cuda::unavailable_reason());
    return Device::cuda(0);
  }
  if (name != "auto") detail::option_fail("--device: expected auto, cpu or cuda, got '", name, "'");
  return have_cuda ? Device::cuda(0) : Device::cpu();
}

// Sets the CPU threads (RecipeOptions::threads, else the machine's cores shared by the ranks on it), picks
// the device and joins the process group (`distributed`: the launcher's ranks, else this process alone).
inline RecipeRuntime recipe_runtime(const RecipeOptions& o, bool distributed) {
  const dist::LaunchEnv env = dist::detect_launch();
  // Without MPI in the build, a run started as one of N > 1 ranks is refused (never N copies side by side).
  const std::string refusal = distributed ? dist::refuse_without_mpi(env) : "";
  if (!refusal.empty()) throw Error(refusal);
  const int ranks_here = distributed ? std::max(1, env.local_size) : 1;
  set_num_threads(o.threads() ? *o.threads() : std::max(1, detail::hardware_threads() / ranks_here));
  RecipeRuntime rt;
  rt.device = recipe_device(o.device());
  rt.group = distributed ? dist::init(rt.device) : dist::single_process_group(rt.device);
  if (rt.group->size() > 1) rt.device = rt.group->device();  // NCCL: the GPU of this rank's local rank
  if (o.workers()) {
    rt.workers = *o.workers();
  } else if (rt.device.is_cuda()) {
    rt.workers = std::min(16, std::max(2, detail::hardware_threads() - 2));
  } else {
    rt.workers = std::max(1, get_num_threads() / 4);  // decoding is cheap next to a CPU training step
  }
  return rt;
}

}  // namespace train
}  // namespace RESNET_ABI
}  // namespace resnet
