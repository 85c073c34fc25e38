// resnet::dist from an outside project: dist::init picks MPI under mpirun, and the ranks' values add up.
#include <cstdio>

#include <resnet/resnet.hpp>

int main() {
  using namespace resnet;
  auto pg = dist::init();
  const int w = pg->size();
  const double sum = pg->all_reduce_host(static_cast<double>(pg->rank() + 1));
  std::printf("consumer_dist: rank %d of %d (%s): sum %.0f\n", pg->rank(), w, pg->backend_name().c_str(),
              sum);
  return sum == w * (w + 1) / 2.0 ? 0 : 1;
}
