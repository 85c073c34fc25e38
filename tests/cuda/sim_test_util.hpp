// What the simulator tests share: random inputs, and both thread orders of the simulated device.
#pragma once

#include <cstdint>
#include <vector>

#include "catch.hpp"
#include "cuda/sim.hpp"
#include "resnet/resnet.hpp"

namespace sim_test {

template <typename T>
std::vector<T> randv(size_t n, uint64_t seed, double mean = 0.0, double sd = 1.0) {
  resnet::Generator g(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(g.normal(mean, sd));
  return v;
}

// Sets the simulator's thread order for a scope, then puts back the forward order.
struct OrderGuard {
  explicit OrderGuard(sim::Order o) { sim::set_order(o); }
  ~OrderGuard() { sim::set_order(sim::Order::Forward); }
};

// Runs the calling test case once per thread order (Catch's GENERATE): a kernel whose result depends on
// which thread runs first shows up as a difference between the two.
inline sim::Order pick_order() { return GENERATE(0, 1) == 0 ? sim::Order::Forward : sim::Order::Reverse; }

}  // namespace sim_test
