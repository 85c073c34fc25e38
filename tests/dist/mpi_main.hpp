// The main() of the Catch2 programs that run under `mpirun -np N`: one MPI process group for the whole
// run, the cases in declaration order on every rank, and a barrier before the group goes, so no rank
// finalises MPI while another is still in a collective. Include once, after the test cases' globals.
#pragma once

#include <cstdio>
#include <exception>
#include <memory>

#include "catch.hpp"
#include "catch_session.hpp"
#include "resnet/dist/mpi_group.hpp"

namespace mpi_test {

template <typename Group>
int run_catch_under_mpi(std::shared_ptr<Group>& slot, const char* program, int argc, char* argv[]) {
  int rc = 1;
  try {
    auto group = std::make_shared<resnet::dist::MpiProcessGroup>();
    slot = group;
    rc = run_catch_session(argc, argv);
    group->barrier();
    slot.reset();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
  return rc;
}

}  // namespace mpi_test
