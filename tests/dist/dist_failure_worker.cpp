// A 2-rank job in which rank 1 fails mid-run, for test_dist_failure.sh:
//   abort: rank 1 calls std::abort() after a few all-reduces (a crash): mpirun must end rank 0;
//   exit:  rank 1 returns exit code 3 without finalising MPI (an error exit): mpirun must end rank 0;
//   hang:  rank 1 sleeps for 10 minutes (a hang): rank 0's next all-reduce must time out
//          (RESNET_DIST_TIMEOUT_S) and abort the job.
// Rank 0 keeps all-reducing; without a bounded failure it would wait forever.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "resnet/dist/mpi_group.hpp"

using namespace resnet;

int main(int argc, char* argv[]) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "abort" && mode != "exit" && mode != "hang") {
    std::fprintf(stderr, "usage: dist_failure_worker abort|exit|hang\n");
    return 2;
  }
  dist::MpiProcessGroup pg;
  Tensor<float> t = Tensor<float>::ones(Shape{1023});
  for (int step = 0; step < 1000000; ++step) {
    if (pg.rank() == 1 && step == 5) {
      std::fprintf(stderr, "dist_failure_worker: rank 1 fails (%s) at step %d\n", mode.c_str(), step);
      std::fflush(stderr);
      if (mode == "abort") std::abort();
      if (mode == "exit") std::_Exit(3);
      std::this_thread::sleep_for(std::chrono::minutes(10));
    }
    auto w = pg.all_reduce_async(t, dist::ReduceOp::Average);
    w->wait();
  }
  std::fprintf(stderr, "dist_failure_worker: rank %d finished, which it must not\n", pg.rank());
  return 0;
}
