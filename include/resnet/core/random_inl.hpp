// The definitions of random.hpp: included by it in header-only mode, and compiled once into the library in
// the compiled mode (src/core/random.cpp). Not for direct inclusion.
#pragma once

#include <random>

#include "resnet/core/abi.hpp"
#include "resnet/core/random.hpp"

namespace resnet {
inline namespace RESNET_ABI {

RESNET_INLINE double Generator::normal(double mean, double stddev) {
  return std::normal_distribution<double>(mean, stddev)(engine_);
}

RESNET_INLINE double Generator::uniform(double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(engine_);
}

RESNET_INLINE int64_t Generator::randint(int64_t n) {
  return std::uniform_int_distribution<int64_t>(0, n - 1)(engine_);
}

}  // namespace RESNET_ABI
}  // namespace resnet
