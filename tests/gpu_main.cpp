// The entry point of the test programs that have GPU cases (test_ops, test_cuda). `PROGRAM --gpu` runs the
// hidden [.gpu] cases and exits 77 (ctest: skipped) with the reason when there is nothing to run them on:
// a build without resnet::cuda, or no CUDA device. A plain run never counts a GPU case as passed.
// Compiled once (the object library resnet_gpu_main) and linked into every such program, with Catch2's
// session (tests/catch_session.cpp).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "catch_session.hpp"
#include "resnet/core/abi.hpp"
#if RESNET_WITH_CUDA
#include "resnet/backend/cuda/runtime.hpp"
#endif

int main(int argc, char* argv[]) {
  std::vector<char*> args(argv, argv + argc);
  bool gpu = false;
  for (size_t i = 1; i < args.size(); ++i)
    if (std::strcmp(args[i], "--gpu") == 0) {
      gpu = true;
      args.erase(args.begin() + static_cast<long>(i));
      break;
    }
  if (gpu) {
#if RESNET_WITH_CUDA
    if (resnet::cuda::device_count() == 0) {
      std::printf("SKIPPED: no CUDA device (%s)\n", resnet::cuda::unavailable_reason().c_str());
      return 77;
    }
    static char tag[] = "[gpu]";
    args.push_back(tag);
#else
    std::printf("SKIPPED: this build has no CUDA backend (resnet::cuda was not built: no nvcc)\n");
    return 77;
#endif
  }
  return run_catch_session(static_cast<int>(args.size()), args.data());
}
